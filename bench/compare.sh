#!/usr/bin/env bash
# compare.sh — `make bench`: tlsward side by side with the seed's FastAPI app (uvicorn, 1 and
# 2 workers) and nginx, in one run, on this machine, against one database; writes
# bench/RESULTS.md.
#
#   API:        GET /users/{random 1..10000}, keep-alive, 64 connections (and 1 connection)
#   handshakes: one request per new TLS connection, no session resumption (close-full),
#               tlsward's static `GET /` vs nginx sending the same response (body and
#               security headers), same certificate
#   static:     the same static routes with keep-alive
#   tlsward:    RSS idle and under the API load, start-up to /readyz = 200, binary size
#
# The peer kit is bench/peer/ (the seed app, its pinned requirements, the database set-up, the
# nginx reference, the wrk TLS shim). The database is PostgreSQL set up like a secure
# CockroachDB (TLS only, client certificates, verify-full) with 10,000 users; every server
# uses the same dev PKI.
#   memory:     tlsward's RSS with BURST_CONNECTIONS idle TLS connections and 10 s after they
#               closed (bench/idle_burst.py)
# Every server runs at once; each row runs ROUNDS times with the systems alternating (A B, B A,
# ...), and the report gives the median with min–max, and the server's CPU per request next to
# every req/s (the figure to compare when wrk saturates a core).
# env: BENCH_WORK (bench/work, git-ignored), DURATION (15), WARMUP (3), ROUNDS (5),
#      CONNECTIONS (64), BURST_CONNECTIONS (5000), DB_PORT (26259), PORT (9443),
#      NGINX_PORT (9444), PEER_PORT (9445 and 9446), ADMIN_PORT (9490)
# Traffic goes only to 127.0.0.1; every wrk run is bounded by -d and `timeout`.
set -Eeuo pipefail
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO" >&2' ERR
cd "$(dirname "$0")/.."
ROOT=$PWD
. bench/lib.sh
PEER=$ROOT/bench/peer
W=$(mkdir -p "${BENCH_WORK:-$ROOT/bench/work}" && cd "${BENCH_WORK:-$ROOT/bench/work}" && pwd)
chmod 755 "$W"
DURATION=${DURATION:-15} WARMUP=${WARMUP:-3} CONNS=${CONNECTIONS:-64} ROUNDS=${ROUNDS:-5}
BURST_CONNECTIONS=${BURST_CONNECTIONS:-5000}
DB_PORT=${DB_PORT:-26259} PORT=${PORT:-9443} NGINX_PORT=${NGINX_PORT:-9444} PEER_PORT=${PEER_PORT:-9445}
ADMIN_PORT=${ADMIN_PORT:-9490}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tlsward
OUT=$ROOT/bench/RESULTS.md

need wrk wrk; need nginx nginx; need python3 python3; need cc gcc
[ -x "$BIN" ] || cargo build --release --locked
# The idle burst needs a descriptor per connection, on both sides.
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((BURST_CONNECTIONS + 1024)) ] || ulimit -n $((BURST_CONNECTIONS + 1024)) ||
  { echo "raise the open-files limit to $((BURST_CONNECTIONS + 1024)) (ulimit -n) or lower BURST_CONNECTIONS" >&2; exit 1; }

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
wait_up() { for _ in $(seq 480); do curl -fsS -k --max-time 2 -o /dev/null ${3:+-H "Authorization: Bearer $3"} "$1$2" 2>/dev/null && return 0
  kill -0 "$PID" 2>/dev/null || { echo "server exited; see $W/*.log" >&2; return 1; }; sleep 0.5; done; return 1; }
