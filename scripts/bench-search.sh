#!/usr/bin/env bash
# Festival search over HTTP, as the seed measured it and at 100,000 festivals, on SQLite and
# MariaDB, cached and uncached. Prints one JSON line per measurement (somsom-load).
#   bash scripts/bench-search.sh            # both databases
#   DBS=sqlite bash scripts/bench-search.sh
set -euo pipefail
# shellcheck source=scripts/bench-common.sh
source "$(dirname "$0")/bench-common.sh"

# Common keywords, rarer ones, English, one syllable, and one that matches nothing.
WORDS="축제,불꽃,서울,벚꽃 축제,재즈,Festival,beer,여수,꽃,야시장,드론 라이트쇼,Jeju Sea,없는키워드"

serve() { # serve DB_URL TTL -> sets url, pid
  local p; p=$(port)
  SOMSOM_LISTEN=127.0.0.1:$p SOMSOM_DATABASE_URL=$1 SOMSOM_SEARCH_CACHE_TTL_SECS=$2 \
    SOMSOM_LOG__FILTER=warn "$server" >"$work/server.log" 2>&1 &
  pid=$!
  url=http://127.0.0.1:$p
  for _ in $(seq 1 100); do curl -sf "$url/healthz" >/dev/null && return 0; sleep 0.1; done
  cat "$work/server.log"; return 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

measure() { # measure DB_URL LABEL
  local db=$1 label=$2
  for ttl in 0 600; do
    local mode; [ "$ttl" = 0 ] && mode=uncached || mode=cached
    serve "$db" "$ttl"
    echo "== $label $mode: the same keyword 100 times, one after another (the seed's test)"
    "$load" "$url/festivals/search?keyword=%EC%B6%95%EC%A0%9C" -n 100 -c 1 --warmup 5
    echo "== $label $mode: 13 keywords (common, rare, none), 1,000 calls, one after another"
    "$load" "$url/festivals/search?keyword={w}" -n 1000 -c 1 --warmup 13 --words "$WORDS"
    echo "== $label $mode: 13 keywords, 20,000 calls from 32 clients"
    "$load" "$url/festivals/search?keyword={w}" -n 20000 -c 32 --warmup 100 --words "$WORDS"
    stop
  done
}

for kind in ${DBS:-sqlite mariadb}; do
  for count in 100 100000; do
    case $kind in
      sqlite) db="sqlite://$work/bench-$count.db" ;;
      mariadb)
        name=somsom_bench_$count
        mariadb -h 127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $name; CREATE DATABASE $name CHARACTER SET utf8mb4"
        db="mysql://root@127.0.0.1:3306/$name" ;;
    esac
    echo "### $kind, $count festivals"
    SOMSOM_DATABASE_URL=$db SOMSOM_LOG__FILTER=warn "$server" generate-festivals --count "$count" --seed 42
    measure "$db" "$kind/$count"
    [ "$kind" = mariadb ] && mariadb -h 127.0.0.1 -uroot -e "DROP DATABASE $name"
  done
done
