#!/usr/bin/env bash
# setup-db.sh — the benchmarks' database: a dev PKI (`tlsward certs dev`) and a throwaway
# PostgreSQL set up like a secure CockroachDB (scripts/pg.sh: TLS only, client certificates,
# verify-full) with the users table of tlsward's migration and ROWS users. Idempotent.
#
# usage: setup-db.sh DIR PORT     create or start; prints the DSN (verify-full, client cert)
#        setup-db.sh stop DIR     stop the cluster
#
#   DIR/pki/   the dev PKI (see certs/README.md): ca/ca.crt, server/tls.*, db-client/client.app.*
#   DIR/pg/    the cluster (scripts/pg.sh)
# env: BIN (target/release/tlsward), ROWS (10000)
set -Eeuo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PG=$ROOT/scripts/pg.sh
if [ "${1:-}" = stop ]; then "$PG" stop "$2/pg"; exit 0; fi
[ $# -eq 2 ] || { sed -n '6,7p' "$0" >&2; exit 2; }
DIR=$(mkdir -p "$1" && cd "$1" && pwd) PORT=$2
BIN=${BIN:-$ROOT/target/release/tlsward} ROWS=${ROWS:-10000}
PKI=$DIR/pki
[ -s "$PKI/server/tls.crt" ] || "$BIN" certs dev --out "$PKI" >/dev/null
# The cluster runs as the postgres OS user when we are root, so it must reach DIR and the PKI.
chmod o+x "$DIR" "$PKI" "$PKI/db-server"
"$PG" start "$DIR/pg" "$PORT" "$PKI/db-server"
"$PG" psql "$DIR/pg" -d app <<SQL
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS users (id INT8 PRIMARY KEY, username TEXT NOT NULL, email TEXT NOT NULL,
                                  created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE UNIQUE INDEX IF NOT EXISTS users_username_key ON users (username);
ALTER TABLE users OWNER TO app;
INSERT INTO users (id, username, email)
  SELECT g, 'user' || g, 'user' || g || '@example.com' FROM generate_series(1, $ROWS) AS g
  ON CONFLICT DO NOTHING;
ANALYZE users;
SQL
echo "postgresql://app@localhost:$PORT/app?sslmode=verify-full&sslrootcert=$PKI/ca/ca.crt&sslcert=$PKI/db-client/client.app.crt&sslkey=$PKI/db-client/client.app.key"
