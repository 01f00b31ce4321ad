#!/usr/bin/env bash
# The waiting room under load, for the memory and the Redis backend:
#   * the seed's k6 scenario (1,000 users, +100 every 30 s, rank every 5 s; about 5 minutes);
#   * a scaled one: 100,000 waiters join one queue, then 200,000 rank requests.
# Prints one JSON line per run (somsom-queue-load) and the server's resident memory.
#   bash scripts/bench-queue.sh
#   BACKENDS=memory SCENARIOS=scaled WAITERS=20000 bash scripts/bench-queue.sh
#   TIME_SCALE=0.1 bash scripts/bench-queue.sh     # the seed's shape, ten times faster
set -euo pipefail
# shellcheck source=scripts/bench-common.sh
source "$(dirname "$0")/bench-common.sh"
WAITERS=${WAITERS:-100000}
RANKS=${RANKS:-200000}
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

# provision DB_URL PREFIX COUNT -> email<TAB>token lines in $work/PREFIX.tsv, two processes at once
provision() {
  local half=$(( ($3 + 1) / 2 ))
  SOMSOM_DATABASE_URL=$1 "$server" provision-accounts --prefix "$2" --count "$half" >"$work/$2.a" 2>/dev/null &
  SOMSOM_DATABASE_URL=$1 "$server" provision-accounts --prefix "$2" --start "$half" --count $(( $3 - half )) >"$work/$2.b" 2>/dev/null
  wait %%
  cat "$work/$2.a" "$work/$2.b" >"$work/$2.tsv"
}

run() { # run BACKEND
  local p db prefix
  p=$(port)
  db="sqlite://$work/$1.db"
  prefix="bench$(date +%s%N):"
  local envs=(SOMSOM_DATABASE_URL="$db" SOMSOM_LISTEN="127.0.0.1:$p" SOMSOM_LOG__FILTER=warn)
  [ "$1" = redis ] && envs+=(SOMSOM_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}" SOMSOM_REDIS_KEY_PREFIX="$prefix")
  # The accounts and the admin exist before the server starts (the first command makes the schema).
  SOMSOM_DATABASE_URL=$db "$server" provision-accounts --prefix admin --count 1 >/dev/null 2>&1
  SOMSOM_DATABASE_URL=$db "$server" grant-admin admin0@bench.local 2>/dev/null
  local admin; admin=$(SOMSOM_DATABASE_URL=$db "$server" provision-accounts --prefix admin --count 1 2>/dev/null | cut -f2)
  env "${envs[@]}" "$server" >"$work/server-$1.log" 2>&1 &
  local pid=$!
  local url=http://127.0.0.1:$p
  for _ in $(seq 1 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
  local festival
  festival=$(curl -sf -X POST "$url/festivals/create" -H "authorization: Bearer $admin" -H 'content-type: application/json' \
    -d '{"title":"Queue bench","startDate":"2099-08-15","endDate":"2099-08-15"}' | json '["id"]')
  echo "== $1: server rss at start $(rss_mib $pid) MiB"
  for scenario in ${SCENARIOS:-seed scaled}; do
    case $scenario in
      seed)
        [ -f "$work/vu.tsv" ] || provision "$db" vu 1000
        [ "$1" = redis ] || true
        echo "== $1: the seed's scenario (time scale ${TIME_SCALE:-1})"
        "$queue_load" --url "$url" --queue "festival$festival" --accounts "$work/vu.tsv" \
          seed --time-scale "${TIME_SCALE:-1}" ;;
      scaled)
        [ -f "$work/w.tsv" ] || provision "$db" w "$WAITERS"
        echo "== $1: $WAITERS waiters in one queue, then $RANKS rank requests (64 in flight)"
        # The second festival's queue is paused: everyone stays in line while ranks are measured.
        local quiet
        quiet=$(curl -sf -X POST "$url/festivals/create" -H "authorization: Bearer $admin" -H 'content-type: application/json' \
          -d '{"title":"Queue bench, paused","startDate":"2099-08-15","endDate":"2099-08-15"}' | json '["id"]')
        curl -sf -X POST "$url/admin/queues/festival$quiet/pause" -H "authorization: Bearer $admin" >/dev/null
        "$queue_load" --url "$url" --queue "festival$quiet" --accounts "$work/w.tsv" \
          scaled --waiters "$WAITERS" --ranks "$RANKS" --concurrency 64
        echo "server rss with $WAITERS waiting: $(rss_mib $pid) MiB; queue: $(curl -sf "$url/admin/queues/festival$quiet" -H "authorization: Bearer $admin" | json '["waiting"]') waiting"
        if command -v wrk >/dev/null; then
          # wrk (Debian package) leaves more of the 2 cores to the server than the Rust loader.
          echo "== $1: rank requests from wrk, 64 connections, 10 s, $WAITERS waiting"
          ACCOUNTS=$work/w.tsv QUEUE=festival$quiet wrk -t 2 -c 64 -d 10s -s scripts/wrk-queue-rank.lua "$url" | tail -1
        fi ;;
    esac
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # Fresh accounts per backend: the databases differ.
  rm -f "$work/vu.tsv" "$work/w.tsv"
}

for backend in ${BACKENDS:-memory redis}; do
  run "$backend"
done
