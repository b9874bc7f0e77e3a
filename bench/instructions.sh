#!/usr/bin/env bash
# instructions.sh — user-space instructions per request of tlsward builds (and nginx), counted
# by valgrind's callgrind: the same binary and requests give nearly the same count whatever
# else the machine is doing (within 2 % between runs here: how reads and wake-ups batch still
# depends on timing), so a change of a few per cent can be told from noise that a req/s
# figure on a shared 2-core machine cannot resolve. The kernel's share (TCP,
# epoll, wake-ups) is not counted: compare these figures alongside CPU time, not instead of it.
#
# Each server runs under callgrind with instrumentation off until the load starts; wrk (1
# thread, CONNECTIONS connections, bench/wrk-count.lua) sends exactly SMALL and then LARGE
# responses' worth of requests, each on new connections, and the count of each run is dumped.
# Instructions per request = (I_large - I_small) / (N_large - N_small): the handshakes and the
# set-up of the connections cancel out. The function breakdown of the large run is kept
# (callgrind_annotate) in BENCH_WORK for reading.
#
# usage: bench/instructions.sh LABEL=BINARY... [nginx]
#   LABEL=BINARY   a tlsward build (`tlsward serve`, the static `GET /`, or the API with API=1)
#   nginx          nginx sending tlsward's own `GET /` response (body and security headers),
#                  one process, as the static reference of `make bench`
# env: API (0: GET /; 1: GET /users/{random id} with a token), CONNECTIONS (16), SMALL (2000),
#      LARGE (12000), DB_PORT (26272), PORT (9643), ADMIN_PORT (9691), BENCH_WORK
#      (bench/work/instructions); writes bench/instructions-results.md (static) or
#      bench/instructions-api-results.md (API=1)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD PEER=$PWD/bench/peer
. bench/lib.sh
[ $# -ge 1 ] || { sed -n '15,22p' "$0" >&2; exit 2; }
API=${API:-0} CONNS=${CONNECTIONS:-16} SMALL=${SMALL:-2000} LARGE=${LARGE:-12000}
DB_PORT=${DB_PORT:-26272} PORT=${PORT:-9643} ADMIN_PORT=${ADMIN_PORT:-9691}
W=$(mkdir -p "${BENCH_WORK:-$ROOT/bench/work/instructions}" && cd "${BENCH_WORK:-$ROOT/bench/work/instructions}" && pwd)
chmod 755 "$W"
OUT=$ROOT/bench/instructions-results.md
[ "$API" = 1 ] && OUT=$ROOT/bench/instructions-api-results.md
need valgrind valgrind; need wrk wrk; need curl curl
for s in "$@"; do [ "$s" != nginx ] || need nginx nginx; done
FIRST=
for s in "$@"; do [ "$s" = nginx ] || { FIRST=${s#*=}; break; }; done
[ -n "$FIRST" ] || { echo "name at least one tlsward build (LABEL=BINARY)" >&2; exit 2; }
DSN=$(BIN=$FIRST "$PEER/setup-db.sh" "$W/db" "$DB_PORT" | tail -1)
PKI=$W/db/pki
mkdir -p "$W/tokens"; [ -s "$W/tokens/k1" ] || "$FIRST" token new-key --token-key-dir "$W/tokens" --kid k1 >/dev/null
TOKEN=
[ "$API" = 1 ] && TOKEN=$("$FIRST" token issue --sub bench --ttl 15m --token-key-dir "$W/tokens")
export TLSWARD_LISTEN=127.0.0.1:$PORT TLSWARD_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT TLSWARD_TLS_DIR=$PKI/server
export TLSWARD_TOKEN_KEY_DIR=$W/tokens TLSWARD_DB_URL=$DSN TLSWARD_LOG=warn
# Under callgrind a start-up takes seconds: longer timeouts than a real deployment's.
export TLSWARD_HANDSHAKE_TIMEOUT=60s TLSWARD_HEADER_TIMEOUT=60s
PID=
trap 'stop; "$PEER/setup-db.sh" stop "$W/db" >/dev/null 2>&1 || true' EXIT
CG=(valgrind --tool=callgrind --instr-atstart=no)
up() { for _ in $(seq 600); do curl -fsSk --max-time 5 -o /dev/null "$1" 2>/dev/null && return 0
  kill -0 "$PID" 2>/dev/null || { echo "the server exited; see $W/*.log" >&2; exit 1; }; sleep 0.5; done; exit 1; }
# dump PID N -> the instructions counted since the last dump (callgrind's Nth dump of PID)
dump() {
  callgrind_control -d "$1" >/dev/null 2>&1
  local f=$W/callgrind.out.$1.$2
  for _ in $(seq 100); do [ -s "$f" ] && grep -q '^totals:' "$f" && break; sleep 0.1; done
  awk '/^totals:/ { print $2; exit }' "$f"
}
# count PID N DUMP -> "requests instructions" of a run of N responses on new connections
count() {
  callgrind_control -i on "$1" >/dev/null 2>&1
  local out; out=$(STOP_AFTER=$2 API=$API TOKEN=$TOKEN timeout 900 wrk -t1 -c"$CONNS" -d 800s --timeout 60s \
    -s "$ROOT/bench/wrk-count.lua" "https://localhost:$PORT" | grep '^RESULT')
  callgrind_control -i off "$1" >/dev/null 2>&1
  local n; n=$(sed -n 's/.*requests=\([0-9]*\) non2xx=0$/\1/p' <<<"$out")
  [ -n "$n" ] || { echo "the run did not end with $2 good responses: ${out:-no RESULT line}" >&2; exit 1; }
  echo "$n $(dump "$1" "$3")"
}
ROWS=$W/rows.tsv; : >"$ROWS"
measure() { # label -> one TSV row: label requests_small instr_small requests_large instr_large
  local small large; small=$(count "$PID" "$SMALL" 1); large=$(count "$PID" "$LARGE" 2)
  callgrind_annotate --inclusive=no "$W/callgrind.out.$PID.2" >"$W/$1.annotate.txt" 2>/dev/null || true
  printf '%s\t%s\t%s\n' "$1" "${small// /$'\t'}" "${large// /$'\t'}" | tee -a "$ROWS"
}
rm -f "$W"/callgrind.out.*
for s in "$@"; do
  if [ "$s" = nginx ]; then
    # tlsward's own `GET /` response, from the first build
    "$FIRST" serve >"$W/root.log" 2>&1 & PID=$!; up "https://localhost:$PORT/"
    curl -fsS -k --http1.1 -D "$W/root.head" -o "$W/root.body" "https://localhost:$PORT/"; stop
    tr -d '\r' <"$W/root.head" | grep -iv '^\(HTTP/\|content-type:\|content-length:\|date:\|connection:\|$\)' >"$W/root.headers"
    (cd "$W" && BODY=$(cat "$W/root.body") HEADERS=$W/root.headers WRAP="${CG[*]}" \
      exec "$PEER/run-nginx.sh" "$PKI" "$W/nginx" "$PORT" 1) >"$W/nginx.log" 2>&1 & PID=$!
    up "https://localhost:$PORT/"; measure nginx; stop
  else
    (cd "$W" && exec "${CG[@]}" "${s#*=}" serve) >"$W/${s%%=*}.log" 2>&1 & PID=$!
    up "http://127.0.0.1:$ADMIN_PORT/readyz"; measure "${s%%=*}"; stop
  fi
done
python3 - "$ROWS" "$OUT" "$API" "$CONNS" <<'PY'
import os, sys, time
rows, out, api, conns = sys.argv[1:]
data = [l.rstrip("\n").split("\t") for l in open(rows) if l.strip()]
what = "`GET /users/{random 1..10000}` with a bearer token" if api == "1" else "the static `GET /`"
L = ["# Instructions per request (callgrind)\n",
     f"`bench/instructions.sh` on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC: {what}, keep-alive, "
     f"wrk 1 thread, {conns} connections; user-space instructions of the server's processes counted by valgrind's "
     "callgrind (the kernel's share is not in them). Two runs on new connections, a small and a large one; "
     "per request = the difference of their instructions / the difference of their requests, so that the "
     "handshakes cancel out.\n",
     "| server | requests (small, large) | instructions (small, large) | instructions per request |",
     "|---|---|---|---|"]
per = {}
for label, ns, is_, nl, il in data:
    per[label] = (int(il) - int(is_)) / (int(nl) - int(ns))
    L.append(f"| {label} | {int(ns):,}, {int(nl):,} | {int(is_):,}, {int(il):,} | **{per[label]:,.0f}** |")
base = data[0][0]
if len(per) > 1:
    L.append("")
    L += [f"- {k} / {base}: ×{v / per[base]:.3f}" for k, v in per.items() if k != base]
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
