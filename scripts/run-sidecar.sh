#!/usr/bin/env bash
# run-sidecar.sh — `make run-sidecar`: the example FastAPI app (examples/fastapi, the seed's
# service) behind `tlsward proxy` as the chart's `mode: sidecar` runs them in a pod: the app on a
# unix socket with no TLS setting at all; tlsward on https://localhost:8443 in front of it and on
# the app's database socket (.dev/run/.s.PGSQL.26257), which it opens to the dev PostgreSQL with
# verify-full and the client certificate. Ctrl-C stops the app, tlsward and PostgreSQL.
#
# env: DEV_DIR (default .dev: git-ignored), DB_PORT (26257), BIN ($CARGO_TARGET_DIR/debug/tlsward)
set -Eeuo pipefail
. "$(dirname "$0")/dev-env.sh"
RUN=$DEV_DIR/run
mkdir -p "$RUN"
examples/fastapi/venv.sh "$DEV_DIR/venv"

# The example's own database (serve's `users` table in `app` has another shape).
if ! scripts/pg.sh psql "$PG_DIR" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'shop'" | grep -q 1; then
  scripts/pg.sh psql "$PG_DIR" -d postgres -c "CREATE DATABASE shop OWNER app" >/dev/null
fi

"$BIN" proxy --tls-dir "$PKI/server" --upstream "unix:$RUN/app.sock" --upstream-health-path /healthz \
  --db-proxy-listen "unix:$RUN" --db-url "${DEV_DB_URL/\/app\?//shop?}" &
PID=$!; PIDS+=("$PID")
for _ in $(seq 1 100); do [ -S "$RUN/.s.PGSQL.26257" ] && break; sleep 0.1; done
# The schema, through the database socket (as the app will connect: no TLS, no certificate).
psql "host=$RUN port=26257 user=app dbname=shop" -X -q -v ON_ERROR_STOP=1 -f examples/fastapi/schema.sql

DATABASE_URL="postgresql+psycopg2://app@/shop?host=$RUN&port=26257" \
  "$DEV_DIR/venv/bin/uvicorn" app:app --app-dir examples/fastapi --uds "$RUN/app.sock" \
  --log-level warning --no-access-log &
APP=$!; PIDS+=("$APP")
wait_ready http://app/healthz "$APP" "the app" --unix-socket "$RUN/app.sock"
CURL="curl --cacert $PKI/ca/ca.crt"
$CURL -fsS -o /dev/null -H 'content-type: application/json' \
  -d '{"username": "ada", "email": "ada@example.com"}' https://localhost:8443/users 2>/dev/null || true

cat >&2 <<MSG

The example app is behind tlsward on https://localhost:8443 (admin: http://127.0.0.1:9090/metrics);
its database connections go through $RUN/.s.PGSQL.26257. Try:

  $CURL https://localhost:8443/users/1
  $CURL -H 'content-type: application/json' -d '{"username": "you", "email": "you@example.com"}' https://localhost:8443/users
  $BIN scan localhost:8443 --ca $PKI/ca/ca.crt

Ctrl-C stops the app, tlsward and PostgreSQL.
MSG
wait "$PID"
