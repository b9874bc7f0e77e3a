#!/usr/bin/env bash
# scan.sh — `make bench-scan`: wall time of `tlsward scan` against testssl.sh (Debian),
# sslyze (PyPI) and sslscan (Debian) on the same loopback targets in one run, and whether
# tlsward's and testssl.sh's protocol, BEAST/RC4/SWEET32 and client-renegotiation verdicts
# agree; writes bench/scan-results.md.
#   targets: tlsward itself (intermediate profile), an `openssl s_server` that accepts TLS 1.0
#            with a CBC suite (BEAST), and one that accepts client-initiated renegotiation
# env: BENCH_WORK (bench/work), RUNS (5: tlsward scan runs per target; testssl runs once)
set -Eeuo pipefail
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO" >&2' ERR
cd "$(dirname "$0")/.."
ROOT=$PWD BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tlsward
W=$(mkdir -p "${BENCH_WORK:-$ROOT/bench/work}/scan" && cd "${BENCH_WORK:-$ROOT/bench/work}/scan" && pwd)
RUNS=${RUNS:-5}
command -v testssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq testssl.sh >/dev/null; }
command -v sslscan >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sslscan >/dev/null; }
SSLYZE_VENV=${XDG_CACHE_HOME:-$HOME/.cache}/tlsward-sslyze
[ -x "$SSLYZE_VENV/bin/sslyze" ] || { python3 -m venv "$SSLYZE_VENV" && "$SSLYZE_VENV/bin/pip" install -q --disable-pip-version-check 'sslyze==6.1.0'; }
[ -x "$BIN" ] || cargo build --release --locked
rm -rf "$W/pki"; "$BIN" certs dev --out "$W/pki" >/dev/null
CA=$W/pki/ca/ca.crt
P1=9543 P2=9544 P3=9545
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
TLSWARD_LOG=off "$BIN" serve --listen 127.0.0.1:$P1 --admin-listen 127.0.0.1:0 --tls-dir "$W/pki/server" \
  --token-key-dir "$W/pki/tokens" --db-url "postgresql://app@localhost:1/app?sslmode=verify-full&sslrootcert=$CA" &
PIDS+=($!)
openssl s_server -accept 127.0.0.1:$P2 -www -quiet -cert "$W/pki/server/tls.crt" -key "$W/pki/server/tls.key" \
  -tls1 -cipher 'ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0' </dev/null >/dev/null 2>&1 &
PIDS+=($!)
openssl s_server -accept 127.0.0.1:$P3 -www -quiet -cert "$W/pki/server/tls.crt" -key "$W/pki/server/tls.key" \
  -tls1_2 -client_renegotiation -naccept 100000 </dev/null >/dev/null 2>&1 &
PIDS+=($!)
sleep 1

