#!/usr/bin/env bash
# run-dev.sh — `make run`: the local default. A dev PKI, a throwaway PostgreSQL set up like a
# secure CockroachDB on 127.0.0.1:26257 (TLS only, client certificates), a few users, and
# `tlsward serve` on https://127.0.0.1:8443. Ctrl-C stops both.
#
# env: DEV_DIR (default .dev: git-ignored), DB_PORT (26257), BIN ($CARGO_TARGET_DIR/debug/tlsward)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
DEV_DIR=${DEV_DIR:-.dev}
DB_PORT=${DB_PORT:-26257}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug/tlsward}
mkdir -p "$DEV_DIR"; DEV_DIR=$(cd "$DEV_DIR" && pwd)
PKI=$DEV_DIR/pki

if [ ! -s "$PKI/server/tls.crt" ]; then
  "$BIN" certs dev --out "$PKI" >/dev/null
  echo "dev PKI written to $PKI" >&2
fi

# The cluster runs as the postgres OS user when we are root: it must be able to reach its
# directory. A home directory with mode 0700 is not reachable, so fall back to /tmp.
PG_DIR=$DEV_DIR/pg
if [ "$(id -u)" = 0 ] && ! runuser -u "${PG_OS_USER:-postgres}" -- test -x "$DEV_DIR" 2>/dev/null; then
  PG_DIR=${TMPDIR:-/tmp}/tlsward-dev-pg
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$DB_PORT") 2>/dev/null && [ ! -s "$PG_DIR/port" ]; then
  echo "run-dev.sh: port $DB_PORT is taken by another process; set DB_PORT" >&2; exit 1
fi
scripts/pg.sh start "$PG_DIR" "$DB_PORT" "$PKI/db-server"

stop() {
  trap - INT TERM EXIT
  if [ -n "${PID:-}" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi
  scripts/pg.sh stop "$PG_DIR" || true
  echo "stopped tlsward and PostgreSQL" >&2
}
trap stop EXIT
trap 'stop; exit 0' INT TERM


export TLSWARD_TLS_DIR=$PKI/server TLSWARD_TOKEN_KEY_DIR=$PKI/tokens
export TLSWARD_DB_URL="postgresql://app@localhost:$DB_PORT/app?sslmode=verify-full&sslrootcert=$PKI/ca/ca.crt&sslcert=$PKI/db-client/client.app.crt&sslkey=$PKI/db-client/client.app.key"
"$BIN" serve &
PID=$!
for _ in $(seq 1 200); do
  curl -fsS -o /dev/null http://127.0.0.1:9090/readyz 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || { echo "run-dev.sh: tlsward exited" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null http://127.0.0.1:9090/readyz || { echo "run-dev.sh: tlsward did not become ready" >&2; exit 1; }

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