rss_kib() { local t=0 p; for p in $(tree "$1"); do t=$((t + $(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo "$t"; }
pg_pid() { head -1 "$W/db/pg/data/postmaster.pid"; }
HZ=$(getconf CLK_TCK)
RESULTS=$W/results.tsv; : >"$RESULTS"
# run LABEL PID URL MODE CONNS ROUND [STATIC_PATH] [TOKEN] -> one TSV line: label mode conns round
#   rps p50 p99 errors server-µs/request db-µs/request wrk-CPU% max-RSS-KiB
run() {
  local label=$1 pid=$2 url=$3 mode=$4 conns=$5 round=$6 static=${7:-} token=${8:-}
  local wrk=(wrk -t1 -c"$conns" --timeout 5s -s "$ROOT/bench/wrk.lua")
  [ "$mode" = close-full ] && wrk=(env LD_PRELOAD="$W/wrk-tls-shim.so" WRK_NO_RESUME=1 "${wrk[@]}" -H "Connection: close")
  STATIC_PATH=$static TOKEN=$token timeout $((WARMUP + 30)) "${wrk[@]}" -d "${WARMUP}s" "$url" >/dev/null
  local s0 d0 c0 t0 out; s0=$(ticks "$pid"); d0=$(ticks "$(pg_pid)"); c0=$(awk '{sub(/.*\) /, ""); print $14 + $15}' /proc/$$/stat); t0=$(date +%s.%N)
  ( while sleep 0.5; do rss_kib "$pid"; done ) >"$W/rss.log" & local sampler=$!
  out=$(STATIC_PATH=$static TOKEN=$token timeout $((DURATION + 30)) "${wrk[@]}" -d "${DURATION}s" --latency "$url" | grep '^RESULT')
  # wrk's CPU first: the sampler and the ticks below are children of this shell too.
  local t1 s1 d1 c1; c1=$(awk '{sub(/.*\) /, ""); print $14 + $15}' /proc/$$/stat); t1=$(date +%s.%N); s1=$(ticks "$pid"); d1=$(ticks "$(pg_pid)")
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  v() { tr ' ' '\n' <<<"$out" | sed -n "s/^$1=//p"; }
  local dt n; dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}'); n=$(v requests)
  per() { awk -v t="$1" -v hz="$HZ" -v n="$n" 'BEGIN{printf "%.1f", t / hz * 1e6 / n}'; }
  local wrk_pct; wrk_pct=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v dt="$dt" 'BEGIN{printf "%.0f", t / hz / dt * 100}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$mode" "$conns" "$round" "$(v rps)" "$(v p50_ms)" \
    "$(v p99_ms)" "$(( $(v errors) + $(v non2xx) ))" "$(per $((s1 - s0)))" "$(per $((d1 - d0)))" "$wrk_pct" \
    "$(sort -n "$W/rss.log" | tail -1)" | tee -a "$RESULTS"
}
# row MODE CONNS STATIC TOKEN SYSTEM... — ROUNDS rounds of one row, the systems in a rotating
# order (A B C, B C A, C A B, ...), so that a noisy minute hits each of them alike. A SYSTEM is
# LABEL=PID=URL.
row() {
  local mode=$1 conns=$2 static=$3 token=$4; shift 4
  local systems=("$@") n=$# round i
  for round in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((n - 1))); do
      IFS='=' read -r label pid url <<<"${systems[$(((i + round - 1) % n))]}"
      run "$label" "$pid" "$url" "$mode" "$conns" "$round" "$static" "$token"
    done
  done
}

# ---- every server at once (idle ones cost nothing), so that the rounds can alternate ----
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; "$PEER/setup-db.sh" stop "$W/db" >/dev/null 2>&1 || true' EXIT
PEER1=https://localhost:$PEER_PORT PEER2=https://localhost:$((PEER_PORT + 1))
NGX=https://localhost:$NGINX_PORT TW=https://localhost:$PORT
"$PEER/run-seed.sh" "$W/venv" "$PKI" "$PEER_PORT" "$DB_PORT" 1 >"$W/peer-1.log" 2>&1 & P1=$!; PIDS+=($P1)
"$PEER/run-seed.sh" "$W/venv" "$PKI" $((PEER_PORT + 1)) "$DB_PORT" 2 >"$W/peer-2.log" 2>&1 & P2=$!; PIDS+=($P2)
"$BIN" serve >"$W/tlsward.log" 2>&1 & TWP=$!; PIDS+=($TWP)
PID=$TWP wait_up "http://127.0.0.1:$ADMIN_PORT" /readyz
# nginx sends tlsward's own `GET /` response: its body and its headers (the security headers;
# nginx writes the status line, content type, length and date itself).
curl -fsS -k --http1.1 -D "$W/root.head" -o "$W/root.body" "$TW/"
tr -d '\r' <"$W/root.head" | grep -iv '^\(HTTP/\|content-type:\|content-length:\|date:\|connection:\|$\)' >"$W/root.headers"
BODY=$(cat "$W/root.body") HEADERS=$W/root.headers \
  "$PEER/run-nginx.sh" "$PKI" "$W/nginx" "$NGINX_PORT" 1 >"$W/nginx.log" 2>&1 & NG=$!; PIDS+=($NG)
PID=$P1 wait_up "$PEER1" /users/1; PID=$P2 wait_up "$PEER2" /users/1; PID=$NG wait_up "$NGX" /
sleep 1; RSS_IDLE=$(rss_kib "$TWP")

row keepalive "$CONNS" "" "$TOKEN" "peer-1w=$P1=$PEER1" "peer-2w=$P2=$PEER2" "tlsward=$TWP=$TW"
row keepalive 1 "" "$TOKEN" "peer-1w=$P1=$PEER1" "tlsward=$TWP=$TW"
row close-full "$CONNS" / "" "nginx-static=$NG=$NGX" "tlsward-static=$TWP=$TW"
row keepalive "$CONNS" / "" "nginx-static=$NG=$NGX" "tlsward-static=$TWP=$TW"
RSS_LOAD=$(awk -F'\t' '$1 == "tlsward" {print $12}' "$RESULTS" | sort -n | tail -1)
BURST=$(python3 "$ROOT/bench/idle_burst.py" "$TWP" 127.0.0.1 "$PORT" "$PKI/ca/ca.crt" "$BURST_CONNECTIONS" | tr '\n' ' ')
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=()
READY=(); for _ in 1 2 3 4 5; do READY+=("$(python3 "$ROOT/bench/ready_time.py" "$BIN" "$ADMIN_PORT" serve)"); done
SIZE=$(stat -c %s "$BIN")

# ---- the report ----
BIN=$BIN python3 - "$RESULTS" "$OUT" "$RSS_IDLE" "$RSS_LOAD" "$SIZE" "$DURATION" "$WARMUP" "$ROUNDS" "$BURST" "${READY[@]}" <<'PY'
import os, platform, statistics as st, subprocess, sys, time
res, out, rss_idle, rss_load, size, duration, warmup, rounds, burst, *ready = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(res) if l.strip()]
burst = dict(zip(burst.split()[::2], (int(x) for x in burst.split()[1::2])))
COLS = {"rps": 4, "p50": 5, "p99": 6, "srv": 8, "db": 9, "wrk": 10}
def runs(label, mode, conns):
    r = [x for x in rows if x[0] == label and x[1] == mode and x[2] == str(conns)]
    if not r:
        raise SystemExit(f"missing result {label} {mode} {conns}")
    return r
