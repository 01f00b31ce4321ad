#!/usr/bin/env bash
# Chat fan-out on one node: CONNECTIONS subscribers over ROOMS rooms, messages published at RATE
# per second for DURATION seconds; deliveries per second, end-to-end p50/p99 and server memory
# per connection. The same load against SomSom (/ws-chat, SQLite, messages stored) and against
# RabbitMQ's Web-STOMP plugin (enabled here if needed), one JSON line per run.
#
#   bash scripts/bench-chat.sh                       # 10,000 connections, 10 rooms, 100 and 200 msg/s
#   TARGETS=somsom RATES="100 300" bash scripts/bench-chat.sh
set -euo pipefail
source "$(dirname "$0")/bench-common.sh"
CONNECTIONS=${CONNECTIONS:-10000}
ROOMS=${ROOMS:-10}
RATES=${RATES:-100 200}
DURATION=${DURATION:-10}
PUBLISHERS=${PUBLISHERS:-4}

somsom() {
  local p; p=$(port)
  SOMSOM_DATABASE_URL="sqlite://$work/chat.db" SOMSOM_LOG__FORMAT=json SOMSOM_LISTEN=127.0.0.1:$p \
    SOMSOM_AUTH__ATTEMPTS_PER_ADDRESS_PER_MINUTE=100000 SOMSOM_CHAT__SEND_RATE_PER_SECOND=0 \
    SOMSOM_CHAT__MAX_CONNECTIONS_PER_USER=100000 "$server" >"$work/server.log" 2>&1 &
  local pid=$!
  url=http://127.0.0.1:$p
  for _ in $(seq 1 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
  account admin@bench.local >/dev/null
  SOMSOM_DATABASE_URL="sqlite://$work/chat.db" "$server" grant-admin admin@bench.local 2>/dev/null
  local admin; admin=$(curl -sf -X POST "$url/login" -H 'content-type: application/json' \
    -d '{"email":"admin@bench.local","password":"Festival1!"}' | json '["accessToken"]')
  local member; member=$(account member@bench.local)
  local rooms=""
  for i in $(seq 1 "$ROOMS"); do
    local id; id=$(curl -sf -X POST "$url/festivals/create" -H "authorization: Bearer $admin" \
      -H 'content-type: application/json' \
      -d "{\"title\":\"room $i\",\"startDate\":\"2099-08-15\",\"endDate\":\"2099-08-15\"}" | json '["id"]')
    curl -sf -X POST "$url/festivals/chatting/$id/join" -H "authorization: Bearer $member" >/dev/null
    rooms="$rooms${rooms:+,}$id"
  done
  for rate in $RATES; do
    echo "== somsom: $CONNECTIONS connections, $ROOMS rooms, $rate msg/s for ${DURATION}s"
    "$chat_load" --target somsom --url "ws://127.0.0.1:$p/ws-chat" --header "Authorization=Bearer $member" \
      --rooms "$rooms" --subscribers "$CONNECTIONS" --publishers "$PUBLISHERS" --rate "$rate" \
      --duration "$DURATION" --server-pid "$pid"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

rabbitmq() {
  # Debian's wrapper starts the broker through `su`, which resets its open-files limit to 1024:
  # with more connections than that it runs out (emfile), its memory monitor dies and every queue
  # process after it (`noproc`). Restart it with a limit that fits the load.
  local beam; beam=$(pgrep -f 'beam.smp.*rabbit' | head -1)
  if [ -z "$beam" ] || [ "$(awk '/open files/ {print $4}' "/proc/$beam/limits")" -lt $((CONNECTIONS * 2 + 1000)) ]; then
    rabbitmqctl stop >/dev/null 2>&1 || true
    su rabbitmq -s /bin/sh -c "ulimit -n $((CONNECTIONS * 2 + 1000)); /usr/lib/rabbitmq/bin/rabbitmq-server -detached"
    for _ in $(seq 1 60); do rabbitmqctl status >/dev/null 2>&1 && break; sleep 1; done
  fi
  rabbitmq-plugins enable --quiet rabbitmq_web_stomp >/dev/null
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/15674) 2>/dev/null && break; sleep 0.2; done
  local pid; pid=$(pgrep -f 'beam.smp.*rabbit' | head -1)
  local rooms; rooms=$(seq -s, 1 "$ROOMS")
  for rate in $RATES; do
    echo "== rabbitmq web-stomp $(rabbitmqctl version 2>/dev/null): $CONNECTIONS connections, $ROOMS rooms, $rate msg/s for ${DURATION}s"
    "$chat_load" --target rabbitmq --url ws://127.0.0.1:15674/ws --header host=/ --header login=guest \
      --header passcode=guest --rooms "$rooms" --subscribers "$CONNECTIONS" --publishers "$PUBLISHERS" \
      --rate "$rate" --duration "$DURATION" --server-pid "$pid"
  done
}

for target in ${TARGETS:-somsom rabbitmq}; do "$target"; done
