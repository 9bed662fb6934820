#!/usr/bin/env bash
# The demo: starts a local 3-member etcd cluster with mTLS and a kubeadm-shaped node layout,
# runs kubectl etcd against it through the real discovery path (--manifest), then stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --quiet --workspace --bins --locked
cargo run --quiet --locked -p kubectl-etcd-e2e --bin demo -- "$@"