def med(label, mode, conns, col):
    return st.median(float(x[COLS[col]]) for x in runs(label, mode, conns))
def cell(label, mode, conns, col, fmt):
    v = sorted(float(x[COLS[col]]) for x in runs(label, mode, conns))
    return f"{fmt(st.median(v))} ({fmt(v[0])}–{fmt(v[-1])})"
def sh(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True).stdout.strip() or subprocess.run(a, capture_output=True, text=True).stderr.strip()
    except Exception:
        return "?"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) // 1024 // 1024
c = max(int(r[2]) for r in rows)
best = max(("peer-1w", "peer-2w"), key=lambda p: med(p, "keepalive", c, "rps"))
ready_ms = sorted(float(x) for x in ready)
i0 = lambda v: f"{v:,.0f}"
f1 = lambda v: f"{v:.1f}"
f2 = lambda v: f"{v:.2f}"
L = ["# Benchmarks: tlsward side by side\n",
     f"`make bench` (`bench/compare.sh`) on {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC: every row {rounds} rounds, "
     "the systems alternating within each round (A B, B A, …) while all of them run, so that a noisy minute hits each alike. "
     "Each cell is the median of the rounds with the min–max in brackets.\n",
     f"Machine: {os.cpu_count()} CPUs ({cpu}), {mem} GiB RAM, Linux {platform.release()}. "
     f"tlsward {sh(os.environ['BIN'], '--version').split()[-1]} (release: LTO, codegen-units 1, stripped; glibc malloc), "
     f"{sh('nginx', '-v')}, wrk {sh('wrk', '-v').split()[1] if sh('wrk', '-v') else '?'}, "
     f"PostgreSQL {sh('psql', '--version').split()[-1]}, the peer's pinned Python packages (`examples/fastapi/requirements.txt`) under {sh('python3', '--version')}.\n",
     f"Every run: wrk, 1 thread, {duration} s measured after a {warmup} s warm-up, random ids 1..10000, same database "
     "(PostgreSQL with TLS + client certificates, `sslmode=verify-full` from every app), same ECDSA P-256 server "
     "certificate; on the static rows nginx sends tlsward's `GET /` response (the same body and the same five security headers). tlsward's API requests carry a valid bearer token that it verifies on every request; the peer has no "
     "authentication at all, which favours the peer. CPU per request = user + system time of the server's processes "
     "(of PostgreSQL's, for the DB column) during the run / requests; wrk's own CPU is in % of one core (the machine has 200 %).\n",
     "| system | mode | conns | req/s | p50 ms | p99 ms | errors | server CPU µs/req | DB CPU µs/req | wrk CPU % |",
     "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
seen = []
for r in rows:
    k = (r[0], r[1], r[2])
    if k in seen:
        continue
    seen.append(k)
    errs = sum(int(x[7]) for x in runs(*k))
    L.append(f"| {k[0]} | {k[1]} | {k[2]} | {cell(*k, 'rps', i0)} | {cell(*k, 'p50', f2)} | {cell(*k, 'p99', f2)} | {errs} | "
             f"{cell(*k, 'srv', f1)} | {cell(*k, 'db', f1)} | {cell(*k, 'wrk', i0)} |")
api, p99 = med("tlsward", "keepalive", c, "rps") / med(best, "keepalive", c, "rps"), med(best, "keepalive", c, "p99") / med("tlsward", "keepalive", c, "p99")
per_round = []
for rnd in range(1, int(rounds) + 1):
    t = [float(x[4]) for x in runs("tlsward", "keepalive", c) if x[3] == str(rnd)]
    p = [float(x[4]) for x in runs(best, "keepalive", c) if x[3] == str(rnd)]
    if t and p:
        per_round.append(t[0] / p[0])
h_rps = med("tlsward-static", "close-full", c, "rps") / med("nginx-static", "close-full", c, "rps")
h_cpu = med("tlsward-static", "close-full", c, "srv") / med("nginx-static", "close-full", c, "srv")
k_rps = med("tlsward-static", "keepalive", c, "rps") / med("nginx-static", "keepalive", c, "rps")
k_cpu = med("tlsward-static", "keepalive", c, "srv") / med("nginx-static", "keepalive", c, "srv")
L.append("\n## Ratios (of the medians)\n")
L.append(f"- API throughput, tlsward / the peer's best ({best}): **{api:.1f}×** (per round: "
         f"{', '.join(f'{x:.1f}×' for x in per_round)}; target ≥ 25×). p99: **1/{p99:.0f}** of the peer's (target ≤ 1/20).")
L.append(f"- Latency at 1 connection (p50): tlsward {med('tlsward', 'keepalive', 1, 'p50'):.2f} ms vs peer (1 worker) {med('peer-1w', 'keepalive', 1, 'p50'):.2f} ms.")
L.append(f"- Full handshakes (no resumption, one request each), tlsward / nginx: **{h_rps:.2f}×** the rate at **{h_cpu:.2f}×** the server CPU per handshake.")
L.append(f"- Static route with keep-alive, tlsward / nginx: **{k_rps:.2f}×** the rate at **{k_cpu:.2f}×** the server CPU per request (target ≤ 1.0×).")
L.append(f"- tlsward RSS: {int(rss_idle)/1024:.1f} MiB idle, {int(rss_load)/1024:.1f} MiB at most under the {c}-connection API load (target < 64 MiB).")
if burst:
    L.append(f"- Memory of a burst: {burst['connections']:,} idle TLS connections (each after one keep-alive request) took tlsward's RSS from "
             f"{burst['before_kib']/1024:.1f} to {burst['held_kib']/1024:.1f} MiB (**{burst['per_connection_bytes']/1024:.1f} KiB per idle connection**); "
             f"10 s after they closed: **{burst['after_kib']/1024:.1f} MiB**.")
L.append(f"- Start-up to `/readyz` = 200 (database up, pool verified, migration checked): median {ready_ms[len(ready_ms)//2]:.0f} ms "
         f"of {len(ready_ms)} starts ({', '.join(f'{x:.0f}' for x in ready_ms)} ms; target < 200 ms).")
L.append(f"- Release binary size (stripped): {int(size)/1024/1024:.1f} MiB.")
L.append("\n## Reading the CPU split\n")
L.append("wrk, the servers and PostgreSQL share the 2 cores. When wrk needs most of a core (keep-alive static runs), the "
         "req/s figure is the load generator's limit as much as the server's: compare the CPU per request. "
         "For the API rows the DB column shows how much PostgreSQL itself spends per request.\n")
L.append("## Commands\n\n```sh\nmake bench          # = bench/compare.sh (env: DURATION, WARMUP, ROUNDS, CONNECTIONS, BURST_CONNECTIONS)\n```\n")
L.append("Raw rows: `bench/work/results.tsv` (not committed). The reload and DB-rotation figures are in "
         "[reload-results.md](reload-results.md) and [db-rotation-results.md](db-rotation-results.md); the "
         "container image's size and start-up in [image-results.md](image-results.md) (`make bench-image`).\n")
notes = os.path.join(os.path.dirname(out), "RESULTS-notes.md")
if os.path.exists(notes):
    L.append(open(notes).read())
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
