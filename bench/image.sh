#!/usr/bin/env bash
# image.sh — `make bench-image`: the container image's size and its start-up cost, in one
# run: start-up to /readyz = 200 of the bare release binary and of the same binary in the
# image of `make image` (podman run, hardened as the chart runs it, host network), ROUNDS
# starts each, alternated (bare, container, bare, …) so that machine noise hits both alike.
# Writes bench/image-results.md.
#
# env: BENCH_WORK (bench/work), ROUNDS (7), DB_PORT (26259), PORT (9443), ADMIN_PORT (9490)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CONTAINERS_CONF=$ROOT/image/containers.conf
W=$(mkdir -p "${BENCH_WORK:-$ROOT/bench/work}" && cd "${BENCH_WORK:-$ROOT/bench/work}" && pwd)
chmod 755 "$W"
ROUNDS=${ROUNDS:-7} DB_PORT=${DB_PORT:-26259} PORT=${PORT:-9443} ADMIN_PORT=${ADMIN_PORT:-9490}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/tlsward
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
IMAGE=${IMAGE:-localhost/tlsward:$VERSION}
podman image exists "$IMAGE" || { echo "bench/image.sh: $IMAGE not found: run make image" >&2; exit 1; }

DSN=$(BIN=$BIN bench/peer/setup-db.sh "$W/db" "$DB_PORT" | tail -1)
PKI=$W/db/pki
trap 'bench/peer/setup-db.sh stop "$W/db" >/dev/null 2>&1 || true' EXIT
# The container reads the PKI as UID 65532 (in a pod: defaultMode + fsGroup).
MNT=$W/image-mnt; rm -rf "$MNT"; mkdir -p "$MNT"
cp -r "$PKI/server" "$PKI/tokens" "$PKI/db-client" "$MNT/"; cp "$PKI/ca/ca.crt" "$MNT/db-client/root.crt"
chmod -R a+rX "$MNT"
CDSN="postgresql://app@localhost:$DB_PORT/app?sslmode=verify-full&sslrootcert=/mnt/db/root.crt&sslcert=/mnt/db/client.app.crt&sslkey=/mnt/db/client.app.key"
ARGS=(--listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" --kube-events off)

bare() { python3 bench/ready_time.py "$BIN" "$ADMIN_PORT" serve "${ARGS[@]}" \
  --tls-dir "$PKI/server" --token-key-dir "$PKI/tokens" --db-url "$DSN"; }
contained() { python3 bench/ready_time.py podman "$ADMIN_PORT" run --rm --network host --read-only \
  --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges \
  -v "$MNT/server:/mnt/tls:ro" -v "$MNT/tokens:/mnt/tokens:ro" -v "$MNT/db-client:/mnt/db:ro" \
  "$IMAGE" serve "${ARGS[@]}" --tls-dir /mnt/tls --token-key-dir /mnt/tokens --db-url "$CDSN"; }
B=() C=()
for _ in $(seq "$ROUNDS"); do
  B+=("$(bare)"); C+=("$(contained)")
  # podman run --rm is stopped by SIGTERM to podman; wait until the port is free again.
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$ADMIN_PORT") 2>/dev/null || break; sleep 0.1; done
done
SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")
ARCHIVE=${CARGO_TARGET_DIR:-$ROOT/target}/image/tlsward-$VERSION.oci.tar
ASIZE=$(stat -c %s "$ARCHIVE" 2>/dev/null || echo 0)
FILES=$(c=$(podman create "$IMAGE") && podman export "$c" | tar -tv | awk '$1 !~ /^d/ {printf "%s %s\n", $3, $6}'; podman rm "$c" >/dev/null)

python3 - "$SIZE" "$ASIZE" "$ROUNDS" "$(podman --version)" "$FILES" "${B[*]}" "${C[*]}" >bench/image-results.md <<'PY'
import statistics, sys, time
size, asize, rounds, podman, files, bare, ctr = sys.argv[1:]
bare = [float(x) for x in bare.split()]
ctr = [float(x) for x in ctr.split()]
med = statistics.median
print("# The container image: size and start-up\n")
print(f"One run of `make bench-image` (`bench/image.sh`) on {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, {podman} with runc.\n")
print(f"- Image size (uncompressed, as podman stores it): **{int(size) / 1024 / 1024:.1f} MiB**; the OCI archive of `make image`: {int(asize) / 1024 / 1024:.1f} MiB.")
print(f"- Start-up to `/readyz` = 200 (database up, pool verified, migration checked), {rounds} starts each, alternated:")
print(f"  bare binary median **{med(bare):.0f} ms** (min {min(bare):.0f}, max {max(bare):.0f}); "
      f"in the container (`podman run --rm`, hardened, host network) median **{med(ctr):.0f} ms** (min {min(ctr):.0f}, max {max(ctr):.0f}): "
      f"the difference, {med(ctr) - med(bare):.0f} ms, is the container's set-up by podman and runc around the same binary.")
print("\n## Files in the image\n")
print("| bytes | path |\n| ---: | --- |")
for line in files.splitlines():
    n, path = line.split(" ", 1)
    print(f"| {int(n):,} | /{path} |")
PY
cat bench/image-results.md
