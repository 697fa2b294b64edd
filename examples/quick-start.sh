#!/usr/bin/env bash
# Weft in one minute: build the engine and the first-party plugins, then show what
# the Slack template and the high-value-orders filter do with a sample order.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null 2>&1
cargo build --release --quiet -p weft-engine
(cd plugins && cargo build --release --quiet)

engine_target="${CARGO_TARGET_DIR:-target}"
plugin_target="${CARGO_TARGET_DIR:-plugins/target}"
weft="$engine_target/release/weft"
plugins="$plugin_target/wasm32-wasip2/release"

echo "== weft plugin inspect slack.wasm"
"$weft" plugin inspect "$plugins/slack.wasm" | head -6
echo
echo "== weft plugin run slack.wasm on a new sales order"
"$weft" plugin run "$plugins/slack.wasm" \
    --event examples/events/sales_order.created.json \
    --config plugins/slack/example-config.json
echo
echo "== weft plugin run high-value-orders.wasm (threshold 100)"
"$weft" plugin run "$plugins/high_value_orders.wasm" \
    --event examples/events/sales_order.created.json \
    --config examples/configs/high-value-orders.json
