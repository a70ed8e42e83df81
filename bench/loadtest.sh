#!/usr/bin/env bash
# The published load-test figures of docs/BENCHMARKS.md, in one run: the gateway next to the
# hello-world and direct-to-upstream baselines (closed loop, same requests, same cores), then
# open-loop latency at 5k/10k/20k req/s. Everything is spawned on loopback by
# intentgate-loadtest and stops by itself. Default cores on a 2-core machine: gateway, stub
# and baselines on CPU 0, the client on CPU 1.
# Usage: bench/loadtest.sh [seconds-per-run] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
ROUNDS=${2:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --quiet --release -p intentgate -p intentgate-loadtest
LT=$CARGO_TARGET_DIR/release/intentgate-loadtest
run() { echo; echo "\$ intentgate-loadtest $*"; "$LT" "$@"; }
run --spawn --mode decision --baseline hello --duration "${SECS}s" --rounds "$ROUNDS"
run --spawn --baseline direct --baseline hello --duration "${SECS}s" --rounds "$ROUNDS"
run --spawn --baseline direct --cpus client=1,gateway=0,upstream=1 --duration "${SECS}s" --rounds "$ROUNDS"
run --spawn --mode decision --baseline hello --rate 5000,10000,20000 --connections 16 --duration "${SECS}s"
run --spawn --baseline direct --rate 5000,10000,20000 --connections 16 --duration "${SECS}s"
run --spawn --mix all --duration "${SECS}s"
