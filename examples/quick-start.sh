#!/usr/bin/env bash
# Weft in one command: build the engine and the first-party plugins, then run
# `weft serve` on http://127.0.0.1:8080 with an embedded SQLite file (./weft.db)
# and the plugins offered to every tenant. The first start prints an admin key
# (or takes WEFT_BOOTSTRAP_ADMIN_KEY): every /v1 call needs one. More arguments
# go to `weft serve` (`--allow-network 127.0.0.0/8 --allow-http` to deliver to
# a plain-http receiver on this machine). Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null 2>&1
cargo build --release --quiet -p weft-engine
(cd plugins && cargo build --release --quiet)

engine_target="${CARGO_TARGET_DIR:-target}"
plugin_target="${CARGO_TARGET_DIR:-plugins/target}"

exec "$engine_target/release/weft" serve \
    --database-url "${WEFT_DATABASE_URL:-sqlite://weft.db}" \
    --plugins-dir "$plugin_target/wasm32-wasip2/release" \
    "$@"
