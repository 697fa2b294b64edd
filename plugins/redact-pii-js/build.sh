#!/usr/bin/env bash
# Builds the redact-pii component from JavaScript: ./build.sh OUT.wasm
# Works from any directory; installs the pinned toolchain from package-lock.json
# the first time and whenever the lock file changes.
set -euo pipefail

out=$(realpath -m -- "${1:?usage: build.sh OUT.wasm}")
cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ ! -d node_modules || package-lock.json -nt node_modules ]]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  touch node_modules
fi
node build.mjs "$out"