ms() { date +%s%3N; }
rows=""
for spec in "tlsward:$P1" "openssl-tls10-cbc:$P2" "openssl-tls12-renegotiates:$P3"; do
  name=${spec%%:*} port=${spec##*:}
  times=()
  for _ in $(seq "$RUNS"); do
    t0=$(ms); "$BIN" scan "localhost:$port" --ca "$CA" --json >"$W/$name.json" || true; t1=$(ms)
    times+=($((t1 - t0)))
    # s_server serves one connection at a time and pauses about a second after refusing a
    # renegotiation (the scanner's last probe): the next scan would wait for that pause.
    sleep 1.2
  done
  med=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  inner=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["duration_ms"])' "$W/$name.json")
  rm -f "$W/$name.testssl.json"
  t0=$(ms)
  timeout 600 testssl --quiet --color 0 --nodns none --ip 127.0.0.1 --warnings off \
    --jsonfile "$W/$name.testssl.json" "localhost:$port" >"$W/$name.testssl.txt" 2>&1 || true
  t1=$(ms)
  agree=$(python3 - "$W/$name.json" "$W/$name.testssl.json" <<'PY'
import json, sys
ours, theirs = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
t = {e["id"]: e["finding"] for e in (theirs if isinstance(theirs, list) else theirs.get("scanResult", []))}
proto = {"SSLv3": "SSLv3", "TLSv1.0": "TLS1", "TLSv1.1": "TLS1_1", "TLSv1.2": "TLS1_2", "TLSv1.3": "TLS1_3"}
diff = []
for ours_name, tid in proto.items():
    o = ours["protocols"][ours_name]
    th = "not offered" not in t.get(tid, "not offered")
    if o != th:
        diff.append(f"{ours_name}: tlsward {o}, testssl {t.get(tid)}")
ids = {f["id"] for f in ours["findings"]}
for ours_id, tid in [("beast", "BEAST"), ("rc4", "RC4"), ("sweet32", "SWEET32")]:
    th = tid in t and "not vulnerable" not in t[tid] and "no RC4" not in t[tid]
    if (ours_id in ids) != th:
        diff.append(f"{ours_id}: tlsward {ours_id in ids}, testssl {t.get(tid)}")
th = "VULNERABLE" in t.get("secure_client_renego", "")
if ("client_renegotiation" in ids) != th:
    diff.append(f"client_renegotiation: tlsward {'client_renegotiation' in ids}, testssl {t.get('secure_client_renego')}")
print("yes" if not diff else "NO: " + "; ".join(diff))
PY
)
  testssl_ms=$((t1 - t0))
  t0=$(ms); timeout 600 "$SSLYZE_VENV/bin/sslyze" --quiet "localhost:$port" >"$W/$name.sslyze.txt" 2>&1 || true; t1=$(ms)
  sslyze_ms=$((t1 - t0))
  t0=$(ms); timeout 600 sslscan --no-colour "localhost:$port" >"$W/$name.sslscan.txt" 2>&1 || true; t1=$(ms)
  sslscan_ms=$((t1 - t0))
  x() { awk -v a="$1" -v b="$med" 'BEGIN{printf "%.0f", a / (b > 0 ? b : 1)}'; }
  rows+="| $name | $med ($inner in-process) | $testssl_ms ($(x $testssl_ms)×) | $sslyze_ms ($(x $sslyze_ms)×) | $sslscan_ms ($(x $sslscan_ms)×) | $agree |"$'\n'
done

{
  echo "# Scan time: tlsward scan vs testssl.sh, sslyze and sslscan"
  echo
  echo "One run of \`make bench-scan\` (\`bench/scan.sh\`) on $(date -u '+%Y-%m-%d %H:%M:%S') UTC; $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), $(testssl --version 2>/dev/null | grep -m1 -o 'testssl.sh [^ ]*[0-9][^ ]*' || echo testssl.sh), sslyze $("$SSLYZE_VENV/bin/pip" show sslyze 2>/dev/null | awk '/^Version/{print $2}'), sslscan $(sslscan --version 2>/dev/null | grep -o '[0-9]\+\.[0-9]\+\.[0-9]\+' | head -1), tlsward $("$BIN" --version | awk '{print $2}') (release)."
  echo
  echo "Each target on 127.0.0.1. tlsward: median wall time of $RUNS runs of \`tlsward scan localhost:PORT --ca ca.crt --json\` (process start included, 1.2 s apart: \`openssl s_server\` serves one connection at a time and pauses about a second after refusing a renegotiation, which a scan started at once would wait for; in brackets the scan's own \`duration_ms\` of the last run), every protocol, every suite of the IANA registry and every group enumerated, certificate, HSTS and downgrade checks. testssl.sh: one default run with \`--nodns none --ip 127.0.0.1\`; sslyze and sslscan: one default run each. In brackets: each tool's time as a multiple of tlsward's. \"Agree\" compares the verdicts tlsward and testssl.sh both give: SSLv3/TLS 1.0/1.1/1.2/1.3 offered or not, BEAST, RC4, SWEET32 and client-initiated renegotiation."
  echo
  echo "| target | tlsward scan ms | testssl.sh ms | sslyze ms | sslscan ms | verdicts agree |"
  echo "| --- | --- | --- | --- | --- | --- |"
  printf '%s' "$rows"
} >"$ROOT/bench/scan-results.md"
cat "$ROOT/bench/scan-results.md"
