#!/usr/bin/env bash
# images.sh BIN_DIR OUT_DIR — the test cluster's own images as OCI archives in OUT_DIR, made from
# files this machine has (no image can be pulled), each rebuilt only when its inputs change:
#
#   pause.oci.tar   localhost/tlsward-test/pause:1    the sandbox process (BIN_DIR/pause/pause)
#   app.oci.tar     localhost/tlsward-test/app:1      busybox httpd on 127.0.0.1:8000 serving /www,
#                                                     and psql for the database socket: the app
#                                                     behind the sidecar in tests
#   client.oci.tar  localhost/tlsward-test/client:1   busybox, curl and openssl with their
#                                                     libraries: load and checks from inside
#
# The references are printed, one per line, as "REFERENCE ARCHIVE".
set -Eeuo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 2 ] || { echo "usage: images.sh BIN_DIR OUT_DIR" >&2; exit 2; }
BIN_DIR=$1 OUT=$2
mkdir -p "$OUT"
# Debian's busybox-static: one static binary, at home in an image without libraries.
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] && ! ldd "$BUSYBOX" >/dev/null 2>&1 \
  || { echo "images.sh: a static $BUSYBOX is needed (apt-get install busybox-static)" >&2; exit 1; }

# with_libs BINARY ROOTFS: BINARY at its own path in ROOTFS, with the libraries ldd lists.
with_libs() {
  install -D -m 0755 "$(readlink -f "$1")" "$2$1"
  ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3; next } $1 ~ /^\// { print $1 }' |
    while read -r lib; do install -D -m 0755 "$(readlink -f "$lib")" "$2$lib"; done
}

# busybox_in ROOTFS: busybox as /bin/busybox with its applets linked in /bin.
busybox_in() {
  install -D -m 0755 "$BUSYBOX" "$1/bin/busybox"
  local applet
  for applet in sh httpd sleep cat echo wget nc ls date seq grep sed awk tr head tail wc printf test env kill touch rm mkdir; do
    ln -sf busybox "$1/bin/$applet"
  done
  install -d -m 1777 "$1/tmp"
  printf 'nonroot:x:65532:65532:nonroot:/:/bin/sh\n' | install -D -m 0644 /dev/stdin "$1/etc/passwd"
}

# image NAME ENTRYPOINT LAYOUT_FUNCTION INPUT…: OUT/NAME.oci.tar, rebuilt when an input changes.
image() {
  local name=$1 entrypoint=$2 layout=$3; shift 3
  local ref=localhost/tlsward-test/$name:1 archive=$OUT/$name.oci.tar
  local key; key=$(cat "$@" "$HERE/images.sh" "$HERE/oci.py" | sha256sum | cut -c1-16)
  if [ "$(cat "$archive.key" 2>/dev/null)" != "$key" ]; then
    local rootfs; rootfs=$(mktemp -d)
    "$layout" "$rootfs"
    python3 "$HERE/oci.py" "$rootfs" "$ref" "$archive" --entrypoint "$entrypoint" --user 65532:65532
    rm -rf "$rootfs"
    echo "$key" >"$archive.key"
  fi
  echo "$ref $archive"
}

pause_layout() { install -D -m 0755 "$BIN_DIR/pause/pause" "$1/pause"; }
# PostgreSQL's own psql (not Debian's pg_wrapper script), for the app's database socket.
PSQL=$(ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -1)
[ -x "$PSQL" ] || { echo "images.sh: psql is missing (apt-get install postgresql)" >&2; exit 1; }
app_layout() {
  busybox_in "$1"
  with_libs "$PSQL" "$1"
  ln -s "$PSQL" "$1/bin/psql"
  printf '<!doctype html><title>app</title><p>hello from the app behind tlsward</p>\n' |
    install -D -m 0644 /dev/stdin "$1/www/index.html"
  printf 'ok\n' | install -D -m 0644 /dev/stdin "$1/www/healthz"
}
client_layout() {
  busybox_in "$1"
  with_libs "$(command -v curl)" "$1"
  with_libs "$(command -v openssl)" "$1"
}

command -v curl >/dev/null && command -v openssl >/dev/null \
  || { echo "images.sh: curl and openssl are needed for the client image" >&2; exit 1; }
image pause '["/pause"]' pause_layout "$BIN_DIR/pause/pause"
image app '["/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:8000", "-h", "/www"]' app_layout "$BUSYBOX" "$PSQL"
image client '["/bin/sh"]' client_layout "$BUSYBOX" "$(command -v curl)" "$(command -v openssl)"
