#!/usr/bin/env bash
# Makes sure every service the tests use is running, and exports the variables that point the
# tests at them. Source it:  source scripts/services.sh
#
#   Redis    127.0.0.1:6379 (started if down)          TEST_REDIS_URL
#   MariaDB  127.0.0.1:3306, root, no password         TEST_MYSQL_URL
#   moto     AWS SQS/SNS/DynamoDB/Cognito on loopback  AWS_ENDPOINT_URL (+ test credentials)
#   tansu    Kafka-protocol broker, in-memory storage  TEST_KAFKA_BROKERS (its binary: TEST_TANSU)
#   Python   with PyJWT, aiosmtpd, stomp.py, http_ece   TEST_PYTHON
#   Node     @stomp/stompjs, ws, playwright-core        TEST_NODE_MODULES
#   Chromium Debian's, for the web app's browser test  TEST_CHROMIUM
#   HAProxy  Debian's, for the rolling-restart test     TEST_HAPROXY
#   promtool Debian's, checks the alert rules            TEST_PROMTOOL
#
# Tools are installed once into $SOMSOM_CACHE (default ~/.cache/somsom), never into the repo.
# The moto and tansu processes started here are stopped when the sourcing shell exits.

SOMSOM_CACHE=${SOMSOM_CACHE:-$HOME/.cache/somsom}
mkdir -p "$SOMSOM_CACHE/logs" "$SOMSOM_CACHE/tools"
TANSU_VERSION=0.6.0

_log() { echo "[services] $*" >&2; }

_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

_wait_for() { # _wait_for NAME SECONDS COMMAND...
  local name=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  _log "$name did not come up within ${secs}s"; return 1
}

_tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

_ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
  command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }
  _log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  _wait_for redis 30 redis-cli -h 127.0.0.1 -p 6379 ping
}

_ensure_mariadb() {
  if mariadb -h 127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1; then return 0; fi
  command -v mariadbd >/dev/null || { apt-get update -qq && apt-get install -y -qq mariadb-server; }
  _log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  _wait_for mariadb 60 mariadb -h 127.0.0.1 -uroot -e 'SELECT 1'
}

_ensure_moto() {
  local venv=$SOMSOM_CACHE/venv
  if [ ! -x "$venv/bin/moto_server" ]; then
    _log "installing moto[server] into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]>=5,<6'
  fi
  # PyJWT checks SomSom's tokens against its JWKS; aiosmtpd receives its e-mail; stomp.py is a
  # third-party STOMP client for the chat; http_ece decrypts what the Web Push sender encrypts;
  # schemathesis fuzzes the API from its OpenAPI document.
  "$venv/bin/python" -c 'import jwt, cryptography, aiosmtpd, stomp, websocket, http_ece, schemathesis' 2>/dev/null \
    || "$venv/bin/pip" install -q --disable-pip-version-check 'pyjwt[crypto]>=2.8,<3' 'aiosmtpd>=1.4,<2' \
      'stomp.py>=8.1,<9' 'websocket-client>=1.6,<2' 'http_ece>=1.2,<2' 'schemathesis>=4.32,<5'
  export TEST_PYTHON="$venv/bin/python"
  local port; port=$(_free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$SOMSOM_CACHE/logs/moto.log" 2>&1 &
  SOMSOM_MOTO_PID=$!
  _wait_for moto 60 curl -sf "http://127.0.0.1:$port/moto-api/" || return 1
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  export AWS_REGION=${AWS_REGION:-ap-northeast-2}
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}
  export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
  export AWS_EC2_METADATA_DISABLED=true
}

_ensure_tansu() {
  local bin=$SOMSOM_CACHE/tools/bin/tansu
  if [ ! -x "$bin" ]; then
    _log "building tansu $TANSU_VERSION (a Kafka-protocol broker; about 18 minutes, once)"
    CARGO_TARGET_DIR=$SOMSOM_CACHE/tansu-target cargo install tansu --version "$TANSU_VERSION" \
      --locked --features dynostore --root "$SOMSOM_CACHE/tools" >"$SOMSOM_CACHE/logs/tansu-install.log" 2>&1 \
      || { tail -n 30 "$SOMSOM_CACHE/logs/tansu-install.log" >&2; return 1; }
    rm -rf "$SOMSOM_CACHE/tansu-target"
  fi
  export TEST_TANSU="$bin"
  local port; port=$(_free_port)
  "$bin" broker --storage-engine memory://tansu/ \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    >"$SOMSOM_CACHE/logs/tansu.log" 2>&1 &
  SOMSOM_TANSU_PID=$!
  _wait_for tansu 60 _tcp_open 127.0.0.1 "$port" || { tail -n 20 "$SOMSOM_CACHE/logs/tansu.log" >&2; return 1; }
  export TEST_KAFKA_BROKERS="127.0.0.1:$port"
}

