#!/usr/bin/env bash
# A ticket drop: WAITERS users join a festival's waiting room over the last JOIN_SECS seconds
# before its sale opens, then poll every POLL_SECS, book one ticket each with their admission,
# and stop when booked or told the sale is sold out (somsom-queue-load drop).
#   memory: one node on SQLite, the in-memory queue;
#   redis:  two nodes sharing MariaDB and Redis, waiters spread over both.
# Prints the load tool's JSON report, each node's resident memory before and after, and the
# stock read back from the database.
#   bash scripts/bench-drop.sh
#   BACKENDS=redis WAITERS=20000 STOCK=2000 BATCH=200 bash scripts/bench-drop.sh
set -euo pipefail
# shellcheck source=scripts/bench-common.sh
source "$(dirname "$0")/bench-common.sh"
WAITERS=${WAITERS:-100000}
STOCK=${STOCK:-5000}
BATCH=${BATCH:-500}
JOIN_SECS=${JOIN_SECS:-10}
POLL_SECS=${POLL_SECS:-5}
MYSQL=${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306}
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

run() { # run BACKEND
  local db nodes=1 prefix envs=()
  prefix="drop$(date +%s%N):"
  if [ "$1" = redis ]; then
    local name="somsom_drop_$(date +%s)"
    mysql -h 127.0.0.1 -u root -e "CREATE DATABASE $name"
    db="$MYSQL/$name"
    nodes=2
    envs+=(SOMSOM_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}" SOMSOM_REDIS_KEY_PREFIX="$prefix")
  else
    db="sqlite://$work/drop.db"
  fi
  SOMSOM_DATABASE_URL=$db "$server" provision-accounts --prefix admin --count 1 >/dev/null 2>&1
  SOMSOM_DATABASE_URL=$db "$server" grant-admin admin0@bench.local 2>/dev/null
  echo "== $1: provisioning $WAITERS accounts"
  SOMSOM_DATABASE_URL=$db "$server" provision-accounts --prefix d --count "$WAITERS" >"$work/d.tsv" 2>/dev/null
  local admin; admin=$(SOMSOM_DATABASE_URL=$db "$server" provision-accounts --prefix admin --count 1 2>/dev/null | cut -f2)
  local pids=() urls=()
  for n in $(seq 1 $nodes); do
    local p; p=$(port)
    env SOMSOM_DATABASE_URL="$db" SOMSOM_LISTEN="127.0.0.1:$p" SOMSOM_LOG__FILTER=warn \
      SOMSOM_HTTP__MAX_CONNECTIONS=20000 "${envs[@]}" "$server" >"$work/server-$1-$n.log" 2>&1 &
    pids+=($!)
    urls+=("http://127.0.0.1:$p")
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$p/healthz" >/dev/null && break; sleep 0.1; done
  done
  local url=${urls[0]}
  local opens; opens=$(date -u -d "+$(( JOIN_SECS + 5 )) seconds" +%Y-%m-%dT%H:%M:%SZ)
  local festival
  festival=$(curl -sf -X POST "$url/festivals/create" -H "authorization: Bearer $admin" -H 'content-type: application/json' \
    -d "{\"title\":\"Drop\",\"startDate\":\"2099-08-15\",\"endDate\":\"2099-08-15\",\"ticketsPerDay\":$STOCK,\"maxPerReservation\":1,\"saleOpensAt\":\"$opens\"}" \
    | json '["id"]')
  curl -sf -X PUT "$url/admin/queues/festival$festival" -H "authorization: Bearer $admin" -H 'content-type: application/json' \
    -d "{\"batchSize\":$BATCH,\"intervalMs\":1000}" >/dev/null
  local before=""
  for pid in "${pids[@]}"; do before="$before $(rss_mib "$pid")"; done
  echo "== $1: $WAITERS waiters over $nodes node(s), $STOCK tickets, $BATCH admissions/s, sale opens $opens"
  local also; also=$(IFS=,; echo "${urls[*]:1}")
  "$queue_load" --url "$url" --queue "festival$festival" --accounts "$work/d.tsv" \
    drop ${also:+--also "$also"} --waiters "$WAITERS" --festival "$festival" --date 2099-08-15 \
    --opens-at "$opens" --join-secs "$JOIN_SECS" --poll-secs "$POLL_SECS" --admin-token "$admin" || true
  local after=""
  for pid in "${pids[@]}"; do after="$after $(rss_mib "$pid")"; done
  echo "server rss MiB per node: before joins$before; after the drop$after"
  echo "stock read back: $(curl -sf "$url/festivals/$festival" | json '["dates"]' 2>/dev/null || curl -sf "$url/festivals/$festival")"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  [ "$1" = redis ] && mysql -h 127.0.0.1 -u root -e "DROP DATABASE ${db##*/}"
  return 0
}

for backend in ${BACKENDS:-memory redis}; do
  run "$backend"
done
