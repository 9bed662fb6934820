# The image `kubectl etcd restore snapshot schedule` runs (its --image default): the release
# binaries on a small glibc base. Build it from an archive of scripts/release.sh:
#   docker build -t ghcr.io/kubectl-etcd/kubectl-etcd:0.2.0 \
#     --build-arg ARCHIVE=dist/kubectl-etcd_0.2.0_linux_amd64.tar.gz .
# The CronJob runs it as root: etcd's client keys on a control-plane node are root's, mode 0600
# (the pod drops every capability and has a read-only root filesystem).
FROM debian:bookworm-slim AS unpack
ARG ARCHIVE
COPY ${ARCHIVE} /tmp/kubectl-etcd.tar.gz
RUN mkdir /out && tar -xzf /tmp/kubectl-etcd.tar.gz -C /out

FROM gcr.io/distroless/cc-debian12
COPY --from=unpack /out/kubectl-etcd /out/kubectl-etcd-health /out/kubectl-etcd-learner /out/kubectl-etcd-restore /out/kubectl-etcd-defrag /usr/local/bin/
COPY --from=unpack /out/LICENSE /usr/share/doc/kubectl-etcd/LICENSE
ENTRYPOINT ["/usr/local/bin/kubectl-etcd"]
