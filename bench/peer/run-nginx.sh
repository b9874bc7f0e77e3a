#!/usr/bin/env bash
# run-nginx.sh — the TLS reference: nginx answering every GET with a small static JSON body
# (no database) over TLS 1.3, with the same certificate as tlsward, in the foreground.
#
# usage: run-nginx.sh PKI WORK PORT [WORKERS]
#   PKI      the dev PKI of setup-db.sh (server/tls.crt, server/tls.key)
#   WORK     directory for nginx.conf, the pid file, logs and temp files
#   PORT     HTTPS port on 127.0.0.1; WORKERS nginx worker processes (1)
# env: BODY (the body; default a 55-byte user record), HEADERS (a file of `name: value` lines,
#      e.g. another server's response headers, added to every response; default none),
#      WRAP (a command to run nginx under, e.g. valgrind; nginx then runs as one process,
#      without a master)
set -Eeuo pipefail
[ $# -ge 3 ] || { sed -n '5,12p' "$0" >&2; exit 2; }
BODY=${BODY:-'{"id":1,"username":"user1","email":"user1@example.com"}'}
ADD_HEADERS=
if [ -n "${HEADERS:-}" ]; then
  ADD_HEADERS=$(tr -d '\r' <"$HEADERS" | awk 'NF { n = index($0, ":"); v = substr($0, n + 1); sub(/^ +/, "", v)
    printf "    add_header %s \"%s\" always;\n", substr($0, 1, n - 1), v }')
fi
PKI=$(cd "$1" && pwd) WORK=$(mkdir -p "$2" && cd "$2" && pwd) PORT=$3 WORKERS=${4:-1}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "run-nginx.sh: nginx is not installed (apt-get install nginx)" >&2; exit 1; }
mkdir -p "$WORK/tmp"
MASTER=on
[ -n "${WRAP:-}" ] && MASTER=off
cat >"$WORK/nginx.conf" <<CONF
daemon off;
master_process $MASTER;
worker_processes $WORKERS;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $WORK/tmp/body;
  proxy_temp_path $WORK/tmp/proxy;
  fastcgi_temp_path $WORK/tmp/fastcgi;
  uwsgi_temp_path $WORK/tmp/uwsgi;
  scgi_temp_path $WORK/tmp/scgi;
  # Keep-alive connections are never closed for their request count (as uvicorn and tlsward).
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$PORT ssl;
    ssl_certificate     $PKI/server/tls.crt;
    ssl_certificate_key $PKI/server/tls.key;
    ssl_protocols TLSv1.3;
$ADD_HEADERS
    location / {
      default_type application/json;
      return 200 '$BODY';
    }
  }
}
CONF
# shellcheck disable=SC2086 # WRAP is a command line
exec ${WRAP:-} "$NGINX" -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf"
