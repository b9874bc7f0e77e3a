#!/usr/bin/env bash
# proxy.sh — `make bench-proxy`: the cost of `tlsward proxy` against nginx (proxy_pass with
# upstream keep-alive) and haproxy, each terminating TLS 1.3 with the same certificate in front
# of the same fast upstream (nginx answering a small JSON on plain loopback HTTP, whose CPU is
# not counted). Writes bench/proxy-results.md.
#
#   keepalive:   64 keep-alive connections
#   close-full:  one request per new TLS connection, no session resumption (the wrk TLS shim)
# Each row runs ROUNDS times, the three proxies alternating (A B C, B C A, C A B), so that a
# noisy minute hits every system alike; the table gives the median and the min–max of req/s,
# p50, p99 and the proxy's own CPU per request (user + system time of its processes / requests):
# the figure to compare when wrk saturates a core.
#
# env: BENCH_WORK (bench/work, git-ignored), DURATION (10), WARMUP (3), ROUNDS (3),
#      CONNECTIONS (64), CLOSE_CONNECTIONS (16), base port PORT (9550: upstream, +1 tlsward,
#      +2 nginx, +3 haproxy, +4 tlsward's admin)
# Traffic goes only to 127.0.0.1; every wrk run is bounded by -d and `timeout`.
set -Eeuo pipefail
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO" >&2' ERR
cd "$(dirname "$0")/.."
ROOT=$PWD
. bench/lib.sh
W=$(mkdir -p "${BENCH_WORK:-$ROOT/bench/work}/proxy" && cd "${BENCH_WORK:-$ROOT/bench/work}/proxy" && pwd)
DURATION=${DURATION:-10} WARMUP=${WARMUP:-3} ROUNDS=${ROUNDS:-3}
CONNS=${CONNECTIONS:-64} CLOSE_CONNS=${CLOSE_CONNECTIONS:-16}
BASE=${PORT:-9550}
UP=$BASE TW=$((BASE + 1)) NG=$((BASE + 2)) HA=$((BASE + 3)) TW_ADMIN=$((BASE + 4))
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tlsward
OUT=$ROOT/bench/proxy-results.md

need wrk wrk; need nginx nginx; need haproxy haproxy; need cc gcc; need python3 python3
[ -x "$BIN" ] || cargo build --release --locked
NGINX=$(command -v nginx || echo /usr/sbin/nginx) HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

PKI=$W/pki
[ -s "$PKI/server/tls.crt" ] || "$BIN" certs dev --out "$PKI" >/dev/null
cat "$PKI/server/tls.crt" "$PKI/server/tls.key" >"$W/haproxy.pem"
cc -shared -fPIC -O2 -o "$W/wrk-tls-shim.so" "$ROOT/bench/peer/wrk-tls-shim.c" -ldl

# ---- the upstream and the three proxies ----
nginx_conf() { # NAME SERVER-BLOCK
  mkdir -p "$W/$1/tmp"
  cat >"$W/$1/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $W/$1/nginx.pid;
error_log $W/$1/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $W/$1/tmp/body;
  proxy_temp_path $W/$1/tmp/proxy;
  fastcgi_temp_path $W/$1/tmp/fastcgi;
  uwsgi_temp_path $W/$1/tmp/uwsgi;
  scgi_temp_path $W/$1/tmp/scgi;
  keepalive_requests 1000000;
  $2
}
CONF
}
nginx_conf upstream "server {
    listen 127.0.0.1:$UP;
    location / { default_type application/json; return 200 '{\"id\":1,\"username\":\"user1\",\"email\":\"user1@example.com\"}'; }
  }"
nginx_conf nginx "upstream app { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NG ssl;
    ssl_certificate     $PKI/server/tls.crt;
    ssl_certificate_key $PKI/server/tls.key;
    ssl_protocols TLSv1.3;
    ssl_session_tickets off;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      add_header Strict-Transport-Security \"max-age=63072000; includeSubDomains\" always;
    }
  }"
cat >"$W/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 8000
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HA ssl crt $W/haproxy.pem ssl-min-ver TLSv1.3 no-tls-tickets
  http-request set-header X-Forwarded-Proto https
  option forwardfor
  http-response set-header Strict-Transport-Security "max-age=63072000; includeSubDomains"
  default_backend be
backend be
  server up 127.0.0.1:$UP
CFG

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
"$NGINX" -p "$W/upstream" -e "$W/upstream/error.log" -c "$W/upstream/nginx.conf" & PIDS+=($!)
"$NGINX" -p "$W/nginx" -e "$W/nginx/error.log" -c "$W/nginx/nginx.conf" & NGINX_PID=$!; PIDS+=($!)
"$HAPROXY" -db -f "$W/haproxy.cfg" >"$W/haproxy.log" 2>&1 & HAPROXY_PID=$!; PIDS+=($!)
TLSWARD_LOG=warn "$BIN" proxy --listen "127.0.0.1:$TW" --admin-listen "127.0.0.1:$TW_ADMIN" \
  --tls-dir "$PKI/server" --upstream "http://127.0.0.1:$UP" --kube-events off >"$W/tlsward.log" 2>&1 & TLSWARD_PID=$!; PIDS+=($!)
for port in $TW $NG $HA; do
  for _ in $(seq 100); do curl -fsk -o /dev/null "https://127.0.0.1:$port/" && break; sleep 0.1; done
  curl -fsk -o /dev/null "https://127.0.0.1:$port/" || { echo "nothing answers on $port; see $W/*.log" >&2; exit 1; }
done

