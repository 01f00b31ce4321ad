#!/usr/bin/env bash
# Reservations per second on one hot festival day through the HTTP API, 64 concurrent buyers,
# for SQLite and MariaDB and each lock strategy. Prints one JSON line per run (somsom-load)
# and the stock check (sold + left = total: no oversell).
#   bash scripts/bench-reservations.sh           # all six
#   DBS=sqlite STRATEGIES=row_lock bash scripts/bench-reservations.sh
#   LOADER=wrk DURATION=10 bash scripts/bench-reservations.sh   # wrk (apt install wrk) instead
#   PERF_OUT=/tmp/perf.data DBS=sqlite STRATEGIES=group_commit bash scripts/bench-reservations.sh
set -euo pipefail
# shellcheck source=scripts/bench-common.sh
source "$(dirname "$0")/bench-common.sh"
BUYERS=64
REQUESTS=${REQUESTS:-20000}

run() { # run DB_URL STRATEGY LABEL
  local p; p=$(port)
  export SOMSOM_DATABASE_URL=$1 SOMSOM_TICKETS__STRATEGY=$2 SOMSOM_LOG__FORMAT=json
  SOMSOM_LISTEN=127.0.0.1:$p SOMSOM_AUTH__ATTEMPTS_PER_ADDRESS_PER_MINUTE=100000 SOMSOM_AUTH__SIGNUPS_PER_ADDRESS_PER_HOUR=100000 \
    "$server" >"$work/server.log" 2>&1 &
  local pid=$!
  url=http://127.0.0.1:$p
  for _ in $(seq 1 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
  account admin@bench.local >/dev/null
  "$server" grant-admin admin@bench.local 2>/dev/null
  local admin; admin=$(curl -sf -X POST "$url/login" -H 'content-type: application/json' \
    -d '{"email":"admin@bench.local","password":"Festival1!"}' | json '["accessToken"]')
  local festival; festival=$(curl -sf -X POST "$url/festivals/create" -H "authorization: Bearer $admin" \
    -H 'content-type: application/json' \
    -d '{"title":"Hot day","startDate":"2099-08-15","endDate":"2099-08-15","ticketsPerDay":1000000,"maxPerReservation":1,"maxPerUserPerDay":1000,"saleQueued":false}' \
    | json '["id"]')
  : >"$work/tokens"
  for i in $(seq 1 $BUYERS); do account "buyer$i@bench.local" >>"$work/tokens"; done
  echo "== $3: one-ticket reservations from $BUYERS concurrent buyers, one festival day (${LOADER:-somsom-load})"
  local body="{\"festivalId\":$festival,\"festivalDate\":\"2099-08-15\",\"quantity\":1}"
  # PERF_OUT=FILE samples the server's CPU during the load (perf record; read with perf report).
  local perf=
  if [ -n "${PERF_OUT:-}" ]; then perf record -F 499 -g -p "$pid" -o "$PERF_OUT" 2>/dev/null & perf=$!; fi
  if [ "${LOADER:-somsom-load}" = wrk ]; then
    # wrk (Debian package) is lighter than somsom-load, leaving more of the 2 cores to the server.
    TOKENS=$work/tokens BODY=$body wrk -t 2 -c $BUYERS -d "${DURATION:-10}s" \
      -s scripts/wrk-reservations.lua "$url" | tail -1
  else
    "$load" "$url/reservations" -X POST -n "$REQUESTS" -c $BUYERS --tokens "$work/tokens" --body "$body"
  fi
  if [ -n "$perf" ]; then kill -INT "$perf"; wait "$perf" || true; fi
  local left; left=$(curl -sf "$url/festivals/$festival" | json '["days"][0]["leftTickets"]')
  echo "stock: total 1000000, left $left, sold $((1000000 - left)); bookings answered 200: $(curl -sf "$url/metrics" | grep 'somsom_http_requests_total{method="POST",route="/reservations",status="200"}' | awk '{print $2}')"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for kind in ${DBS:-sqlite mariadb}; do
  for strategy in ${STRATEGIES:-row_lock conditional_update group_commit}; do
    case $kind in
      sqlite) db="sqlite://$work/$strategy.db" ;;
      mariadb)
        mariadb -h 127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS somsom_bench_r; CREATE DATABASE somsom_bench_r CHARACTER SET utf8mb4"
        db="mysql://root@127.0.0.1:3306/somsom_bench_r" ;;
    esac
    run "$db" "$strategy" "$kind/$strategy"
  done
done
