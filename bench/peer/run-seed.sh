#!/usr/bin/env bash
# run-seed.sh — the seed app (seed_app.py) under uvicorn with TLS, in the foreground.
#
# usage: run-seed.sh VENV PKI PORT DB_PORT [WORKERS]
#   VENV     virtualenv, made or refreshed from examples/fastapi/requirements.txt when that changed
#   PKI      the dev PKI of setup-db.sh (DIR/pki): server/tls.*, ca/ca.crt, db-client/client.app.*
#   PORT     HTTPS port on 127.0.0.1; DB_PORT the database's; WORKERS uvicorn processes (1)
# Access logging is off, as it is for tlsward under the benchmarks. SEED_TLS=0: plain HTTP on
# 127.0.0.1:PORT (the app behind `tlsward proxy`; its database connections stay its own TLS).
set -Eeuo pipefail
[ $# -ge 4 ] || { sed -n '4,9p' "$0" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
VENV=$1 PKI=$(cd "$2" && pwd) PORT=$3 DB_PORT=$4 WORKERS=${5:-1}
"$HERE/../../examples/fastapi/venv.sh" "$VENV"
export DATABASE_URL="postgresql+psycopg2://app@localhost:$DB_PORT/app"
export DB_SSLROOTCERT=$PKI/ca/ca.crt DB_SSLCERT=$PKI/db-client/client.app.crt DB_SSLKEY=$PKI/db-client/client.app.key
TLS=(--ssl-certfile "$PKI/server/tls.crt" --ssl-keyfile "$PKI/server/tls.key")
[ "${SEED_TLS:-1}" = 0 ] && TLS=()
exec "$VENV/bin/uvicorn" seed_app:app --app-dir "$HERE" --host 127.0.0.1 --port "$PORT" \
  --workers "$WORKERS" "${TLS[@]}" --log-level warning --no-access-log