HZ=$(getconf CLK_TCK)
RESULTS=$W/results.tsv; : >"$RESULTS"
# run SYSTEM PID PORT MODE CONNS ROUND -> one TSV line: system mode round rps p50 p99 errors cpu_us_per_request
run() {
  local system=$1 pid=$2 port=$3 mode=$4 conns=$5 round=$6
  local wrk=(wrk -t1 -c"$conns" --timeout 5s -s "$ROOT/bench/wrk.lua")
  [ "$mode" = close-full ] && wrk=(env LD_PRELOAD="$W/wrk-tls-shim.so" WRK_NO_RESUME=1 "${wrk[@]}" -H "Connection: close")
  local url=https://127.0.0.1:$port
  STATIC_PATH=/ timeout $((WARMUP + 30)) "${wrk[@]}" -d "${WARMUP}s" "$url" >/dev/null
  local s0 s1 out; s0=$(ticks "$pid")
  out=$(STATIC_PATH=/ timeout $((DURATION + 30)) "${wrk[@]}" -d "${DURATION}s" --latency "$url" | grep '^RESULT')
  s1=$(ticks "$pid")
  v() { tr ' ' '\n' <<<"$out" | sed -n "s/^$1=//p"; }
  local cpu_us; cpu_us=$(awk -v t=$((s1 - s0)) -v hz="$HZ" -v n="$(v requests)" 'BEGIN{printf "%.1f", t / hz * 1e6 / n}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$mode" "$round" "$(v rps)" "$(v p50_ms)" "$(v p99_ms)" \
    "$(( $(v errors) + $(v non2xx) ))" "$cpu_us" | tee -a "$RESULTS"
}
SYSTEMS=("tlsward $TLSWARD_PID $TW" "nginx $NGINX_PID $NG" "haproxy $HAPROXY_PID $HA")
for mode in keepalive close-full; do
  conns=$CONNS; [ "$mode" = close-full ] && conns=$CLOSE_CONNS
  for round in $(seq "$ROUNDS"); do
    for i in 0 1 2; do
      read -r system pid port <<<"${SYSTEMS[$(((i + round - 1) % 3))]}"
      run "$system" "$pid" "$port" "$mode" "$conns" "$round"
    done
  done
done

python3 - "$RESULTS" "$OUT" "$DURATION" "$ROUNDS" "$CONNS" "$CLOSE_CONNS" \
  "$("$NGINX" -v 2>&1 | sed 's/.*: //')" "$("$HAPROXY" -v | head -1 | awk '{print $3}')" "$(nproc)" <<'PY'
import statistics as st, sys
res, out, duration, rounds, conns, close_conns, nginx_v, haproxy_v, cpus = sys.argv[1:]
rows = [l.split("\t") for l in open(res).read().splitlines() if l]
def cell(vals, fmt):
    vals = sorted(vals)
    return f"{fmt(st.median(vals))} ({fmt(vals[0])}–{fmt(vals[-1])})"
lines = [
    "# `tlsward proxy` vs nginx and haproxy: the proxy's own cost",
    "",
    f"Written by `make bench-proxy` (bench/proxy.sh). {cpus} CPUs; nginx {nginx_v} (1 worker, `proxy_pass` with upstream",
    f"keep-alive 64), haproxy {haproxy_v} (nbthread 1, `http-reuse always`), tlsward (release build, its default runtime).",
    "Each terminates TLS 1.3 with the same dev certificate, adds X-Forwarded-For/-Proto and HSTS, and forwards every",
    "`GET /` to the same upstream: nginx on plain loopback HTTP answering a 55-byte JSON (its CPU is not counted).",
    f"wrk -t1, {duration} s per run after a warm-up; keepalive: {conns} connections; close-full: {close_conns} connections,",
    f"a new TLS connection per request without resumption. {rounds} rounds, the systems alternating; median (min–max).",
    "CPU per request = user + system time of the proxy's processes during the run / requests.",
    "",
    "| mode | proxy | req/s | p50 ms | p99 ms | errors | proxy CPU µs / request |",
    "|---|---|---|---|---|---|---|",
]
summary = {}
for mode in ("keepalive", "close-full"):
    for system in ("tlsward", "nginx", "haproxy"):
        r = [x for x in rows if x[0] == system and x[1] == mode]
        if not r:
            continue
        rps = [float(x[3]) for x in r]; p50 = [float(x[4]) for x in r]; p99 = [float(x[5]) for x in r]
        err = sum(int(x[6]) for x in r); cpu = [float(x[7]) for x in r]
        summary[(mode, system)] = (st.median(rps), st.median(p99), st.median(cpu))
        lines.append(f"| {mode} | {system} | {cell(rps, lambda v: f'{v:,.0f}')} | {cell(p50, lambda v: f'{v:.2f}')} | "
                     f"{cell(p99, lambda v: f'{v:.2f}')} | {err} | {cell(cpu, lambda v: f'{v:.1f}')} |")
lines += ["", "Ratios of the medians (tlsward / peer): throughput per CPU = (1 / CPU per request) ratio.", "",
          "| mode | peer | req/s | throughput per CPU | p99 |", "|---|---|---|---|---|"]
for mode in ("keepalive", "close-full"):
    t = summary.get((mode, "tlsward"))
    for peer in ("nginx", "haproxy"):
        p = summary.get((mode, peer))
        if t and p:
            lines.append(f"| {mode} | {peer} | {t[0] / p[0]:.2f}× | {p[2] / t[2]:.2f}× | {t[1] / p[1]:.2f}× |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
