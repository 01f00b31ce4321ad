#!/usr/bin/env bash
# Reminders: plan and deliver 100,000 to a local sink (docs/benchmarks.md, "Reminders").
#   capacity: everything due at once, in memory and through an FCM stand-in over HTTP;
#   lateness: due times spread over 20 s (5,000/s), the delay after each due time.
# MYSQL_URL=mysql://root@127.0.0.1:3306/somsom_bench runs the same on MariaDB too.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/somsom/target}
cargo build --release -q -p somsom-push-load
load=$CARGO_TARGET_DIR/release/somsom-push-load
N=${REMINDERS:-100000}
run() { echo "# somsom-push-load $*" >&2; "$load" "$@"; }
run --reminders "$N" --sink memory
run --reminders "$N" --sink memory --spread-secs 20 --lead-secs 40
run --reminders "$N" --sink fcm
run --reminders "$N" --sink fcm --spread-secs 20 --lead-secs 40
run --reminders "$N" --sink fcm --spread-secs 40 --lead-secs 40
run --reminders "$N" --sink fcm --spread-secs 20 --lead-secs 40 --dispatchers 2
if [ -n "${MYSQL_URL:-}" ]; then
  db=${MYSQL_URL##*/}
  mariadb -h 127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\`"
  run --reminders "$N" --sink fcm --database "$MYSQL_URL"
  mariadb -h 127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\`"
  run --reminders "$N" --sink fcm --spread-secs 20 --lead-secs 60 --database "$MYSQL_URL"
  mariadb -h 127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS \`$db\`"
fi
