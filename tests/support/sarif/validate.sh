#!/usr/bin/env bash
# validate.sh FILE.sarif — the scanner tests' SARIF check: installs the pinned validator
# (package-lock.json) once into ${XDG_CACHE_HOME:-$HOME/.cache}/tlsward-sarif-check, then runs it.
set -Eeuo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${XDG_CACHE_HOME:-$HOME/.cache}/tlsward-sarif-check
if ! cmp -s "$HERE/package-lock.json" "$DIR/package-lock.json" 2>/dev/null; then
  rm -rf "$DIR"; mkdir -p "$DIR"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$DIR/"
  (cd "$DIR" && npm ci --silent --no-audit --no-fund --loglevel=error >&2)
fi
FILE=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cp "$HERE/validate.js" "$DIR/"
cd "$DIR" && node validate.js "$FILE"
