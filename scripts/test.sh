#!/usr/bin/env bash
# Runs every test: unit tests, then the end-to-end tests against real etcd 3.5 and 3.4.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TERM_COLOR=never
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo build --workspace --bins --locked
# Unit tests and the end-to-end tests against etcd 3.5 ...
E2E_ETCD_VERSION=3.5 cargo test --workspace --locked 2>&1 | tee -a "$log"
# ... and the end-to-end tests again against Debian's etcd 3.4.
E2E_ETCD_VERSION=3.4 cargo test --locked -p kubectl-etcd-e2e 2>&1 | tee -a "$log"
# One closing line for both runs (set -o pipefail has already stopped on any failure).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
