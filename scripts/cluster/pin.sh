#!/usr/bin/env bash
# pin.sh K8S_VERSION — rewrites go/kubernetes/go.mod and go.sum for k8s.io/kubernetes@K8S_VERSION
# (e.g. v1.37.2), for an upgrade of the test cluster. k8s.io/kubernetes requires its staging
# modules (k8s.io/api, k8s.io/client-go, …) at v0.0.0 and maps them to ./staging paths that its
# module zip lacks; the wrapper replaces each with the published module of the same release
# (v0.MINOR.PATCH), taken from the release's own go.mod, and copies its go and godebug lines.
# Then set K8S_VERSION in build.sh. The other modules (etcd, coredns, certmanager) are plain:
# edit the version in their go.mod and run `GOFLAGS=-mod=mod go list -deps tool` (or `.`) there.
set -Eeuo pipefail
[ $# -eq 1 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
VERSION=$1
STAGING=v0.${VERSION#v1.}
DIR=$(cd "$(dirname "$0")/go/kubernetes" && pwd)
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
MOD=$(go mod download -json "k8s.io/kubernetes@$VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
{
  echo "// The Kubernetes $VERSION binaries (kube-apiserver, kube-controller-manager, kube-scheduler,"
  echo "// kubelet, kube-proxy, kubectl) built from the Go module proxy. k8s.io/kubernetes maps its"
  echo "// staging modules to ./staging paths that its module zip lacks: each is replaced here by the"
  echo "// published module of the same release. Written by scripts/cluster/pin.sh; do not tidy."
  echo "module tlsward.test/cluster/kubernetes"
  echo
  grep -E '^go [0-9]' "$MOD" | head -1
  echo
  grep -E '^godebug ' "$MOD" || true
  echo
  echo "require k8s.io/kubernetes $VERSION"
  echo
  echo "replace ("
  grep './staging/' "$MOD" | awk -v v="$STAGING" '{ print "\t" $1 " => " $1 " " v }'
  echo ")"
  echo
  echo "tool ("
  for cmd in kube-apiserver kube-controller-manager kube-proxy kube-scheduler kubectl kubelet; do
    echo "	k8s.io/kubernetes/cmd/$cmd"
  done
  echo ")"
} >"$DIR/go.mod"
rm -f "$DIR/go.sum"
(cd "$DIR" && go list -deps tool >/dev/null)
echo "pinned k8s.io/kubernetes $VERSION (staging $STAGING) in $DIR/go.mod; now set K8S_VERSION in build.sh" >&2
