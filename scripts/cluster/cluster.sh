#!/usr/bin/env bash
# cluster.sh — a real one-node Kubernetes cluster on this machine, for tests and for trying
# tlsward by hand (`make cluster`). Needs root (containerd, network namespaces, iptables).
#
#   cluster.sh up DIR     starts the cluster with all its state under DIR, writes DIR/env
#                         (KUBECONFIG, KUBECTL, …) and DIR/ready, then holds it until its
#                         standard input closes or it gets SIGINT/SIGTERM/SIGHUP, and tears it
#                         down. A test run pipes its stdin: when the run ends, even killed, the
#                         pipe closes and the cluster goes with it.
#   cluster.sh run DIR COMMAND…
#                         starts it, runs COMMAND with TLSWARD_CLUSTER_DIR=DIR, tears it down
#                         (also on failure or Ctrl-C) and exits with COMMAND's status.
#   cluster.sh down DIR   tears down what a cluster in DIR left (its holder was SIGKILLed).
#   cluster.sh stop DIR NAME / start DIR NAME
#                         stops one component (kube-apiserver, etcd, kubelet, …) or starts it
#                         again with the same command line: the fault tests' restarts.
#
# What runs (binaries from scripts/cluster/build.sh, pinned Go modules; images from
# scripts/cluster/images.sh, plus tlsward's own from `make image` when TLSWARD_IMAGE_ARCHIVE
# names it):
#   etcd                      127.0.0.1, a free port, data in DIR/etcd
#   kube-apiserver            GATEWAY:6443 (the bridge's address: Pods reach it through the
#                             `kubernetes` Service), RBAC + Node authorization, ServiceAccount
#                             token signing (TokenRequest), a PKI of its own in DIR/pki
#   kube-controller-manager   every default controller, each with its own ServiceAccount
#   kube-scheduler
#   containerd + runc         Debian's, with their own root, state and socket under DIR
#   kubelet                   node "localhost", on 127.0.0.1 (logs, exec, port-forward)
#   CNI bridge                BRIDGE with GATEWAY/24 (Debian's containernetworking-plugins)
#   kube-proxy                iptables mode, masquerading all Service traffic
#   CoreDNS                   on GATEWAY:53: cluster.local for Pods (clusterDNS)
#   cert-manager              its controllers (self-signed and CA issuers) and its CRDs
#
# Nothing is left behind: the Pods are deleted first (the kubelet's CNI DEL removes their
# network namespaces), then each process is stopped in order, kube-proxy's rules and the
# kubelet's chains removed, the bridge deleted and the mounts under DIR unmounted.
set -Eeuo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BRIDGE=tlsward0
GATEWAY=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/24
KUBERNETES_SERVICE_IP=10.96.0.1
API_PORT=6443
DOMAIN=cluster.local
CERT_MANAGER_VERSION=v1.21.2

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# wait_for WHAT SECONDS COMMAND…: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { log "timed out after ${seconds}s waiting for $what"; return 1; }
    sleep 0.2
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME COMMAND…: COMMAND in a session of its own (a Ctrl-C reaches only this script,
# which then stops everything in order), its output appended to DIR/logs/NAME.log, its pid
# recorded, its command line kept in DIR/cmd/NAME so that `cluster.sh start DIR NAME` can
# start it again.
start() {
  local name=$1; shift
  mkdir -p "$DIR/cmd"
  printf '%q ' "$@" >"$DIR/cmd/$name"
  launch "$name"
}

launch() {
  setsid bash -c "exec $(cat "$DIR/cmd/$1")" >>"$DIR/logs/$1.log" 2>&1 </dev/null &
  echo "$1 $!" >>"$DIR/pids"
}

pid_of() { awk -v n="$1" '$1 == n { p = $2 } END { print p }' "$DIR/pids" 2>/dev/null; }

# alive PID: the process exists and is not a zombie (a stopped component stays one until the
# holder, blocked reading its input, reaps it).
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]; }

