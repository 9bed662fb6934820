#!/usr/bin/env bash
# Runs every test: unit tests, then the end-to-end tests against real etcd 3.4 and 3.5.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TERM_COLOR=never
cargo build --workspace --bins --locked
# Unit tests and the end-to-end tests against etcd 3.5 ...
E2E_ETCD_VERSION=3.5 cargo test --workspace --locked
# ... and the end-to-end tests again against Debian's etcd 3.4.
E2E_ETCD_VERSION=3.4 cargo test --locked -p kubectl-etcd-e2e
