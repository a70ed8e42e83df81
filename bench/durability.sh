#!/usr/bin/env bash
# Throughput cost of INTENTGATE_AUDIT_DURABILITY=sync: the same gateway with the Postgres
# chain writer in async and in sync mode, alternately, same run. One data plane worker on
# CPU 0, wrk -t1 -c32 on CPU 1, Postgres wherever the OS puts it (same VM). Loopback only;
# everything stops by itself; the throwaway database is dropped.
# Usage: bench/durability.sh [seconds-per-run] [rounds]   (DATABASE_URL: the server)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-6}
ROUNDS=${2:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
SERVER=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=ig_durability_$$
cargo build --quiet --release -p intentgate
BIN=$CARGO_TARGET_DIR/release
KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8
TOKEN=$($BIN/intentgate token mint --master-key $KEY --subject bench-agent --tenant acme --tools read_invoice --ttl 2h)
psql -q "$SERVER" -c "CREATE DATABASE $DB"
SCRIPT=$(mktemp)
GW=
trap 'rm -f "$SCRIPT"; [ -n "$GW" ] && kill $GW 2>/dev/null; wait 2>/dev/null; psql -q "$SERVER" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
cat > "$SCRIPT" <<LUA
wrk.method = "POST"
wrk.body   = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_invoice","arguments":{"id":"bench-1"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
LUA
run() {
  INTENTGATE_ADDR=127.0.0.1:18090 INTENTGATE_ADMIN_ADDR=127.0.0.1:18091 INTENTGATE_DATAPLANE_THREADS=1 \
    INTENTGATE_MASTER_KEY=$KEY INTENTGATE_AUDIT_TARGET=none INTENTGATE_AUDIT_PERSIST=true \
    INTENTGATE_POSTGRES_URL="${SERVER%/*}/$DB" INTENTGATE_AUDIT_DURABILITY=$1 \
    timeout $((SECS + 30)) taskset -c 0 $BIN/intentgate serve 2>/dev/null & GW=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:18090/healthz >/dev/null && break; sleep 0.1; done
  taskset -c 1 wrk -t1 -c32 -d${SECS}s -s "$SCRIPT" http://127.0.0.1:18090/v1/mcp | awk '/Requests\/sec/ {print $2}'
  kill -TERM $GW; wait $GW 2>/dev/null || true; GW=
}
for r in $(seq "$ROUNDS"); do
  a=$(run async); s=$(run sync)
  awk -v a="$a" -v s="$s" -v r="$r" 'BEGIN { printf "round %d: async %.0f req/s, sync %.0f req/s, sync/async %.2f\n", r, a, s, s / a }'
done
echo "rows persisted: $(psql -qtA "${SERVER%/*}/$DB" -c 'SELECT count(*) FROM audit_events')"
