#!/usr/bin/env bash
# deps.sh — installs what `make run`, `make test` and `make image` need and the machine lacks:
# Debian's postgresql (server binaries), openssl (and libssl-dev + pkg-config to build the
# scanner's legacy TLS client), curl, testssl.sh (the scanner's tests
# compare verdicts with it), podman + buildah + runc (the image and its tests), python3-venv
# and npm (the chart checks' validators), prometheus (promtool, for the alert rules), and the
# weak test server's tlslite-ng from PyPI; for the real test cluster (scripts/cluster/):
# containerd, runc, the CNI plugins, iptables, iproute2, conntrack and busybox-static (the test
# images). Go comes from scripts/cluster/build.sh. Needs root (or sudo) only when something is
# missing.
set -Eeuo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The scanner's legacy TLS client (feature legacy-tls) links the system's OpenSSL.
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
command -v testssl >/dev/null 2>&1 || missing+=(testssl.sh)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || missing+=(runc)
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
# The test cluster's node.
command -v containerd >/dev/null 2>&1 || missing+=(containerd)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
# promtool (the chart's alert rules and their unit tests) ships in Debian's prometheus package.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# The scanner's tests run a deliberately weak TLS server on tlslite-ng (pure Python, PyPI).
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import tlslite' 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check tlslite-ng >/dev/null 2>&1 \
    || echo "deps.sh: could not install tlslite-ng (pip); the scanner's weak-server tests will fail" >&2
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps.sh: need root to install ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's package creates and starts a default cluster on 5432; ours are throwaway clusters
# on their own ports, so the default one is not needed.
# Only promtool is wanted from the prometheus package: a server it started would hold :9090.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v service >/dev/null 2>&1; then
  $SUDO service prometheus stop >/dev/null 2>&1 || true
fi
if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null 2>&1; then
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(pg_lsclusters -h | awk 'NR==1{print $1}')" main stop 2>/dev/null || true
fi
