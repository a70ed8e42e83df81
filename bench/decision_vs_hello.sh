#!/usr/bin/env bash
# Decision-only throughput of the gateway next to a hello-world HTTP/1.1 server, same core,
# same run: both servers get CPU 0 (one worker each), wrk runs on CPU 1. Loopback only; every
# process stops by itself. Needs wrk (Debian: apt-get install wrk).
# Usage: bench/decision_vs_hello.sh [seconds-per-run] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
ROUNDS=${2:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
cargo build --quiet --release -p intentgate -p intentgate-loadtest
BIN=$CARGO_TARGET_DIR/release
KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8
TOKEN=$($BIN/intentgate token mint --master-key $KEY --subject bench-agent --tenant acme --tools read_invoice --ttl 2h)
LIFE=$(( (SECS + 2) * ROUNDS * 2 + 20 ))
SCRIPT=$(mktemp)
trap 'rm -f "$SCRIPT"; kill $GW $HELLO 2>/dev/null || true' EXIT
cat > "$SCRIPT" <<LUA
wrk.method = "POST"
wrk.body   = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"bench-1"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
INTENTGATE_ADDR=127.0.0.1:18080 INTENTGATE_DATAPLANE_THREADS=1 INTENTGATE_MASTER_KEY=$KEY \
  INTENTGATE_AUDIT_TARGET=none timeout $LIFE $BIN/intentgate serve 2>/dev/null & GW=$!
timeout $LIFE $BIN/intentgate-loadtest hello --addr 127.0.0.1:19999 --threads 1 --duration-s $LIFE 2>/dev/null & HELLO=$!
sleep 1
# JSON-RPC errors are HTTP 200: check that the gateway really allows the call first.
curl -s -H "Authorization: Bearer $TOKEN" -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"bench-1"}}}' \
  http://127.0.0.1:18080/v1/mcp | grep -q '"decision":"allow"' || { echo "gateway does not allow the bench call" >&2; exit 1; }
rps() { taskset -c 1 wrk -t1 -c32 -d${SECS}s -s "$SCRIPT" "$1" | awk '/Requests\/sec/ {print $2}'; }
for r in $(seq "$ROUNDS"); do
  g=$(rps http://127.0.0.1:18080/v1/mcp); h=$(rps http://127.0.0.1:19999/)
  awk -v g="$g" -v h="$h" -v r="$r" 'BEGIN { printf "round %d: gateway %.0f req/s, hello %.0f req/s, ratio_to_hello %.2f\n", r, g, h, g / h }'
done
