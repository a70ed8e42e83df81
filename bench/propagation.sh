#!/usr/bin/env bash
# Revocation propagation between two replicas sharing one Postgres: revoke on A, time until
# B denies. Starts both replicas on loopback against a throwaway database, runs
# `intentgate-loadtest propagation`, stops everything and drops the database.
# Usage: bench/propagation.sh [iterations]   (DATABASE_URL: the server to use)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
SERVER=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=ig_propagation_$$
BASE=${SERVER%/*}
cargo build --quiet --release -p intentgate -p intentgate-loadtest
BIN=$CARGO_TARGET_DIR/release
KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8
psql -q "$SERVER" -c "CREATE DATABASE $DB"
trap 'kill $A $B 2>/dev/null || true; wait 2>/dev/null || true; psql -q "$SERVER" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
common=(INTENTGATE_POSTGRES_URL="$BASE/$DB" INTENTGATE_MASTER_KEY=$KEY INTENTGATE_ADMIN_TOKEN=prop-admin
        INTENTGATE_AUDIT_TARGET=none INTENTGATE_DATAPLANE_THREADS=1)
env "${common[@]}" INTENTGATE_ADDR=127.0.0.1:18181 INTENTGATE_ADMIN_ADDR=127.0.0.1:18281 \
  timeout 600 $BIN/intentgate serve 2>/dev/null & A=$!
sleep 1 # A applies the migrations first
env "${common[@]}" INTENTGATE_ADDR=127.0.0.1:18182 INTENTGATE_ADMIN_ADDR=127.0.0.1:18282 \
  timeout 600 $BIN/intentgate serve 2>/dev/null & B=$!
for port in 18181 18182; do
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
done
$BIN/intentgate-loadtest propagation --a 127.0.0.1:18181 --b 127.0.0.1:18182 \
  --admin-token prop-admin --iterations "$N"
