#!/usr/bin/env bash
# Policy promotion under load on one gateway (two data plane cores, in-memory policy store):
# client connections call back to back while two denying policies are promoted alternately;
# every answer must come from one of them. Loopback only; everything stops by itself.
# Usage: bench/policy_swap.sh [swaps] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
SWAPS=${1:-200}
CONNS=${2:-8}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --quiet --release -p intentgate -p intentgate-loadtest
BIN=$CARGO_TARGET_DIR/release
KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8
TOKEN=$($BIN/intentgate token mint --master-key $KEY --subject swap-agent --tenant acme --ttl 2h)
INTENTGATE_ADDR=127.0.0.1:18380 INTENTGATE_ADMIN_ADDR=127.0.0.1:18381 INTENTGATE_DATAPLANE_THREADS=2 \
  INTENTGATE_MASTER_KEY=$KEY INTENTGATE_ADMIN_TOKEN=swap-admin INTENTGATE_AUDIT_TARGET=none \
  INTENTGATE_POLICY_STORE=memory timeout 300 $BIN/intentgate serve 2>/dev/null & GW=$!
trap 'kill $GW 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:18380/healthz >/dev/null && break; sleep 0.1; done
$BIN/intentgate-loadtest swap --addr 127.0.0.1:18380 --admin-token swap-admin --agent-token "$TOKEN" \
  --connections "$CONNS" --swaps "$SWAPS"
