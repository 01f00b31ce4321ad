#!/usr/bin/env bash
# The whole test suite, against real services: starts what is missing (scripts/services.sh),
# then runs every test of every crate with every feature. A missing service fails, never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/somsom/target}
# shellcheck source=scripts/services.sh
source scripts/services.sh
export SOMSOM_REQUIRE_SERVICES=1

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --all-targets --no-fail-fast --failure-output final
else
  cargo test --workspace --all-features --all-targets --no-fail-fast
fi
cargo test --workspace --all-features --doc