_ensure_node_clients() {
  # @stomp/stompjs (with ws, since Node 20 has no WebSocket) for the chat's client tests.
  local dir=$SOMSOM_CACHE/node
  if [ ! -d "$dir/node_modules/@stomp/stompjs" ] || [ ! -d "$dir/node_modules/ws" ]; then
    _log "installing @stomp/stompjs and ws into $dir"
    mkdir -p "$dir"
    [ -f "$dir/package.json" ] || echo '{"private":true}' >"$dir/package.json"
    (cd "$dir" && npm install --silent --no-audit --no-fund '@stomp/stompjs@^7' 'ws@^8') || return 1
  fi
  export TEST_NODE_MODULES="$dir/node_modules"
}

_ensure_browser() {
  # Debian's Chromium and playwright-core (which drives it; it never downloads a browser here)
  # for the web app's end-to-end test.
  if ! command -v chromium >/dev/null || [ ! -d /usr/share/fonts/truetype/nanum ]; then
    _log "installing Debian's chromium and a Korean font (for legible screenshots)"
    { apt-get install -y -qq chromium fonts-nanum || { apt-get update -qq && apt-get install -y -qq chromium fonts-nanum; }; } \
      >"$SOMSOM_CACHE/logs/chromium-install.log" 2>&1 || { tail -n 20 "$SOMSOM_CACHE/logs/chromium-install.log" >&2; return 1; }
  fi
  export TEST_CHROMIUM=${TEST_CHROMIUM:-$(command -v chromium)}
  local dir=$SOMSOM_CACHE/node
  if [ ! -d "$dir/node_modules/playwright-core" ]; then
    _log "installing playwright-core into $dir"
    (cd "$dir" && npm install --silent --no-audit --no-fund 'playwright-core@^1.50') || return 1
  fi
}

_ensure_ops_tools() {
  # Debian's HAProxy (the rolling-restart test runs deploy/haproxy/haproxy.cfg) and promtool
  # (checks deploy/prometheus/alerts.yml). Installed only; neither runs as a service here.
  if ! command -v haproxy >/dev/null || ! command -v promtool >/dev/null; then
    _log "installing Debian's haproxy and prometheus (for promtool)"
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy prometheus \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy prometheus; }; } \
      >"$SOMSOM_CACHE/logs/ops-tools-install.log" 2>&1 || { tail -n 20 "$SOMSOM_CACHE/logs/ops-tools-install.log" >&2; return 1; }
    # The package's own Prometheus is not wanted on a test machine.
    { systemctl stop prometheus prometheus-node-exporter || pkill -x prometheus; } >/dev/null 2>&1 || true
  fi
  export TEST_HAPROXY=${TEST_HAPROXY:-$(command -v haproxy)}
  export TEST_PROMTOOL=${TEST_PROMTOOL:-$(command -v promtool)}
}

_stop_services() {
  [ -n "${SOMSOM_MOTO_PID:-}" ] && kill "$SOMSOM_MOTO_PID" 2>/dev/null
  [ -n "${SOMSOM_TANSU_PID:-}" ] && kill "$SOMSOM_TANSU_PID" 2>/dev/null
  return 0
}
trap _stop_services EXIT

_ensure_redis
_ensure_mariadb
_ensure_moto
_ensure_tansu
_ensure_node_clients
_ensure_browser
_ensure_ops_tools

export TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
export TEST_MYSQL_URL=${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306}

# Databases left behind by tests that panicked in earlier runs (tests name them somsom_t_*).
mariadb -h 127.0.0.1 -uroot -N -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'somsom\\_t\\_%'" \
  | while read -r db; do mariadb -h 127.0.0.1 -uroot -e "DROP DATABASE \`$db\`"; done

_log "redis=$TEST_REDIS_URL mysql=$TEST_MYSQL_URL kafka=$TEST_KAFKA_BROKERS aws=$AWS_ENDPOINT_URL"
