# dev-env.sh — sourced by run-dev.sh (`make run`) and run-sidecar.sh (`make run-sidecar`): the
# dev PKI (made once), a throwaway PostgreSQL set up like a secure CockroachDB on 127.0.0.1:DB_PORT
# (TLS only, client certificates), and a stop handler for it and the processes in PIDS.
#
# env: DEV_DIR (default .dev: git-ignored), DB_PORT (26257), BIN ($CARGO_TARGET_DIR/debug/tlsward)
cd "$(dirname "$0")/.."
DEV_DIR=${DEV_DIR:-.dev}
DB_PORT=${DB_PORT:-26257}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug/tlsward}
mkdir -p "$DEV_DIR"; DEV_DIR=$(cd "$DEV_DIR" && pwd)
PKI=$DEV_DIR/pki
PIDS=()

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
  echo "$(basename "$0"): port $DB_PORT is taken by another process; set DB_PORT" >&2; exit 1
fi
scripts/pg.sh start "$PG_DIR" "$DB_PORT" "$PKI/db-server"

stop() {
  trap - INT TERM EXIT
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do  # the last started stops first
    pid=${PIDS[i]}
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  done
  scripts/pg.sh stop "$PG_DIR" || true
  echo "stopped everything and PostgreSQL" >&2
}
trap stop EXIT
trap 'stop; exit 0' INT TERM

# The DSN of the dev database as user app, with the dev client certificate.
DEV_DB_URL="postgresql://app@localhost:$DB_PORT/app?sslmode=verify-full&sslrootcert=$PKI/ca/ca.crt&sslcert=$PKI/db-client/client.app.crt&sslkey=$PKI/db-client/client.app.key"

# wait_ready URL PID WHAT [CURL ARGS…]: polls URL until it answers, or fails when PID exits.
wait_ready() {
  local url=$1 pid=$2 what=$3; shift 3
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "$(basename "$0"): $what exited" >&2; exit 1; }
    sleep 0.1
  done
  curl -fsS -o /dev/null "$@" "$url" || { echo "$(basename "$0"): $what did not become ready" >&2; exit 1; }
}