# stop NAME: SIGTERM, then SIGKILL after 10 s; returns once the process is gone (a `start`
# right after would otherwise find it still alive and start nothing), or 1, said, if it
# survives SIGKILL (a teardown goes on with the rest).
stop() {
  local pid; pid=$(pid_of "$1")
  [ -n "$pid" ] && alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  alive "$pid" || return 0
  kill -KILL "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 10))
  while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  alive "$pid" || return 0
  log "$1 (pid $pid) survived SIGKILL"
  return 1
}

running() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && alive "$pid"; }

# ---------------------------------------------------------------------------------------------
# The PKI: one CA, the API server's serving certificate, a client certificate per component.

# cert NAME SUBJECT [SUBJECT_ALT_NAMES]: DIR/pki/NAME.{key,crt}, EC P-256, signed by the CA.
cert() {
  local name=$1 subject=$2 sans=${3:-} ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subject" \
    -keyout "$PKI/$name.key" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 30 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$ext" "$PKI/$name.csr"
}

# kubeconfig NAME: DIR/NAME.kubeconfig authenticating with the client certificate NAME.
kubeconfig() {
  cat >"$DIR/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: tlsward-test
    cluster: { server: "https://$GATEWAY:$API_PORT", certificate-authority: "$PKI/ca.crt" }
users:
  - name: $1
    user: { client-certificate: "$PKI/$1.crt", client-key: "$PKI/$1.key" }
contexts:
  - name: tlsward-test
    context: { cluster: tlsward-test, user: $1 }
current-context: tlsward-test
EOF
}

make_pki() {
  PKI=$DIR/pki
  mkdir -p "$PKI"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=tlsward-test-cluster-ca" -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" \
    "IP:$GATEWAY,IP:$KUBERNETES_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$DOMAIN"
  cert kubelet-serving "/CN=localhost" "DNS:localhost,IP:127.0.0.1"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert admin "/O=system:masters/CN=tlsward-test-admin"
  cert kubelet "/O=system:nodes/CN=system:node:localhost"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kube-proxy "/CN=system:kube-proxy"
  # CoreDNS and cert-manager have no bootstrap roles: they act as cluster admins here.
  cert coredns "/O=system:masters/CN=coredns"
  cert cert-manager "/O=system:masters/CN=cert-manager"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  local who
  for who in admin kubelet controller-manager scheduler kube-proxy coredns cert-manager; do kubeconfig "$who"; done
}

# ---------------------------------------------------------------------------------------------
# The network: the bridge exists before the first Pod, so that the API server and CoreDNS can
# listen on its address; the CNI bridge plugin adopts it.

make_network() {
  ip link add "$BRIDGE" type bridge
  echo "bridge $BRIDGE" >>"$DIR/made"
  ip addr add "$GATEWAY/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  cat /proc/sys/net/ipv4/ip_forward >"$DIR/ip_forward.before"
  echo 1 >/proc/sys/net/ipv4/ip_forward
  mkdir -p "$DIR/cni/net.d" "$DIR/cni/ipam"
  cat >"$DIR/cni/net.d/10-tlsward.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "tlsward-test",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$GATEWAY" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$DIR/cni/ipam"
      }
    }
  ]
}
EOF
}

# ---------------------------------------------------------------------------------------------
# The control plane.

start_etcd() {
  local client peer
  client=$(free_port) peer=$(free_port)
  ETCD=http://127.0.0.1:$client
  start etcd "$BIN/etcd/etcd" --name tlsward-test --data-dir "$DIR/etcd" \
    --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "tlsward-test=http://127.0.0.1:$peer" --unsafe-no-fsync=true --log-level=warn
  wait_for etcd 30 curl -sf "$ETCD/health"
}

