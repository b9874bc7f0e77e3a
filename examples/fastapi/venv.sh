#!/usr/bin/env bash
# venv.sh — makes (or refreshes, when the requirements changed) a virtualenv with the example
# app's pinned requirements.
#
# usage: venv.sh VENV [REQUIREMENTS]   (REQUIREMENTS: this directory's requirements.txt)
set -Eeuo pipefail
[ $# -ge 1 ] || { sed -n '4,5p' "$0" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=$1 REQ=${2:-$HERE/requirements.txt}
# Two callers at once (make bench starts the 1- and the 2-worker app together) take turns:
# two pip installs into one virtualenv break it.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if ! cmp -s "$REQ" "$VENV/.requirements" 2>/dev/null; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  cp "$REQ" "$VENV/.requirements"
fi
