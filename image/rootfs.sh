#!/usr/bin/env bash
# rootfs.sh BINARY ROOTFS — lays out the runtime image's whole filesystem in ROOTFS, as
# distroless/cc does, and nothing else:
#   /usr/local/bin/tlsward                 the binary
#   the shared libraries `ldd BINARY` lists (the dynamic loader included), at those paths
#   /etc/ssl/certs/ca-certificates.crt     the CA roots (for the Kubernetes API and scans)
#   /etc/passwd                            one entry: nonroot, UID/GID 65532
# Used by `make image` (scripts/image.sh, buildah FROM scratch) and by the Dockerfile's last
# stage, so that both images have the same layout.
set -Eeuo pipefail
[ $# -eq 2 ] || { echo "usage: rootfs.sh BINARY ROOTFS" >&2; exit 2; }
BINARY=$1 ROOTFS=$2
[ -x "$BINARY" ] || { echo "rootfs.sh: $BINARY is not an executable" >&2; exit 1; }
CA=/etc/ssl/certs/ca-certificates.crt
[ -s "$CA" ] || { echo "rootfs.sh: $CA is missing (apt-get install ca-certificates)" >&2; exit 1; }
rm -rf "$ROOTFS"
install -D -m 0755 "$BINARY" "$ROOTFS/usr/local/bin/tlsward"
# ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)";
# the vDSO has no file. A library is copied under the path the loader asks for, symlinks followed.
ldd "$BINARY" | awk '$2 == "=>" && $3 ~ /^\// { print $3; next } $1 ~ /^\// { print $1 }' | while read -r lib; do
  install -D -m 0755 "$(readlink -f "$lib")" "$ROOTFS$lib"
done
install -D -m 0644 "$CA" "$ROOTFS$CA"
install -d -m 0755 "$ROOTFS/etc"
printf 'nonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >"$ROOTFS/etc/passwd"
chmod 0644 "$ROOTFS/etc/passwd"
