#!/usr/bin/env bash
# Benchmarks, side by side with etcdctl/etcdutl on the same real clusters (not a test).
#   scripts/bench.sh [health|port-forward|fleet|snapshot|objstore|defrag|doctor|logs|upgrade|usage|all] [--size-mib N]     (default: all, 1024 MiB; logs: 100 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export E2E_ETCD_VERSION="${E2E_ETCD_VERSION:-3.5}"
cargo build --quiet --release --workspace --bins --locked
cargo run --quiet --release --locked -p kubectl-etcd-e2e --bin bench -- "$@"