apiserver_ready() { curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://$GATEWAY:$API_PORT/readyz"; }

start_apiserver() {
  start kube-apiserver "$BIN/kubernetes/kube-apiserver" \
    --etcd-servers "$ETCD" \
    --bind-address "$GATEWAY" --advertise-address "$GATEWAY" --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types Hostname \
    --service-account-issuer "https://kubernetes.default.svc.$DOMAIN" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --authorization-mode Node,RBAC \
    --allow-privileged=true --profiling=false
  wait_for kube-apiserver 90 apiserver_ready
}

start_controllers() {
  start kube-controller-manager "$BIN/kubernetes/kube-controller-manager" \
    --kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$(free_port)" \
    --use-service-account-credentials=true \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --leader-elect=false
  start kube-scheduler "$BIN/kubernetes/kube-scheduler" \
    --kubeconfig "$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$(free_port)" --leader-elect=false
  # The ServiceAccount controller makes `default` in every namespace: Pods need it.
  wait_for "the default ServiceAccount" 60 "$KUBECTL" -n default get serviceaccount default
}

# ---------------------------------------------------------------------------------------------
# The node.

start_containerd() {
  mkdir -p "$DIR/containerd"
  cat >"$DIR/containerd/config.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$DIR/containerd/containerd.sock"
[ttrpc]
  address = "$DIR/containerd/containerd.ttrpc.sock"
[debug]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/tlsward-test/pause:1"
  # The sandbox refuses negative oom_score_adj values; without this every Pod sandbox fails
  # with runc's "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
EOF
  CONTAINERD_SOCK=$DIR/containerd/containerd.sock
  start containerd containerd --config "$DIR/containerd/config.toml"
  wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
}

# import ARCHIVE [REFERENCE]: an OCI archive into the k8s.io namespace (where the kubelet looks).
import_image() {
  local args=(--address "$CONTAINERD_SOCK" -n k8s.io images import --all-platforms)
  [ -z "${2:-}" ] || args+=(--index-name "$2")
  ctr "${args[@]}" "$1" >/dev/null
}

import_images() {
  local ref archive
  while read -r ref archive; do
    import_image "$archive"
    IMAGES+=("$ref")
  done < <("$HERE/images.sh" "$BIN" "$CACHE/images")
  if [ -n "${TLSWARD_IMAGE_ARCHIVE:-}" ]; then
    [ -f "$TLSWARD_IMAGE_ARCHIVE" ] || die "TLSWARD_IMAGE_ARCHIVE=$TLSWARD_IMAGE_ARCHIVE is not a file (make image writes it)"
    local ref=${TLSWARD_IMAGE:-localhost/tlsward:$(sed -n 's/^version = "\(.*\)"/\1/p' "$HERE/../../Cargo.toml" | head -1)}
    import_image "$TLSWARD_IMAGE_ARCHIVE" "$ref"
    IMAGES+=("$ref")
  fi
}

node_ready() {
  "$KUBECTL" get node localhost -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}

start_kubelet() {
  mkdir -p "$DIR/kubelet"
  cat >"$DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: false }
  x509: { clientCAFile: $PKI/ca.crt }
# Only the API server (its client certificate, from this cluster's CA) reaches the kubelet,
# on loopback.
authorization: { mode: AlwaysAllow }
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
# This machine: cgroup v1 and no systemd as PID 1.
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
localStorageCapacityIsolation: false
evictionHard: {}
# The images were imported, none can be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
clusterDNS: [$GATEWAY]
clusterDomain: $DOMAIN
resolvConf: /etc/resolv.conf
EOF
  start kubelet "$BIN/kubernetes/kubelet" --config "$DIR/kubelet/config.yaml" \
    --kubeconfig "$DIR/kubelet.kubeconfig" --hostname-override localhost --node-ip "$GATEWAY" \
    --root-dir "$DIR/kubelet"
  wait_for "the node to be Ready" 120 node_ready
}

start_kube_proxy() {
  start kube-proxy "$BIN/kubernetes/kube-proxy" --kubeconfig "$DIR/kube-proxy.kubeconfig" \
    --proxy-mode iptables --masquerade-all --cluster-cidr "$POD_CIDR" --hostname-override localhost \
    --metrics-bind-address "127.0.0.1:$(free_port)" --healthz-bind-address "127.0.0.1:$(free_port)"
  echo "kube-proxy-rules" >>"$DIR/made"
}

start_coredns() {
  mkdir -p "$DIR/coredns"
  local ready; ready=127.0.0.1:$(free_port)
  cat >"$DIR/coredns/Corefile" <<EOF
.:53 {
    bind $GATEWAY
    errors
    ready $ready
    kubernetes $DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $DIR/coredns.kubeconfig tlsward-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
  start coredns "$BIN/coredns/coredns" -conf "$DIR/coredns/Corefile"
  # /ready answers 200 once the kubernetes plugin has synced with the API server.
  wait_for CoreDNS 60 curl -sf "http://$ready/ready"
}

start_cert_manager() {
  local crds
  crds=$(cd "$HERE/go/certmanager" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)/deploy/crds
  [ -d "$crds" ] || die "cert-manager's CRDs are not in the module cache ($crds): run scripts/cluster/build.sh"
  "$KUBECTL" apply --server-side -f "$crds" >/dev/null
  "$KUBECTL" wait --for condition=Established --timeout 60s crd --all >/dev/null
  "$KUBECTL" create namespace cert-manager >/dev/null
  start cert-manager "$BIN/certmanager/cert-manager-controller" --kubeconfig "$DIR/cert-manager.kubeconfig" \
    --cluster-resource-namespace cert-manager
}

# ---------------------------------------------------------------------------------------------
# Teardown, in the order that leaves nothing: Pods first (with the kubelet and CNI still there).

no_tasks() { [ -z "$(ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null)" ]; }

delete_pods() {
  running kube-apiserver && running kubelet || return 0
  stop kube-controller-manager   # nothing makes new Pods from here on
  stop kube-scheduler
  "$KUBECTL" delete pods --all --all-namespaces --grace-period 0 --force --wait=false >/dev/null 2>&1 || true
  wait_for "the kubelet to stop every container" 60 no_tasks || true
  wait_for "the Pods to be gone" 30 sh -c "[ -z \"\$('$KUBECTL' get pods -A -o name 2>/dev/null)\" ]" || true
}

# Rules in TABLE that jump to KUBE-* chains, then those chains: what the kubelet and kube-proxy
# made (kube-proxy --cleanup removes most of its own).
remove_kube_chains() {
  local ipt table rule chain
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null || continue
    for table in filter nat mangle; do
      "$ipt-save" -t "$table" 2>/dev/null | grep -E '^-A [^ ]+ .*-j KUBE-' | grep -v '^-A KUBE-' | sed 's/^-A /-D /' |
        while read -r rule; do eval "$ipt -t $table $rule" 2>/dev/null || true; done
      for chain in $("$ipt-save" -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'); do
        "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt-save" -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'); do
        "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

remove_pod_networks() {
  local name
  for name in $(ip netns list 2>/dev/null | awk '/^cni-/ { print $1 }'); do ip netns delete "$name" 2>/dev/null || true; done
}

# What a cluster whose holder was SIGKILLed leaves on the machine, without its directory:
# kube-proxy's and the kubelet's chains, the Pods' network namespaces, the bridge.
remove_leftovers() {
  set +e +o pipefail
  remove_kube_chains
  remove_pod_networks
  ip link delete "$BRIDGE" 2>/dev/null
  set -e -o pipefail
}

unmount_under() {
  local m
  for m in $(awk -v d="$1" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

teardown() {
  [ -f "$DIR/pids" ] || return 0
  # Best effort from here on: one step that fails must not keep the next from running.
  set +e +o pipefail
  log "stopping the cluster in $DIR"
  BIN=${BIN:-$(sed -n 's/^BIN=//p' "$DIR/env" 2>/dev/null)}
  KUBECTL=${KUBECTL:-$BIN/kubernetes/kubectl}
  export KUBECONFIG=$DIR/admin.kubeconfig
  CONTAINERD_SOCK=$DIR/containerd/containerd.sock
  delete_pods
  local name
  for name in cert-manager coredns kube-proxy kubelet kube-scheduler kube-controller-manager; do stop "$name" || true; done
  # Sandboxes the kubelet could not stop: their network namespaces go with them.
  for name in $(ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks kill -s SIGKILL "$name" >/dev/null 2>&1 || true
  done
  for name in kube-apiserver etcd containerd; do stop "$name" || true; done
  if grep -qx kube-proxy-rules "$DIR/made" 2>/dev/null && [ -x "$BIN/kubernetes/kube-proxy" ]; then
    "$BIN/kubernetes/kube-proxy" --cleanup >/dev/null 2>&1 || true
  fi
  remove_kube_chains
  remove_pod_networks
  if grep -qx "bridge $BRIDGE" "$DIR/made" 2>/dev/null; then ip link delete "$BRIDGE" 2>/dev/null || true; fi
  [ -f "$DIR/ip_forward.before" ] && cat "$DIR/ip_forward.before" >/proc/sys/net/ipv4/ip_forward
  unmount_under "$DIR/"
  rm -rf "$DIR/containerd" "$DIR/kubelet" "$DIR/etcd" "$DIR/cni" "$DIR/pids" "$DIR/made" "$DIR/ready"
  log "stopped; logs are in $DIR/logs"
}

# ---------------------------------------------------------------------------------------------

bring_up() {
  [ "$(id -u)" = 0 ] || die "needs root: containerd, network namespaces and iptables"
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    pgrep -f 'tlsward-cluster/' >/dev/null \
      && die "the bridge $BRIDGE exists and a test cluster's processes run: another test cluster is up"
    log "the bridge $BRIDGE was left by a cluster that was killed; removing what it left"
    remove_leftovers
  fi
  for tool in containerd runc ctr iptables ip openssl curl python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh installs it)"
  done
  [ -x /usr/lib/cni/bridge ] || die "the CNI plugins are missing (apt-get install containernetworking-plugins)"
  mkdir -p "$DIR/logs"
  DIR=$(cd "$DIR" && pwd)
  : >"$DIR/pids"
  : >"$DIR/made"
  trap teardown EXIT
  trap 'exit 130' INT TERM HUP
  CACHE=${TLSWARD_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tlsward-cluster}
  "$HERE/build.sh" >/dev/null
  BIN=$CACHE
  KUBECTL=$BIN/kubernetes/kubectl
  export KUBECONFIG=$DIR/admin.kubeconfig
  local t0=$SECONDS
  make_pki
  make_network
  start_etcd
  start_apiserver
  start_controllers
  start_containerd
  IMAGES=()
  import_images
  start_kubelet
  start_kube_proxy
  start_coredns
  start_cert_manager
  cat >"$DIR/env" <<EOF
KUBECONFIG=$DIR/admin.kubeconfig
KUBECTL=$KUBECTL
BIN=$BIN
GATEWAY=$GATEWAY
API_SERVER=https://$GATEWAY:$API_PORT
ETCD=$ETCD
CA=$PKI/ca.crt
CONTAINERD_SOCK=$CONTAINERD_SOCK
CLUSTER_DOMAIN=$DOMAIN
CERT_MANAGER_VERSION=$CERT_MANAGER_VERSION
IMAGES=${IMAGES[*]}
EOF
  log "up in $((SECONDS - t0)) s: $("$KUBECTL" version 2>/dev/null | tr '\n' ' ')"
  touch "$DIR/ready"
}

# Holds the cluster until the standard input closes (the test run ended) or a signal comes.
hold() {
  cat <<EOF >&2
cluster.sh: the cluster is up; it stops when this ends (Ctrl-C). In another shell:
  export KUBECONFIG=$DIR/admin.kubeconfig
  $KUBECTL get nodes,pods -A
EOF
  while read -r _; do :; done
}

usage() { sed -n '2,15p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
DIR=$2
if [ "$1" = run ] && [ $# -ge 3 ]; then
  shift 2
  bring_up
  TLSWARD_CLUSTER_DIR=$DIR "$@"
  exit
fi
case "$1 $#" in
  "up 2") bring_up; hold ;;
  "down 2") DIR=$(cd "$DIR" && pwd); teardown ;;
  "stop 3") stop "$3" || die "could not stop $3" ;;
  "start 3") [ -f "$DIR/cmd/$3" ] || die "no component $3 in $DIR/cmd"; running "$3" || launch "$3" ;;
  *) usage ;;
esac
