#!/usr/bin/env bash
# Builds the redact-pii component from Python: ./build.sh OUT.wasm
# Works from any directory; keeps the pinned componentize-py in .venv beside it.
set -euo pipefail

out=$(realpath -m -- "${1:?usage: build.sh OUT.wasm}")
cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/componentize-py -d ../../wit/v0.1.0 -w transformer componentize app -o "$out"
