#!/usr/bin/env bash
# db-proxy.sh — the third part of `make bench-proxy`: the database hop. pgbench (one thread,
# the users query of the API: SELECT … FROM users WHERE id = random 1..10000) against the test
# database three ways: the client's own verify-full TLS connection with the client certificate
# (direct), tlsward's database socket (`tlsward proxy --db-proxy-listen`, which opens the database
# with verify-full and the certificate), and pgbouncer (session mode, server_tls_sslmode =
# verify-full with the same client certificate, clients on a unix socket). Two modes: persistent
# connections (CLIENTS clients) and a new connection per transaction (pgbench -C, CONNECT_CLIENTS
# clients). ROUNDS rounds, the three alternating; median (min–max) of transactions/s, p50/p99
# latency (pgbench's per-transaction log) and the proxy's CPU per transaction. Writes
# bench/db-proxy-results.md.
#
# env: BENCH_WORK (bench/work, git-ignored), DURATION (10), ROUNDS (3), CLIENTS (16),
#      CONNECT_CLIENTS (4), DB_PORT (26261), PGBOUNCER_PORT (6433)
set -Eeuo pipefail
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO" >&2' ERR
cd "$(dirname "$0")/.."
ROOT=$PWD
. bench/lib.sh
W=$(mkdir -p "${BENCH_WORK:-$ROOT/bench/work}/db-proxy" && cd "${BENCH_WORK:-$ROOT/bench/work}/db-proxy" && pwd)
chmod 755 "$W"
DURATION=${DURATION:-10} ROUNDS=${ROUNDS:-3} CLIENTS=${CLIENTS:-16} CONNECT_CLIENTS=${CONNECT_CLIENTS:-4}
DB_PORT=${DB_PORT:-26261} PGB_PORT=${PGBOUNCER_PORT:-6433}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tlsward
OUT=$ROOT/bench/db-proxy-results.md
need pgbouncer pgbouncer
[ -x "$BIN" ] || cargo build --release --locked
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
DSN=$(BIN=$BIN "$ROOT/bench/peer/setup-db.sh" "$W/db" "$DB_PORT" | tail -1)
PKI=$W/db/pki

# pgbouncer refuses to run as root: as the postgres OS user then, with its own copies of the files.
PGB=$W/pgbouncer; mkdir -p "$PGB/run"
cp "$PKI/ca/ca.crt" "$PKI/db-client/client.app.crt" "$PKI/db-client/client.app.key" "$PGB/"
echo '"app" ""' >"$PGB/userlist.txt"
cat >"$PGB/pgbouncer.ini" <<INI
[databases]
app = host=localhost port=$DB_PORT dbname=app user=app
[pgbouncer]
listen_addr =
listen_port = $PGB_PORT
unix_socket_dir = $PGB/run
auth_type = trust
auth_file = $PGB/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 32
server_tls_sslmode = verify-full
server_tls_ca_file = $PGB/ca.crt
server_tls_cert_file = $PGB/client.app.crt
server_tls_key_file = $PGB/client.app.key
logfile = $PGB/pgbouncer.log
pidfile = $PGB/pgbouncer.pid
INI
AS=()
if [ "$(id -u)" = 0 ]; then chown -R postgres "$PGB"; chmod 600 "$PGB/client.app.key"; AS=(runuser -u postgres --); fi

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  "$ROOT/bench/peer/setup-db.sh" stop "$W/db" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"${AS[@]}" "$PGBOUNCER" "$PGB/pgbouncer.ini" >"$PGB/stdout.log" 2>&1 & PGB_PID=$!; PIDS+=($!)
mkdir -p "$W/run"
TLSWARD_LOG=warn "$BIN" proxy --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --tls-dir "$PKI/server" \
  --upstream http://127.0.0.1:9 --upstream-unready-after 0s --db-proxy-listen "unix:$W/run" --db-url "$DSN" \
  --db-max-session-age 0s --kube-events off >"$W/tlsward.log" 2>&1 & TW_PID=$!; PIDS+=($!)
# pgbouncer's process is the runuser child when we are root.
sleep 1; [ "${#AS[@]}" -gt 0 ] && PGB_PID=$(pgrep -P "$PGB_PID" | head -1)

DIRECT="host=localhost port=$DB_PORT user=app dbname=app sslmode=verify-full sslrootcert=$PKI/ca/ca.crt sslcert=$PKI/db-client/client.app.crt sslkey=$PKI/db-client/client.app.key"
VIA_TLSWARD="host=$W/run port=26257 user=app dbname=app"
VIA_PGB="host=$PGB/run port=$PGB_PORT user=app dbname=app"
cat >"$W/query.sql" <<'SQL'
\set id random(1, 10000)
SELECT id, username, email FROM users WHERE id = :id;
SQL
for c in "$DIRECT" "$VIA_TLSWARD" "$VIA_PGB"; do
  for _ in $(seq 50); do psql "$c" -XtAc 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
  psql "$c" -XtAc 'SELECT 1' >/dev/null || { echo "cannot connect: $c (see $W/*.log, $PGB/*.log)" >&2; exit 1; }
