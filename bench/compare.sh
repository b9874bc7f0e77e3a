#!/usr/bin/env bash
# compare.sh — `make bench`: tlsward side by side with the seed's FastAPI app (uvicorn, 1 and
# 2 workers) and nginx, in one run, on this machine, against one database; writes
# bench/RESULTS.md.
#
#   API:        GET /users/{random 1..10000}, keep-alive, 64 connections (and 1 connection)
#   handshakes: one request per new TLS connection, no session resumption (close-full),
#               tlsward's static `GET /` vs nginx's static JSON, same certificate
#   static:     the same static routes with keep-alive
#   tlsward:    RSS idle and under the API load, start-up to /readyz = 200, binary size
#
# The peer kit is bench/peer/ (the seed app, its pinned requirements, the database set-up, the
# nginx reference, the wrk TLS shim). The database is PostgreSQL set up like a secure
# CockroachDB (TLS only, client certificates, verify-full) with 10,000 users; every server
# uses the same dev PKI.
# env: BENCH_WORK (bench/work, git-ignored), DURATION (20),
#      WARMUP (5), CONNECTIONS (64), DB_PORT (26259), PORT (9443), NGINX_PORT (9444),
#      PEER_PORT (9445), ADMIN_PORT (9490)
# Traffic goes only to 127.0.0.1; every wrk run is bounded by -d and `timeout`.
set -Eeuo pipefail
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO" >&2' ERR
cd "$(dirname "$0")/.."
ROOT=$PWD
PEER=$ROOT/bench/peer
W=$(mkdir -p "${BENCH_WORK:-$ROOT/bench/work}" && cd "${BENCH_WORK:-$ROOT/bench/work}" && pwd)
chmod 755 "$W"
DURATION=${DURATION:-20} WARMUP=${WARMUP:-5} CONNS=${CONNECTIONS:-64}
DB_PORT=${DB_PORT:-26259} PORT=${PORT:-9443} NGINX_PORT=${NGINX_PORT:-9444} PEER_PORT=${PEER_PORT:-9445}
ADMIN_PORT=${ADMIN_PORT:-9490}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tlsward
OUT=$ROOT/bench/RESULTS.md

need() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || {
  [ "$(id -u)" = 0 ] || { echo "$1 is missing (apt-get install $2)" >&2; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk; need nginx nginx; need python3 python3; need cc gcc
[ -x "$BIN" ] || cargo build --release --locked

# ---- database (10,000 users) and certificates, shared by every server ----
DSN=$(BIN=$BIN "$PEER/setup-db.sh" "$W/db" "$DB_PORT" | tail -1)
PKI=$W/db/pki
mkdir -p "$W/tokens"; [ -s "$W/tokens/k1" ] || "$BIN" token new-key --token-key-dir "$W/tokens" --kid k1 >/dev/null
TOKEN=$("$BIN" token issue --sub bench --ttl 30m --token-key-dir "$W/tokens")
cc -shared -fPIC -O2 -o "$W/wrk-tls-shim.so" "$PEER/wrk-tls-shim.c" -ldl
export TLSWARD_LISTEN=127.0.0.1:$PORT TLSWARD_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT TLSWARD_TLS_DIR=$PKI/server
export TLSWARD_TOKEN_KEY_DIR=$W/tokens TLSWARD_DB_URL=$DSN TLSWARD_LOG=warn

# ---- helpers ----
PID=
stop() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; fi; }
trap 'stop; "$PEER/setup-db.sh" stop "$W/db" >/dev/null 2>&1 || true' EXIT
wait_up() { for _ in $(seq 480); do curl -fsS -k --max-time 2 -o /dev/null ${3:+-H "Authorization: Bearer $3"} "$1$2" 2>/dev/null && return 0
  kill -0 "$PID" 2>/dev/null || { echo "server exited; see $W/*.log" >&2; return 1; }; sleep 0.5; done; return 1; }
tree() { local p=$1; echo "$p"; for c in $(pgrep -P "$p" || true); do tree "$c"; done; }
ticks() { local t=0 p; for p in $(tree "$1"); do t=$((t + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
rss_kib() { local t=0 p; for p in $(tree "$1"); do t=$((t + $(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo "$t"; }
pg_pid() { head -1 "$W/db/pg/data/postmaster.pid"; }
HZ=$(getconf CLK_TCK)
RESULTS=$W/results.tsv; : >"$RESULTS"
# run LABEL URL MODE CONNS [STATIC_PATH] [TOKEN] -> one TSV line: label mode conns rps p50 p99 errors server% db% wrk%
run() {
  local label=$1 url=$2 mode=$3 conns=$4 static=${5:-} token=${6:-}
  local wrk=(wrk -t1 -c"$conns" --timeout 5s -s "$ROOT/bench/wrk.lua")
  [ "$mode" = close-full ] && wrk=(env LD_PRELOAD="$W/wrk-tls-shim.so" WRK_NO_RESUME=1 "${wrk[@]}" -H "Connection: close")
  STATIC_PATH=$static TOKEN=$token timeout $((WARMUP + 30)) "${wrk[@]}" -d "${WARMUP}s" "$url" >/dev/null
  local s0 d0 c0 t0 out; s0=$(ticks "$PID"); d0=$(ticks "$(pg_pid)"); c0=$(awk '{sub(/.*\) /, ""); print $14 + $15}' /proc/$$/stat); t0=$(date +%s.%N)
  MAXRSS=0; ( while sleep 0.5; do echo "$(rss_kib "$PID")"; done ) >"$W/rss.log" & local sampler=$!
  out=$(STATIC_PATH=$static TOKEN=$token timeout $((DURATION + 30)) "${wrk[@]}" -d "${DURATION}s" --latency "$url" | grep '^RESULT')
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  MAXRSS=$(sort -n "$W/rss.log" | tail -1)
  local t1 s1 d1 c1; t1=$(date +%s.%N); s1=$(ticks "$PID"); d1=$(ticks "$(pg_pid)"); c1=$(awk '{sub(/.*\) /, ""); print $14 + $15}' /proc/$$/stat)
  v() { tr ' ' '\n' <<<"$out" | sed -n "s/^$1=//p"; }
  local dt; dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')
  cpu() { awk -v t="$1" -v hz="$HZ" -v dt="$dt" 'BEGIN{printf "%.0f", t / hz / dt * 100}'; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$mode" "$conns" "$(v rps)" "$(v p50_ms)" "$(v p99_ms)" \
    "$(( $(v errors) + $(v non2xx) ))" "$(cpu $((s1 - s0)))" "$(cpu $((d1 - d0)))" "$(cpu $((c1 - c0)))" "$MAXRSS" | tee -a "$RESULTS"
}

# ---- the seed's app: 1 and 2 uvicorn workers ----
for workers in 1 2; do
  "$PEER/run-seed.sh" "$W/venv" "$PKI" "$PEER_PORT" "$DB_PORT" "$workers" >"$W/peer-$workers.log" 2>&1 &
  PID=$!; wait_up "https://localhost:$PEER_PORT" /users/1
  run "peer-${workers}w" "https://localhost:$PEER_PORT" keepalive "$CONNS"
  [ "$workers" = 1 ] && run "peer-1w" "https://localhost:$PEER_PORT" keepalive 1
  stop
done

# ---- nginx: static JSON over TLS 1.3 ----
"$PEER/run-nginx.sh" "$PKI" "$W/nginx" "$NGINX_PORT" 1 >"$W/nginx.log" 2>&1 &
PID=$!; wait_up "https://localhost:$NGINX_PORT" /
run nginx-static "https://localhost:$NGINX_PORT" close-full "$CONNS" /
run nginx-static "https://localhost:$NGINX_PORT" keepalive "$CONNS" /
stop

# ---- tlsward ----
"$BIN" serve >"$W/tlsward.log" 2>&1 &
PID=$!; wait_up "http://127.0.0.1:$ADMIN_PORT" /readyz
sleep 1; RSS_IDLE=$(rss_kib "$PID")
run tlsward "https://localhost:$PORT" keepalive "$CONNS" "" "$TOKEN"; RSS_LOAD=$MAXRSS
run tlsward "https://localhost:$PORT" keepalive 1 "" "$TOKEN"
run tlsward-static "https://localhost:$PORT" close-full "$CONNS" /
run tlsward-static "https://localhost:$PORT" keepalive "$CONNS" /
stop
READY=(); for _ in 1 2 3 4 5; do READY+=("$(python3 "$ROOT/bench/ready_time.py" "$BIN" "$ADMIN_PORT" serve)"); done
SIZE=$(stat -c %s "$BIN")

# ---- the report ----
BIN=$BIN python3 - "$RESULTS" "$OUT" "$RSS_IDLE" "$RSS_LOAD" "$SIZE" "$DURATION" "$WARMUP" "${READY[@]}" <<'PY'
import os, platform, subprocess, sys, time
res, out, rss_idle, rss_load, size, duration, warmup, *ready = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(res) if l.strip()]
def get(label, mode, conns):
    for r in rows:
        if r[0] == label and r[1] == mode and r[2] == str(conns):
            return r
    raise SystemExit(f"missing result {label} {mode} {conns}")
def sh(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True).stdout.strip() or subprocess.run(a, capture_output=True, text=True).stderr.strip()
    except Exception:
        return "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) // 1024 // 1024
c = max(int(r[2]) for r in rows)
tw, p1, p2 = get("tlsward", "keepalive", c), get("peer-1w", "keepalive", c), get("peer-2w", "keepalive", c)
best = max((p1, p2), key=lambda r: float(r[3]))
ng_h, tw_h = get("nginx-static", "close-full", c), get("tlsward-static", "close-full", c)
ng_k, tw_k = get("nginx-static", "keepalive", c), get("tlsward-static", "keepalive", c)
tw1, p11 = get("tlsward", "keepalive", 1), get("peer-1w", "keepalive", 1)
f = lambda r, i: float(r[i])
ready_ms = sorted(float(x) for x in ready)
L = []
L.append("# Benchmarks: tlsward side by side\n")
L.append(f"One run of `make bench` (`bench/compare.sh`) on {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC.\n")
L.append(f"Machine: {os.cpu_count()} CPUs ({cpu}), {mem} GiB RAM, Linux {platform.release()}. "
         f"tlsward {sh(os.environ['BIN'], '--version').split()[-1]} (release: LTO, codegen-units 1, stripped; glibc malloc), "
         f"{sh('nginx', '-v')}, wrk {sh('wrk', '-v').split()[1] if sh('wrk', '-v') else '?'}, "
         f"PostgreSQL {sh('psql', '--version').split()[-1]}, the peer's pinned Python packages (`examples/fastapi/requirements.txt`) under {sh('python3', '--version')}.\n")
L.append(f"Every run: wrk, 1 thread, {duration} s measured after a {warmup} s warm-up, random ids 1..10000, same database "
         "(PostgreSQL with TLS + client certificates, `sslmode=verify-full` from every app), same ECDSA P-256 server "
         "certificate. tlsward's API requests carry a valid bearer token that it verifies on every request; the peer has no "
         "authentication at all, which favours the peer. CPU columns are % of one core over the measured window: the server "
         "(process tree), PostgreSQL (all backends) and wrk itself; the machine has 200 %.\n")
L.append("| system | mode | conns | req/s | p50 ms | p99 ms | errors | server CPU % | DB CPU % | wrk CPU % |")
L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    L.append("| " + " | ".join(r[:10]) + " |")
L.append("\n## Ratios\n")
L.append(f"- API throughput, tlsward / the peer's best ({best[0]}): **{f(tw,3)/f(best,3):.1f}×** "
         f"({f(tw,3):.0f} vs {f(best,3):.0f} req/s; target ≥ 20×). p99: {f(tw,5):.2f} ms vs {f(best,5):.2f} ms = "
         f"**1/{f(best,5)/max(f(tw,5),1e-9):.0f}** (target ≤ 1/10).")
L.append(f"- Latency at 1 connection (p50): tlsward {f(tw1,4):.2f} ms vs peer (1 worker) {f(p11,4):.2f} ms.")
L.append(f"- Full handshakes per second (no resumption, one request each), tlsward / nginx: **{f(tw_h,3)/f(ng_h,3):.2f}** "
         f"({f(tw_h,3):.0f} vs {f(ng_h,3):.0f}; target ≥ 1).")
L.append(f"- Static route with keep-alive, tlsward / nginx: **{f(tw_k,3)/f(ng_k,3):.2f}** ({f(tw_k,3):.0f} vs {f(ng_k,3):.0f} req/s).")
L.append(f"- tlsward RSS: {int(rss_idle)/1024:.1f} MiB idle, {int(rss_load)/1024:.1f} MiB at most under the {c}-connection API load (target < 64 MiB).")
L.append(f"- Start-up to `/readyz` = 200 (database up, pool verified, migration checked): median {ready_ms[len(ready_ms)//2]:.0f} ms "
         f"of {len(ready_ms)} starts ({', '.join(f'{x:.0f}' for x in ready_ms)} ms; target < 200 ms).")
L.append(f"- Release binary size (stripped): {int(size)/1024/1024:.1f} MiB.")
L.append("\n## Reading the CPU split\n")
L.append("wrk, the servers and PostgreSQL share the 2 cores. When wrk needs most of a core (keep-alive static runs), the "
         "figure is the load generator's limit as much as the server's: compare the server CPU columns, not only req/s. "
         "For the API rows PostgreSQL's share shows how much of the machine the database itself takes.\n")
L.append("## Commands\n\n```sh\nmake bench          # = bench/compare.sh (env: DURATION, WARMUP, CONNECTIONS)\n```\n")
L.append("Raw rows: `bench/work/results.tsv` (not committed). The reload and DB-rotation figures are in "
         "[reload-results.md](reload-results.md) and [db-rotation-results.md](db-rotation-results.md); the "
         "container image's size and start-up in [image-results.md](image-results.md) (`make bench-image`).\n")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
