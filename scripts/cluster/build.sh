#!/usr/bin/env bash
# build.sh — builds the test cluster's binaries from the pinned Go modules under
# scripts/cluster/go/ and prints the directory that holds them all:
#
#   kubernetes/   kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
#   etcd/         etcd
#   coredns/      coredns
#   certmanager/  cert-manager-controller (main.go over cert-manager's controller registry)
#   pause/        pause (the Pod sandbox's process)
#
# Each module is built into $CACHE/<module>-<key>, where the key is a digest of the module's
# files, the Go version and the build's flags: a module is rebuilt only when one of those changes,
# and nothing is ever written into the repository. CACHE is $TLSWARD_CLUSTER_CACHE, by default
# ${XDG_CACHE_HOME:-$HOME/.cache}/tlsward-cluster. Builds run one at a time (the machines have
# two cores); GOFLAGS=-mod=readonly keeps the committed go.mod/go.sum authoritative.
set -Eeuo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${TLSWARD_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tlsward-cluster}
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly

# Go 1.26 or later: the machine's, else the pinned toolchain from the Go module proxy (the same
# zip `GOTOOLCHAIN` switching downloads), checked against its digest.
GO_VERSION=1.26.8
GO_ZIP_SHA256=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
ensure_go() {
  if command -v go >/dev/null && go version | grep -Eq ' go1\.(2[6-9]|[3-9][0-9])'; then return; fi
  local dir=$CACHE/go-$GO_VERSION
  if [ ! -x "$dir/bin/go" ]; then
    local proxy=${GOPROXY:-https://proxy.golang.org}; proxy=${proxy%%,*}
    local tmp; tmp=$(mktemp -d)
    echo "build.sh: downloading Go $GO_VERSION from $proxy" >&2
    curl -fsSL -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-amd64.zip"
    echo "$GO_ZIP_SHA256  $tmp/go.zip" | sha256sum -c --quiet
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$tmp/go.zip" "$tmp"
    rm -rf "$dir"; mkdir -p "$CACHE"
    mv "$tmp/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64" "$dir"
    chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/*
    rm -rf "$tmp"
  fi
  export PATH=$dir/bin:$PATH
}
mkdir -p "$CACHE"
ensure_go

K8S_VERSION=v1.37.2
# What `kubectl version` and the API server report, instead of v0.0.0-master.
k8s_ldflags() {
  local flags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=37"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

# key MODULE LDFLAGS PACKAGE…: the digest the module's binaries are cached under: its files,
# the Go version and how they are built.
key() {
  local module=$1; shift
  (cd "$HERE/go/$module" && cat go.mod go.sum ./*.go 2>/dev/null; go version; echo "$*") | sha256sum | cut -c1-16
}

# build MODULE CGO LDFLAGS NAME PACKAGE…: go build into the module's cache directory, once;
# NAME is the binary's name for one package, or "" to name each binary after its package.
build() {
  local module=$1 cgo=$2 ldflags=$3 name=$4; shift 4
  local out; out=$CACHE/$module-$(key "$module" "$cgo" "$ldflags" "$name" "$@")
  if [ ! -f "$out/.built" ]; then
    echo "build.sh: building $module ($*) into $out" >&2
    local start=$SECONDS
    rm -rf "$out"; mkdir -p "$out"
    (cd "$HERE/go/$module" && CGO_ENABLED=$cgo go build -trimpath -ldflags "$ldflags" -o "$out/$name" "$@")
    echo "build.sh: $module built in $((SECONDS - start)) s" >&2
    touch "$out/.built"
  fi
  ln -sfn "$out" "$CACHE/$module"
}

build pause 0 "-s -w" pause .
build etcd 0 "-s -w" etcd go.etcd.io/etcd/server/v3
build certmanager 0 "-s -w" cert-manager-controller .
build coredns 0 "-s -w" coredns github.com/coredns/coredns
build kubernetes 0 "$(k8s_ldflags)" "" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
echo "$CACHE"
