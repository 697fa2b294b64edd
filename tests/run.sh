#!/usr/bin/env bash
# Runs Weft's whole test suite from a fresh clone. Installs what it needs: the
# wasm32-wasip2 target here, and (on first use, from their own build scripts) the
# npm and PyPI packages of the JavaScript and Python plugins.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo rustup node npm python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool is required to run the tests" >&2; exit 1; }
done
rustup target add wasm32-wasip2

# Engine, SDK (doc examples included) and end-to-end tests, against plugins built
# from source. The CLI tests run the `weft` binary, which `cargo test` does not build.
cargo build --release --workspace --bins
cargo test --release --workspace

# The plugins' own unit tests, natively.
(cd plugins && cargo test --release --target "$(rustc -vV | sed -n 's/^host: //p')")

# The JavaScript and Python plugins' unit tests, with their languages' runners.
node --test plugins/redact-pii-js/test/
python3 -m unittest discover -s plugins/redact-pii-py -p 'test_*.py'
