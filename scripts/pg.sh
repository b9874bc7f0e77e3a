#!/usr/bin/env bash
# pg.sh — a throwaway PostgreSQL cluster set up like a secure CockroachDB:
# TLS only (hostssl), TLS 1.2+, server certificate from our own CA, clients authenticated by
# client certificate (cert clientcert=verify-full, CN = SQL user), database and role `app`.
#
# usage: pg.sh start DIR PORT CERT_DIR [--watch-pid PID]
#            CERT_DIR holds tls.crt, tls.key, ca.crt (the DB server Secret; ca.crt = the CAs
#            whose client certificates are accepted). With --watch-pid, the cluster is
#            stopped and DIR removed as soon as process PID exits (used by the tests).
#        pg.sh stop DIR             stop the cluster (fast shutdown)
#        pg.sh destroy DIR          stop it and remove DIR
#        pg.sh psql DIR [ARGS…]     psql as the superuser over the cluster's private socket
#        pg.sh reload-certs DIR CERT_DIR   install new server TLS files and SIGHUP
#
# Superuser access is only through the unix socket in DIR (mode 0700): TCP needs a client
# certificate. As root, the cluster runs as the OS user PG_OS_USER (default postgres).
# PG_LISTEN (default 127.0.0.1) and PG_CLIENTS (default 127.0.0.1/32) widen where it listens and
# whom it admits with a client certificate, e.g. the test cluster's bridge gateway and its Pods.
set -Eeuo pipefail

die() { echo "pg.sh: $*" >&2; exit 1; }
PG_OS_USER=${PG_OS_USER:-postgres}
PG_LISTEN=${PG_LISTEN:-127.0.0.1}
PG_CLIENTS=${PG_CLIENTS:-127.0.0.1/32}

find_pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
  local d; d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$d" ]; then echo "$d"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; fi
}
PG_BIN=$(find_pg_bin)
[ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || die "PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)"

is_root() { [ "$(id -u)" = 0 ]; }
as_db() { if is_root; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi; }
own() { if is_root; then chown -R "$PG_OS_USER": "$@"; fi; }

cmd=${1:-}; shift || true
case "$cmd" in
start)
  [ $# -ge 3 ] || die "usage: pg.sh start DIR PORT CERT_DIR [--watch-pid PID]"
  DIR=$1 PORT=$2 CERTS=$3; shift 3
  WATCH=""
  if [ "${1:-}" = --watch-pid ]; then WATCH=$2; fi
  mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
  for f in tls.crt tls.key ca.crt; do [ -s "$CERTS/$f" ] || die "$CERTS/$f: missing or empty"; done
  chmod 700 "$DIR"; own "$DIR"
  as_db test -x "$DIR" || die "$PG_OS_USER cannot reach $DIR: a parent directory is not traversable (chmod o+x it, or use another directory)"
  DATA=$DIR/data
  if [ ! -s "$DATA/PG_VERSION" ]; then
    as_db "$PG_BIN/initdb" -D "$DATA" -U postgres -E UTF8 --no-locale --auth-local=trust --auth-host=reject >/dev/null
  fi
  for f in tls.crt tls.key ca.crt; do install -m 600 "$CERTS/$f" "$DATA/server-$f"; done
  own "$DATA"
  cat > "$DATA/postgresql.auto.conf" <<CONF
listen_addresses = '$PG_LISTEN'
port = $PORT
unix_socket_directories = '$DIR'
unix_socket_permissions = 0700
ssl = on
ssl_cert_file = 'server-tls.crt'
ssl_key_file = 'server-tls.key'
ssl_ca_file = 'server-ca.crt'
ssl_min_protocol_version = 'TLSv1.2'
ssl_ciphers = 'ECDHE+AESGCM:ECDHE+CHACHA20'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
log_connections = off
CONF
  cat > "$DATA/pg_hba.conf" <<HBA
# superuser and setup: only over the private unix socket
local   all  all                 trust
# everything else: TLS + a client certificate whose CN is the role name
$(for c in ${PG_CLIENTS//,/ }; do echo "hostssl all  all   $c  cert clientcert=verify-full"; done)
HBA
  own "$DATA"
  if ! as_db "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    as_db "$PG_BIN/pg_ctl" -D "$DATA" start -w -t 60 -l "$DIR/postgres.log" >/dev/null \
      || { tail -20 "$DIR/postgres.log" >&2 || true; die "PostgreSQL did not start (log above: $DIR/postgres.log)"; }
  fi
  as_db "$PG_BIN/psql" -X -q -h "$DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL'
SELECT 'CREATE ROLE app LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app')\gexec
SELECT 'CREATE DATABASE app OWNER app' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app')\gexec
SQL
  echo "$PORT" > "$DIR/port"
  if [ -n "$WATCH" ]; then
    # Stop and remove the cluster when the watched process (a test binary) exits.
    SELF=$(cd "$(dirname "$0")" && pwd)/pg.sh
    nohup setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.3; done; "$2" destroy "$3"' _ "$WATCH" "$SELF" "$DIR" >/dev/null 2>&1 &
  fi
  ;;
stop|destroy)
  [ $# -ge 1 ] || die "usage: pg.sh $cmd DIR"
  DIR=$1
  if [ -s "$DIR/data/PG_VERSION" ] && as_db "$PG_BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    as_db "$PG_BIN/pg_ctl" -D "$DIR/data" stop -m fast -w >/dev/null
  fi
  if [ "$cmd" = destroy ]; then rm -rf "$DIR"; fi
  ;;
psql)
  [ $# -ge 1 ] || die "usage: pg.sh psql DIR [ARGS…]"
  DIR=$(cd "$1" && pwd); shift
  as_db "$PG_BIN/psql" -X -q -h "$DIR" -p "$(cat "$DIR/port")" -U postgres -v ON_ERROR_STOP=1 "$@"
  ;;
reload-certs)
  [ $# -ge 2 ] || die "usage: pg.sh reload-certs DIR CERT_DIR"
  DIR=$1 CERTS=$2
  for f in tls.crt tls.key ca.crt; do install -m 600 "$CERTS/$f" "$DIR/data/server-$f"; done
  own "$DIR/data"
  as_db "$PG_BIN/pg_ctl" -D "$DIR/data" reload >/dev/null
  ;;
*)
  sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
