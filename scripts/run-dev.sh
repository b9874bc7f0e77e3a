#!/usr/bin/env bash
# run-dev.sh — `make run`: the local default. A dev PKI, a throwaway PostgreSQL set up like a
# secure CockroachDB on 127.0.0.1:26257 (TLS only, client certificates), a few users, and
# `tlsward serve` on https://127.0.0.1:8443. Ctrl-C stops both.
#
# env: DEV_DIR (default .dev: git-ignored), DB_PORT (26257), BIN ($CARGO_TARGET_DIR/debug/tlsward)
set -Eeuo pipefail
. "$(dirname "$0")/dev-env.sh"

export TLSWARD_TLS_DIR=$PKI/server TLSWARD_TOKEN_KEY_DIR=$PKI/tokens
export TLSWARD_DB_URL=$DEV_DB_URL
"$BIN" serve &
PID=$!; PIDS+=("$PID")
wait_ready http://127.0.0.1:9090/readyz "$PID" tlsward

# A few users (the table was created by tlsward's migration).
scripts/pg.sh psql "$PG_DIR" -d app -c "INSERT INTO users (id, username, email) SELECT g, 'user' || g, 'user' || g || '@example.com' FROM generate_series(1, 5) AS g ON CONFLICT DO NOTHING" >/dev/null

TOKEN=$("$BIN" token issue --sub dev --ttl 15m)
cat >&2 <<MSG

tlsward is serving https://localhost:8443 (admin: http://127.0.0.1:9090/metrics). Try:

  curl --cacert $PKI/ca/ca.crt -H "Authorization: Bearer $TOKEN" https://localhost:8443/users/1

A new token (15 minutes): $BIN token issue --sub you --token-key-dir $PKI/tokens
Ctrl-C stops tlsward and PostgreSQL.
MSG
wait "$PID"