done

HZ=$(getconf CLK_TCK)
RESULTS=$W/results.tsv; : >"$RESULTS"
# run SYSTEM PID MODE ROUND CONNINFO -> system mode round tps p50_ms p99_ms failed cpu_us_per_tx
run() {
  local system=$1 pid=$2 mode=$3 round=$4 conninfo=$5 clients=$CLIENTS flags=()
  [ "$mode" = connect ] && { clients=$CONNECT_CLIENTS; flags=(-C); }
  rm -rf "$W/log"; mkdir -p "$W/log"
  local s0 s1 out; s0=$(ticks "$pid")
  out=$(cd "$W/log" && "$PGBENCH" -n -f "$W/query.sql" -c "$clients" -j 1 -T "$DURATION" -l "${flags[@]}" "$conninfo" 2>&1)
  s1=$(ticks "$pid")
  local tps n failed; tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
  n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out"); failed=${failed:-0}
  local lat; lat=$(cat "$W"/log/pgbench_log.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%.3f\t%.3f", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$mode" "$round" "$tps" "$lat" "$failed" \
    "$(awk -v t=$((s1 - s0)) -v hz="$HZ" -v n="$n" 'BEGIN{printf "%.1f", t / hz * 1e6 / n}')" | tee -a "$RESULTS"
}
SYSTEMS=("direct - $DIRECT" "tlsward $TW_PID $VIA_TLSWARD" "pgbouncer $PGB_PID $VIA_PGB")
for mode in persistent connect; do
  for round in $(seq "$ROUNDS"); do
    for i in 0 1 2; do
      read -r system pid conninfo <<<"${SYSTEMS[$(((i + round - 1) % 3))]}"
      run "$system" "$pid" "$mode" "$round" "$conninfo"
    done
  done
done

python3 - "$RESULTS" "$OUT" "$DURATION" "$ROUNDS" "$CLIENTS" "$CONNECT_CLIENTS" "$("$PGBOUNCER" --version | head -1)" "$("$PGBENCH" --version)" <<'PY'
import statistics as st, sys
res, out, duration, rounds, clients, cclients, pgb_v, pgbench_v = sys.argv[1:]
rows = [l.split("\t") for l in open(res).read().splitlines() if l]
def cell(vals, fmt):
    vals = sorted(vals)
    return f"{fmt(st.median(vals))} ({fmt(vals[0])}–{fmt(vals[-1])})"
L = ["# The database hop: tlsward's database socket vs a direct verify-full connection vs pgbouncer", "",
     f"Written by `make bench-proxy` (bench/db-proxy.sh). {pgbench_v}, one thread, the API's query (SELECT by a random id",
     "of 10,000) against PostgreSQL set up like a secure CockroachDB. direct: the client's own verify-full TLS with the",
     "client certificate; tlsward: `tlsward proxy --db-proxy-listen` (unix socket; verify-full + the certificate to the",
     f"database); pgbouncer: {pgb_v}, session mode, server_tls_sslmode = verify-full with the same certificate, unix",
     f"socket. persistent: {clients} clients on open connections; connect: {cclients} clients, a new connection per transaction",
     f"(pgbench -C). {duration} s per run, {rounds} rounds alternating; median (min–max); latency from pgbench's per-transaction",
     "log; proxy CPU = user + system time of tlsward's or pgbouncer's process / transactions (direct has none).", "",
     "| mode | path | transactions/s | p50 ms | p99 ms | failed | proxy CPU µs / tx |", "|---|---|---|---|---|---|---|"]
for mode in ("persistent", "connect"):
    for system in ("direct", "tlsward", "pgbouncer"):
        r = [x for x in rows if x[0] == system and x[1] == mode]
        if not r:
            continue
        tps = [float(x[3]) for x in r]; p50 = [float(x[4]) for x in r]; p99 = [float(x[5]) for x in r]; cpu = [float(x[7]) for x in r]
        cpu_cell = "—" if system == "direct" else cell(cpu, lambda v: f"{v:.1f}")
        L.append(f"| {mode} | {system} | {cell(tps, lambda v: f'{v:,.0f}')} | {cell(p50, lambda v: f'{v:.2f}')} | "
                 f"{cell(p99, lambda v: f'{v:.2f}')} | {sum(int(x[6]) for x in r)} | {cpu_cell} |")
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L))
PY
