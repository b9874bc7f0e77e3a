#!/usr/bin/env bash
# ab-api.sh — two tlsward binaries side by side on the API keep-alive row of `make bench`
# (GET /users/{random 1..10000} with a bearer token, 64 connections, wrk, one database),
# alternating A B A B … for ROUNDS rounds, so that a change can be told from the machine's noise.
# Writes bench/ab-api-results.md: every round, and per binary the median with min–max of req/s,
# p99 and server CPU per request.
#
# usage: bench/ab-api.sh OLD_BINARY NEW_BINARY [LABEL_A LABEL_B]
#   e.g. git worktree add /tmp/old <rev> && (cd /tmp/old && cargo build --release) and compare
#        its target/release/tlsward with this tree's.
# env: ROUNDS (3), DURATION (15), WARMUP (3), CONNECTIONS (64), DB_PORT (26271), PORT (9543),
#      ADMIN_PORT (9591), BENCH_WORK (bench/work/ab)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD PEER=$PWD/bench/peer
. bench/lib.sh
[ $# -ge 2 ] || { sed -n '7,9p' "$0" >&2; exit 2; }
A=$(realpath "$1") B=$(realpath "$2") LA=${3:-A} LB=${4:-B}
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-15} WARMUP=${WARMUP:-3} CONNS=${CONNECTIONS:-64}
DB_PORT=${DB_PORT:-26271} PORT=${PORT:-9543} ADMIN_PORT=${ADMIN_PORT:-9591}
W=$(mkdir -p "${BENCH_WORK:-$ROOT/bench/work/ab}" && cd "${BENCH_WORK:-$ROOT/bench/work/ab}" && pwd)
chmod 755 "$W"
# STATIC_PATH=/ (read by wrk.lua too): the static keep-alive row instead, to bench/ab-static-results.md.
OUT=$ROOT/bench/ab-api-results.md
[ -n "${STATIC_PATH:-}" ] && OUT=$ROOT/bench/ab-static-results.md
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
DSN=$(BIN=$B "$PEER/setup-db.sh" "$W/db" "$DB_PORT" | tail -1)
mkdir -p "$W/tokens"; [ -s "$W/tokens/k1" ] || "$B" token new-key --token-key-dir "$W/tokens" --kid k1 >/dev/null
TOKEN=$("$B" token issue --sub bench --ttl 30m --token-key-dir "$W/tokens")
export TLSWARD_LISTEN=127.0.0.1:$PORT TLSWARD_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT TLSWARD_TLS_DIR=$W/db/pki/server
export TLSWARD_TOKEN_KEY_DIR=$W/tokens TLSWARD_DB_URL=$DSN TLSWARD_LOG=warn
PID=
trap 'stop; "$PEER/setup-db.sh" stop "$W/db" >/dev/null 2>&1 || true' EXIT
HZ=$(getconf CLK_TCK)
ROWS=$W/rounds.tsv; : >"$ROWS"
wrk_run() { TOKEN=$TOKEN timeout $(($1 + 30)) wrk -t1 -c"$CONNS" --timeout 5s -s "$ROOT/bench/wrk.lua" -d "$1s" --latency "https://localhost:$PORT"; }
one() { # label binary round -> one TSV row: label round rps p99_ms errors cpu_us_per_req
  "$2" serve >"$W/$1.log" 2>&1 & PID=$!
  for _ in $(seq 200); do curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && break; sleep 0.2; done
  wrk_run "$WARMUP" >/dev/null
  local s0 t0 out s1 t1; s0=$(ticks "$PID"); t0=$(date +%s.%N)
  out=$(wrk_run "$DURATION" | grep '^RESULT')
  s1=$(ticks "$PID"); t1=$(date +%s.%N)
  stop
  v() { tr ' ' '\n' <<<"$out" | sed -n "s/^$1=//p"; }
  awk -v l="$1" -v r="$3" -v rps="$(v rps)" -v p99="$(v p99_ms)" -v e="$(( $(v errors) + $(v non2xx) ))" \
      -v t=$((s1 - s0)) -v hz="$HZ" -v t0="$t0" -v t1="$t1" \
      'BEGIN { printf "%s\t%d\t%.0f\t%.2f\t%d\t%.1f\n", l, r, rps, p99, e, t / hz / (rps * (t1 - t0)) * 1e6 }' | tee -a "$ROWS"
}
for r in $(seq "$ROUNDS"); do one "$LA" "$A" "$r"; one "$LB" "$B" "$r"; done
python3 - "$ROWS" "$OUT" "$LA" "$LB" "$A" "$B" "$DURATION" "$CONNS" "${STATIC_PATH:-}" <<'PY'
import statistics, sys, time, os
rows, out, la, lb, a, b, duration, conns, static = sys.argv[1:]
data = [l.rstrip("\n").split("\t") for l in open(rows) if l.strip()]
def col(label, i):
    return [float(r[i]) for r in data if r[0] == label]
def fmt(xs, unit="", nd=0):
    return f"{statistics.median(xs):,.{nd}f}{unit} ({min(xs):,.{nd}f}–{max(xs):,.{nd}f})"
what = f"`GET {static}` (no database, no token)" if static else "`GET /users/{random 1..10000}` with a token"
L = [f"# {'Static' if static else 'API'} keep-alive, two builds side by side\n",
     f"`bench/ab-api.sh` on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {os.cpu_count()} CPUs: "
     f"{what}, {conns} connections, wrk 1 thread, {duration} s per round after a "
     "warm-up, the same PostgreSQL (TLS, client certificates, verify-full); the builds alternate round by round.\n",
     f"- {la}: `{os.path.basename(a)}`; {lb}: `{os.path.basename(b)}`\n",
     "| build | req/s, median (min–max) | p99 ms | server CPU µs/request | errors |",
     "|---|---|---|---|---|"]
for label in (la, lb):
    L.append(f"| {label} | {fmt(col(label, 2))} | {fmt(col(label, 3), nd=2)} | {fmt(col(label, 5), nd=1)} | {int(sum(col(label, 4)))} |")
ra = statistics.median(col(lb, 2)) / statistics.median(col(la, 2))
ca = statistics.median(col(lb, 5)) / statistics.median(col(la, 5))
L.append(f"\n{lb}/{la}: req/s ×{ra:.3f}, CPU per request ×{ca:.3f}.\n")
L.append("Rounds:\n\n| build | round | req/s | p99 ms | errors | CPU µs/req |\n|---|---|---|---|---|---|")
L += [f"| {r[0]} | {r[1]} | {float(r[2]):,.0f} | {r[3]} | {r[4]} | {r[5]} |" for r in data]
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
