#!/usr/bin/env bash
# burst.sh — `make bench-burst`: the memory of a burst of idle connections, for one or more
# tlsward binaries alternating (A B, B A, ...): a fresh `tlsward serve` per round (no database
# needed: the pool retries in the background and `GET /` does not use it), BURST_CONNECTIONS
# idle TLS connections each after one keep-alive request (bench/idle_burst.py), then closed.
# Writes bench/burst-results.md: RSS before, held, per idle connection, and SETTLE seconds
# after the burst closed, median (min–max) per binary.
#
# usage: bench/burst.sh [LABEL=BINARY ...]   (default: tlsward=this tree's release build)
# env: ROUNDS (3), BURST_CONNECTIONS (5000), SETTLE (10), PORT (9643), ADMIN_PORT (9691),
#      BENCH_WORK (bench/work/burst)
set -Eeuo pipefail
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO" >&2' ERR
cd "$(dirname "$0")/.."
ROOT=$PWD
. bench/lib.sh
ROUNDS=${ROUNDS:-3} N=${BURST_CONNECTIONS:-5000} SETTLE=${SETTLE:-10}
PORT=${PORT:-9643} ADMIN_PORT=${ADMIN_PORT:-9691}
W=$(mkdir -p "${BENCH_WORK:-$ROOT/bench/work/burst}" && cd "${BENCH_WORK:-$ROOT/bench/work/burst}" && pwd)
OUT=$ROOT/bench/burst-results.md
# A descriptor per connection, on both sides.
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((N + 1024)) ] || ulimit -n $((N + 1024)) ||
  { echo "raise the open-files limit to $((N + 1024)) (ulimit -n) or lower BURST_CONNECTIONS" >&2; exit 1; }
SYSTEMS=("$@")
[ ${#SYSTEMS[@]} -gt 0 ] || SYSTEMS=("tlsward=${CARGO_TARGET_DIR:-$ROOT/target}/release/tlsward")
FIRST=${SYSTEMS[0]#*=}
[ -s "$W/pki/server/tls.crt" ] || "$FIRST" certs dev --out "$W/pki" >/dev/null
mkdir -p "$W/tokens"; [ -s "$W/tokens/k1" ] || "$FIRST" token new-key --token-key-dir "$W/tokens" --kid k1 >/dev/null
export TLSWARD_LISTEN=127.0.0.1:$PORT TLSWARD_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT TLSWARD_TLS_DIR=$W/pki/server
export TLSWARD_TOKEN_KEY_DIR=$W/tokens TLSWARD_LOG=warn TLSWARD_DB_MIGRATE=false
export TLSWARD_DB_URL="postgresql://app@localhost:1/app?sslmode=verify-full&sslrootcert=$W/pki/ca/ca.crt"
PID=
trap stop EXIT
ROWS=$W/rounds.tsv; : >"$ROWS"
for round in $(seq "$ROUNDS"); do
  n=${#SYSTEMS[@]}
  for i in $(seq 0 $((n - 1))); do
    IFS='=' read -r label bin <<<"${SYSTEMS[$(((i + round - 1) % n))]}"
    "$bin" serve >"$W/$label.log" 2>&1 & PID=$!
    for _ in $(seq 100); do curl -fsk -o /dev/null "https://127.0.0.1:$PORT/" 2>/dev/null && break; sleep 0.1; done
    sleep 1
    r=$(python3 "$ROOT/bench/idle_burst.py" "$PID" 127.0.0.1 "$PORT" "$W/pki/ca/ca.crt" "$N" "$SETTLE" | tr '\n' ' ')
    printf '%s\t%s\t%s\n' "$label" "$round" "$r" | tee -a "$ROWS"
    stop
  done
done

python3 - "$ROWS" "$OUT" "$N" "$SETTLE" "$ROUNDS" <<'PY'
import statistics as st, sys, time
rows, out, n, settle, rounds = sys.argv[1:]
data = {}
for line in open(rows):
    label, _, kv = line.rstrip("\n").split("\t")
    d = dict(zip(kv.split()[::2], (int(x) for x in kv.split()[1::2])))
    data.setdefault(label, []).append(d)
def cell(v, fmt):
    v = sorted(v)
    return f"{fmt(st.median(v))} ({fmt(v[0])}–{fmt(v[-1])})"
mib = lambda k: f"{k / 1024:.1f}"
L = ["# Memory of a burst of idle connections", "",
     f"Written by `make bench-burst` (bench/burst.sh) on {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC: "
     f"a fresh `tlsward serve` per round, {int(n):,} idle TLS 1.3 connections (each after one HTTP/1.1 keep-alive "
     f"`GET /`), then all closed; RSS (VmRSS) before, while held, and {settle} s after they closed. "
     f"{rounds} rounds, the binaries alternating; median (min–max).", "",
     "| binary | RSS before MiB | RSS held MiB | KiB per idle connection | RSS after MiB |",
     "|---|---|---|---|---|"]
for label, ds in data.items():
    L.append(f"| {label} | {cell([d['before_kib'] for d in ds], mib)} | {cell([d['held_kib'] for d in ds], mib)} | "
             f"{cell([d['per_connection_bytes'] / 1024 for d in ds], lambda v: f'{v:.1f}')} | {cell([d['after_kib'] for d in ds], mib)} |")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
