#!/usr/bin/env bash
# Builds the plugin into a WebAssembly component: ./build.sh OUT.wasm
# Works from any directory; keeps the pinned componentize-py in .venv beside it.
set -euo pipefail

# The Weft plugin contract. This path works inside the Weft repository; in a
# project of your own, copy the repository's wit/ folder next to this file and
# set WIT=wit/v0.1.0.
WIT=../../../wit/v0.1.0

out=$(realpath -m -- "${1:?usage: build.sh OUT.wasm}")
cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/componentize-py -d "$WIT" -w transformer componentize app -o "$out"
