#!/usr/bin/env bash
# The gate rush: check-ins per second of distinct tickets of one festival day through the HTTP
# API, 64 concurrent scanners, on SQLite and MariaDB; and confirmation e-mails per second from
# the outbox into a local SMTP sink (aiosmtpd). Prints one JSON line per run (somsom-load).
#   bash scripts/bench-gate.sh            # both databases
#   DBS=sqlite TICKETS=8000 bash scripts/bench-gate.sh
set -euo pipefail
# shellcheck source=scripts/bench-common.sh
source "$(dirname "$0")/bench-common.sh"
SCANNERS=64
TICKETS=${TICKETS:-20000}
RESERVATIONS=$((TICKETS / 4))
python=${TEST_PYTHON:-$HOME/.cache/somsom/venv/bin/python}

pending() { # mails not yet sent, read from the database
  case $1 in
    sqlite://*) python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL').fetchone()[0])" "${1#sqlite://}" ;;
    mysql://*) mariadb -h 127.0.0.1 -uroot -N somsom_bench_g -e 'SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL' ;;
  esac
}

mail_account() { # mail_account EMAIL -> prints an access token (the code read from the sink)
  : > "$work/mail.jsonl"
  curl -sf -X POST "$url/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"Festival1!\",\"name\":\"bench\"}" >/dev/null
  for _ in $(seq 1 50); do [ -s "$work/mail.jsonl" ] && break; sleep 0.1; done
  local code; code=$(tail -1 "$work/mail.jsonl" | python3 -c "import json,re,sys; print(re.search(r'\\b\\d{6}\\b', json.load(sys.stdin)['body']).group())")
  curl -sf -X POST "$url/confirm-signup" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"name\":\"bench\",\"code\":\"$code\"}" >/dev/null
  curl -sf -X POST "$url/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"Festival1!\"}" | json '["accessToken"]'
  : > "$work/mail.jsonl"
}

run() { # run DB_URL LABEL
  local p smtp; p=$(port); smtp=$(port)
  "$python" scripts/smtp_sink.py "$smtp" "$work/mail.jsonl" < <(sleep 100000) > /dev/null &
  export SOMSOM_DATABASE_URL=$1 SOMSOM_LOG__FORMAT=json SOMSOM_SMTP_URL=smtp://127.0.0.1:$smtp
  SOMSOM_LISTEN=127.0.0.1:$p SOMSOM_AUTH__ATTEMPTS_PER_ADDRESS_PER_MINUTE=100000 \
    SOMSOM_AUTH__SIGNUPS_PER_ADDRESS_PER_HOUR=1000 \
    "$server" >"$work/server.log" 2>&1 &
  local pid=$!
  url=http://127.0.0.1:$p
  for _ in $(seq 1 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
  # With SMTP configured, sign-up codes arrive at the sink, not in the log.
  mail_account admin@bench.local > /dev/null
  "$server" grant-admin admin@bench.local 2>/dev/null
  local admin; admin=$(curl -sf -X POST "$url/login" -H 'content-type: application/json' \
    -d '{"email":"admin@bench.local","password":"Festival1!"}' | json '["accessToken"]')
  local festival; festival=$(curl -sf -X POST "$url/festivals/create" -H "authorization: Bearer $admin" \
    -H 'content-type: application/json' \
    -d "{\"title\":\"Gate rush\",\"startDate\":\"2099-08-15\",\"endDate\":\"2099-08-15\",\"ticketsPerDay\":$TICKETS,\"maxPerReservation\":4,\"maxPerUserPerDay\":1000,\"saleQueued\":false}" \
    | json '["id"]')
  echo "$admin" > "$work/admin"
  # Buyers of up to 1,000 tickets each (the most a festival lets one person hold for a day).
  : > "$work/buyers"
  for i in $(seq 1 $(( (TICKETS + 999) / 1000 ))); do mail_account "buyer$i@bench.local" >> "$work/buyers"; done
  "$load" "$url/reservations" -X POST -n "$RESERVATIONS" -c "$(wc -l < "$work/buyers")" --tokens "$work/buyers" \
    --body "{\"festivalId\":$festival,\"festivalDate\":\"2099-08-15\",\"quantity\":4}" 2>/dev/null
  local start; start=$(date +%s.%N); local queued; queued=$(pending "$1")
  until [ "$(pending "$1")" = 0 ]; do sleep 0.2; done
  local took; took=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$start" "$(date +%s.%N)")
  echo "== $2: confirmation e-mails: $queued still queued when the $RESERVATIONS bookings ended, sent in ${took}s: $(python3 -c "print(round($queued / max($took, 0.01)))")/s ($(wc -l < "$work/mail.jsonl") received in all)"
  curl -sf "$url/checkins/festivals/$festival/days/2099-08-15" -H "authorization: Bearer $admin" \
    | python3 -c "import json,sys; [print(t['code']) for t in json.load(sys.stdin)['tickets']]" > "$work/codes"
  echo "== $2: check-ins of $(wc -l < "$work/codes") distinct tickets of one day, $SCANNERS concurrent scanners (somsom-load)"
  "$load" "$url/checkins" -X POST -n "$(wc -l < "$work/codes")" -c $SCANNERS --tokens "$work/admin" \
    --words-file "$work/codes" --body '{"code":"{w}","gate":"bench","festivalDate":"2099-08-15"}'
  echo "checked in (report): $(curl -sf "$url/admin/festivals/$festival/report" -H "authorization: Bearer $admin" | json '["days"][0]["checkedIn"]')"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$work/mail.jsonl"
}

for kind in ${DBS:-sqlite mariadb}; do
  case $kind in
    sqlite) db="sqlite://$work/gate.db" ;;
    mariadb)
      mariadb -h 127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS somsom_bench_g; CREATE DATABASE somsom_bench_g CHARACTER SET utf8mb4"
      db="mysql://root@127.0.0.1:3306/somsom_bench_g" ;;
  esac
  run "$db" "$kind"
done
