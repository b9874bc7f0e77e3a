#!/usr/bin/env bash
# proxy-e2e.sh — the second half of `make bench-proxy`: what `tlsward proxy` costs an app. The
# seed's FastAPI app (bench/peer/seed_app.py, WORKERS uvicorn workers) serving TLS itself
# (uvicorn --ssl-*, as the peer of `make bench` runs) against the same app on plain loopback HTTP
# behind `tlsward proxy`, same database (bench/peer/setup-db.sh: 10,000 users, verify-full client
# certificate from the app), GET /users/{random id}, keep-alive. ROUNDS rounds alternating the
# two; median (min–max) of req/s, p50, p99 and the CPU per request of the serving processes (the
# app's, plus tlsward's when it is in front; the database's is not counted). Writes
# bench/proxy-e2e-results.md.
#
# env: BENCH_WORK (bench/work, git-ignored), DURATION (15), WARMUP (5), ROUNDS (3),
#      CONNECTIONS (64), WORKERS (2), DB_PORT (26260), base port PORT (9570: app, +1 tlsward,
#      +2 tlsward's admin)
set -Eeuo pipefail
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO" >&2' ERR
cd "$(dirname "$0")/.."
ROOT=$PWD
. bench/lib.sh
PEER=$ROOT/bench/peer
W=$(mkdir -p "${BENCH_WORK:-$ROOT/bench/work}/proxy-e2e" && cd "${BENCH_WORK:-$ROOT/bench/work}/proxy-e2e" && pwd)
chmod 755 "$W"
DURATION=${DURATION:-15} WARMUP=${WARMUP:-5} ROUNDS=${ROUNDS:-3} CONNS=${CONNECTIONS:-64} WORKERS=${WORKERS:-2}
DB_PORT=${DB_PORT:-26260} APP=${PORT:-9570}
TW=$((APP + 1)) TW_ADMIN=$((APP + 2))
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tlsward
OUT=$ROOT/bench/proxy-e2e-results.md
[ -x "$BIN" ] || cargo build --release --locked
BIN=$BIN "$PEER/setup-db.sh" "$W/db" "$DB_PORT" >/dev/null
PKI=$W/db/pki

PIDS=()
trap 'stop_all; "$PEER/setup-db.sh" stop "$W/db" >/dev/null 2>&1 || true' EXIT
wait_up() { for _ in $(seq 240); do curl -fsS -k --max-time 2 -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.5; done
  echo "nothing answers $1; see $W/*.log" >&2; return 1; }
HZ=$(getconf CLK_TCK)
RESULTS=$W/results.tsv; : >"$RESULTS"
# run SYSTEM ROUND URL PID… -> one TSV line: system round rps p50 p99 errors cpu_us_per_request
run() {
  local system=$1 round=$2 url=$3; shift 3
  local wrk=(wrk -t1 -c"$CONNS" --timeout 5s -s "$ROOT/bench/wrk.lua")
  timeout $((WARMUP + 30)) "${wrk[@]}" -d "${WARMUP}s" "$url" >/dev/null
  local s0 s1 out; s0=$(ticks "$@")
  out=$(timeout $((DURATION + 30)) "${wrk[@]}" -d "${DURATION}s" --latency "$url" | grep '^RESULT')
  s1=$(ticks "$@")
  v() { tr ' ' '\n' <<<"$out" | sed -n "s/^$1=//p"; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$round" "$(v rps)" "$(v p50_ms)" "$(v p99_ms)" \
    "$(( $(v errors) + $(v non2xx) ))" "$(awk -v t=$((s1 - s0)) -v hz="$HZ" -v n="$(v requests)" 'BEGIN{printf "%.1f", t / hz * 1e6 / n}')" | tee -a "$RESULTS"
}
uvicorn_tls() {
  "$PEER/run-seed.sh" "$W/venv" "$PKI" "$APP" "$DB_PORT" "$WORKERS" >"$W/seed-tls.log" 2>&1 & PIDS+=($!)
  wait_up "https://127.0.0.1:$APP/users/1"
  run "uvicorn --ssl" "$1" "https://127.0.0.1:$APP" "${PIDS[@]}"
  stop_all
}
behind_tlsward() {
  SEED_TLS=0 "$PEER/run-seed.sh" "$W/venv" "$PKI" "$APP" "$DB_PORT" "$WORKERS" >"$W/seed-plain.log" 2>&1 & PIDS+=($!)
  TLSWARD_LOG=warn "$BIN" proxy --listen "127.0.0.1:$TW" --admin-listen "127.0.0.1:$TW_ADMIN" --tls-dir "$PKI/server" \
    --upstream "http://127.0.0.1:$APP" --kube-events off >"$W/tlsward.log" 2>&1 & PIDS+=($!)
  wait_up "https://127.0.0.1:$TW/users/1"
  run "tlsward proxy → uvicorn" "$1" "https://127.0.0.1:$TW" "${PIDS[@]}"
  stop_all
}
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then uvicorn_tls "$round"; behind_tlsward "$round"; else behind_tlsward "$round"; uvicorn_tls "$round"; fi
done

python3 - "$RESULTS" "$OUT" "$DURATION" "$ROUNDS" "$CONNS" "$WORKERS" "$(nproc)" <<'PY'
import statistics as st, sys
res, out, duration, rounds, conns, workers, cpus = sys.argv[1:]
rows = [l.split("\t") for l in open(res).read().splitlines() if l]
def cell(vals, fmt):
    vals = sorted(vals)
    return f"{fmt(st.median(vals))} ({fmt(vals[0])}–{fmt(vals[-1])})"
L = ["# What `tlsward proxy` costs an app: the seed app behind it vs serving TLS itself", "",
     f"Written by `make bench-proxy` (bench/proxy-e2e.sh). {cpus} CPUs. The seed's FastAPI app (bench/peer/seed_app.py,",
     f"{workers} uvicorn workers, SQLAlchemy + psycopg2, verify-full client certificate to PostgreSQL set up like a secure",
     "CockroachDB, 10,000 users) serving TLS itself (uvicorn --ssl-certfile/--ssl-keyfile, the dev certificate) or on plain",
     "loopback HTTP behind `tlsward proxy` (same certificate). wrk -t1, GET /users/{random id},",
     f"{conns} keep-alive connections, {duration} s per run after a warm-up, {rounds} rounds alternating; median (min–max).",
     "CPU per request = user + system time of the serving processes (the app's; with the proxy, the app's and tlsward's) / requests.", "",
     "| serving | req/s | p50 ms | p99 ms | errors | CPU µs / request |", "|---|---|---|---|---|---|"]
med = {}
for system in ("uvicorn --ssl", "tlsward proxy → uvicorn"):
    r = [x for x in rows if x[0] == system]
    rps = [float(x[2]) for x in r]; p50 = [float(x[3]) for x in r]; p99 = [float(x[4]) for x in r]; cpu = [float(x[6]) for x in r]
    med[system] = (st.median(rps), st.median(p99), st.median(cpu))
    L.append(f"| {system} | {cell(rps, lambda v: f'{v:,.0f}')} | {cell(p50, lambda v: f'{v:.1f}')} | {cell(p99, lambda v: f'{v:.1f}')} | "
             f"{sum(int(x[5]) for x in r)} | {cell(cpu, lambda v: f'{v:,.0f}')} |")
a, b = med["uvicorn --ssl"], med["tlsward proxy → uvicorn"]
L += ["", f"Behind tlsward / serving TLS itself (medians): req/s {b[0] / a[0]:.2f}×, p99 {b[1] / a[1]:.2f}×, CPU per request {b[2] / a[2]:.2f}×."]
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
