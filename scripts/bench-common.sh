#!/usr/bin/env bash
# Shared by the bench-*.sh scripts: builds the release server and load tool, makes a scratch
# directory removed on exit (with every background job), and finds free ports. Source it.
# SERVER_BIN runs another server build (an older commit's, say) under the same load;
# CHAT_LOAD_BIN another build of the chat load tool.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/somsom/target}
cargo build --release -q -p somsom-server -p somsom-load -p somsom-queue-load -p somsom-chat-load
server=${SERVER_BIN:-$CARGO_TARGET_DIR/release/somsom-server}
load=$CARGO_TARGET_DIR/release/somsom-load
queue_load=$CARGO_TARGET_DIR/release/somsom-queue-load
chat_load=${CHAT_LOAD_BIN:-$CARGO_TARGET_DIR/release/somsom-chat-load}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A confirmed account on the server at $url whose log (JSON, with codes) is $work/server.log.
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

account() { # account EMAIL -> prints an access token
  curl -sf -X POST "$url/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"Festival1!\",\"name\":\"bench\"}" >/dev/null
  local code
  code=$(grep -a "\"$1\"" "$work/server.log" | grep -ao '"code":"[0-9]\{6\}"' | tail -1 | grep -o '[0-9]\{6\}')
  curl -sf -X POST "$url/confirm-signup" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"name\":\"bench\",\"code\":\"$code\"}" >/dev/null
  curl -sf -X POST "$url/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"Festival1!\"}" | json '["accessToken"]'
}
