#!/usr/bin/env bash
# Builds a release of kubectl-etcd for the platform of this machine and renders its krew
# manifest:
#
#   scripts/release.sh 0.2.0            # VERSION must be the workspace version in Cargo.toml
#
# writes into dist/ (or $DIST):
#   kubectl-etcd_0.2.0_linux_amd64.tar.gz          the dispatcher, the plugins, LICENSE, README.md
#   kubectl-etcd_0.2.0_linux_amd64.tar.gz.sha256   its sha256 (sha256sum format)
#   etcd.yaml                                      the krew manifest, rendered from
#                                                  krew-manifests/etcd.yaml for the archives built
#   krew-index/plugins/etcd.yaml                   the same, in a custom krew index's layout
#
# Only platforms this machine can build are listed in the rendered manifest (here: the host's).
# Other platforms are built on a machine of that platform with the same command; put their
# archives in the same $DIST and run the script again there to list them all (README: Releases).
#
# RELEASE_PROFILE=dev packs the debug binaries already built (the test suite uses that; a real
# release uses the default, the release profile). RELEASE_BASE_URL is where the archives will be
# downloaded from (default: the GitHub release of tag vVERSION).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -eq 1 ] || { echo "usage: scripts/release.sh VERSION (such as 0.2.0)" >&2; exit 2; }
version=${1#v}
if ! [[ $version =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "release: $1 is not a semantic version such as 0.2.0" >&2; exit 2
fi
tag="v$version"
workspace=$(awk '/^\[workspace.package\]/{p=1; next} /^\[/{p=0} p && /^version *=/{gsub(/[" ]/, "", $0); sub(/version=/, ""); print; exit}' Cargo.toml)
if [ "$workspace" != "$version" ]; then
  echo "release: VERSION $version is not the workspace version in Cargo.toml ($workspace): bump it first" >&2; exit 2
fi

profile=${RELEASE_PROFILE:-release}
dist=${DIST:-dist}
base_url=${RELEASE_BASE_URL:-https://github.com/kubectl-etcd/kubectl-etcd/releases/download/$tag}
bins=(kubectl-etcd kubectl-etcd-health kubectl-etcd-learner kubectl-etcd-restore kubectl-etcd-defrag kubectl-etcd-doctor kubectl-etcd-upgrade)

case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) echo "release: unsupported OS $(uname -s)" >&2; exit 2 ;; esac
case "$(uname -m)" in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) echo "release: unsupported CPU $(uname -m)" >&2; exit 2 ;; esac

args=(--locked -p kubectl-etcd -p kubectl-etcd-health -p kubectl-etcd-learner -p kubectl-etcd-restore -p kubectl-etcd-defrag -p kubectl-etcd-doctor kubectl-etcd-upgrade)
if [ "$profile" = release ]; then
  cargo build --release "${args[@]}"
  out=target/release
else
  # The whole workspace, as the tests build it (a subset would resolve features anew).
  cargo build --profile "$profile" --workspace --bins --locked
  out=target/debug
fi

mkdir -p "$dist"
name="kubectl-etcd_${version}_${os}_${arch}"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for b in "${bins[@]}"; do install -m 0755 "$out/$b" "$stage/$b"; done
# The release profile strips its binaries; others carry debug info worth hundreds of MB.
[ "$profile" = release ] || strip --strip-debug "${bins[@]/#/$stage/}"

install -m 0644 LICENSE README.md "$stage/"
# A reproducible archive: sorted names, fixed owner and time.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$stage" -czf "$dist/$name.tar.gz.part" .
mv "$dist/$name.tar.gz.part" "$dist/$name.tar.gz"
(cd "$dist" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "release: $dist/$name.tar.gz ($(cut -d' ' -f1 "$dist/$name.tar.gz.sha256"))" >&2

# The manifest: the template's head (everything before `platforms:`) with the tag filled in,
# then one platform for every archive of this version in $dist.
manifest="$dist/etcd.yaml"
{
  awk '/^  platforms:/{exit} {print}' krew-manifests/etcd.yaml \
    | grep -v '^#' \
    | sed -e "s/{{ *\.TagName *}}/$tag/g"
  echo "  platforms:"
  for a in "$dist"/kubectl-etcd_"${version}"_*_*.tar.gz; do
    [ -f "$a" ] || continue
    f=$(basename "$a" .tar.gz)
    p_os=$(echo "$f" | awk -F_ '{print $(NF-1)}')
    p_arch=$(echo "$f" | awk -F_ '{print $NF}')
    sum=$(sha256sum "$a" | cut -d' ' -f1)
    cat <<YAML
  - selector:
      matchLabels:
        os: $p_os
        arch: $p_arch
    uri: $base_url/$f.tar.gz
    sha256: $sum
    bin: kubectl-etcd
    files:
    - from: "kubectl-etcd*"
      to: "."
    - from: LICENSE
      to: "."
YAML
  done
} > "$manifest.part"
mv "$manifest.part" "$manifest"
mkdir -p "$dist/krew-index/plugins"
cp "$manifest" "$dist/krew-index/plugins/etcd.yaml"
echo "release: $manifest and $dist/krew-index/plugins/etcd.yaml (platforms: $(grep -c '^  - selector:' "$manifest"))" >&2
