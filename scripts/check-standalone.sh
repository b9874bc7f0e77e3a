#!/usr/bin/env bash
# check-standalone.sh — part of `make lint`: a clone of the repository has nothing beside it,
# so no tracked file may name the checkout's sibling directory "shared" (as a relative path
# one level up) or an absolute path of a developer's machine (under the root directories work,
# root, home or Users). Prints each offending line and exits 1 if there is one.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
# Written so that this file does not match them itself.
SIBLING='\.\./shared'
MACHINE='(^|[^A-Za-z0-9_.~$-])/(work|root|home|Users)/'
if git grep -nE -e "$SIBLING" -e "$MACHINE" -- . ':!Cargo.lock'; then
  echo "check-standalone: the lines above name a path outside the repository; a user's clone has nothing there" >&2
  exit 1
fi
