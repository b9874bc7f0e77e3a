#!/usr/bin/env bash
# image.sh — `make image`: the OCI image of tlsward, built without Docker. No base image can be
# pulled on the project's machines, so buildah assembles it FROM scratch from the release
# binary, with exactly the layout of the Dockerfile's runtime stage (image/rootfs.sh):
# the binary, the shared libraries ldd lists, the CA roots and a passwd entry for UID 65532,
# USER 65532:65532 and the binary as ENTRYPOINT.
#
# Writes: the image localhost/tlsward:VERSION in podman's local store, and
#         $TARGET/image/tlsward-VERSION.oci.tar (an OCI archive for skopeo, kind or k3d).
# env: BIN (the binary; default $CARGO_TARGET_DIR/release/tlsward), IMAGE (localhost/tlsward:VERSION)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF=$PWD/image/containers.conf
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$TARGET/release/tlsward}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
IMAGE=${IMAGE:-localhost/tlsward:$VERSION}
for tool in buildah podman; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool is missing (scripts/deps.sh installs it: apt-get install podman buildah runc)" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "image.sh: $BIN not found: run make release first" >&2; exit 1; }

OUT=$TARGET/image
mkdir -p "$OUT"
ROOTFS=$(mktemp -d "$OUT/rootfs.XXXXXX")
CTR=
cleanup() { rm -rf "$ROOTFS"; [ -z "$CTR" ] || buildah rm "$CTR" >/dev/null 2>&1 || true; }
trap cleanup EXIT
image/rootfs.sh "$BIN" "$ROOTFS"

CTR=$(buildah from scratch)
buildah copy --quiet "$CTR" "$ROOTFS/" / >/dev/null
buildah config \
  --user 65532:65532 \
  --entrypoint '["/usr/local/bin/tlsward"]' \
  --env PATH=/usr/local/bin \
  --cmd serve \
  --port 8443 --port 9090 \
  --label org.opencontainers.image.title=tlsward \
  --label org.opencontainers.image.version="$VERSION" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  "$CTR"
buildah commit --quiet --rm "$CTR" "$IMAGE" >/dev/null
CTR=
ARCHIVE=$OUT/tlsward-$VERSION.oci.tar
rm -f "$ARCHIVE"
podman save --quiet --format oci-archive -o "$ARCHIVE" "$IMAGE"
echo "image $IMAGE ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes); archive $ARCHIVE"
