#!/usr/bin/env bash
# Shared by the bench-*.sh scripts: builds the release server and load tool, makes a scratch
# directory removed on exit (with every background job), and finds free ports. Source it.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/somsom/target}
cargo build --release -q -p somsom-server -p somsom-load -p somsom-queue-load
server=$CARGO_TARGET_DIR/release/somsom-server
load=$CARGO_TARGET_DIR/release/somsom-load
queue_load=$CARGO_TARGET_DIR/release/somsom-queue-load
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
