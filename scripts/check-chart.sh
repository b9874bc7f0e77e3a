#!/usr/bin/env bash
# check-chart.sh — `make chart-check`: helm lint --strict, then render charts/tlsward with
# several value sets and assert what the chart promises: no subPath anywhere, every object
# in the release namespace, RBAC limited to the named Secrets, selectors that match the pod,
# Certificate names for the Service and localhost, a hardened pod, and contradictory values
# refused; and manifests/tlsward.yaml must equal the default render. helm comes from $HELM or
# scripts/k8s-tools (pinned by version and sha256; installed on first use), as do the schema
# validators and checkov.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
TOOLS=scripts/k8s-tools/tools.sh
HELM=${HELM:-$("$TOOLS" helm)}
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check pyyaml >/dev/null
CHART=charts/tlsward
"$HELM" lint --strict "$CHART" >/dev/null
# manifests/tlsward.yaml is the chart with default values, except that the token keys come
# from an existing Secret (a committed file must not carry a generated key); --write-manifests
# refreshes it.
# The helm test Pod is left out (--skip-tests): `kubectl apply` would start a scan at once.
HEADER='# Rendered by `make manifests`: helm template tlsward charts/tlsward -n tlsward --set tokens.existingSecret=tlsward-tokens --skip-tests
# (default values, token keys from an existing Secret, no helm test Pod). Do not edit.'
RENDERED=$("$HELM" template tlsward "$CHART" -n tlsward --set tokens.existingSecret=tlsward-tokens --skip-tests | sed '/^# Source:/d')
if [ "${1:-}" = --write-manifests ]; then
  printf '%s\n%s\n' "$HEADER" "$RENDERED" >manifests/tlsward.yaml
  echo "wrote manifests/tlsward.yaml"; exit 0
fi
if ! diff -q <(printf '%s\n%s\n' "$HEADER" "$RENDERED") manifests/tlsward.yaml >/dev/null; then
  echo "manifests/tlsward.yaml is stale: run make manifests" >&2; exit 1
fi
OUT=$(mktemp -d); trap 'rm -rf "$OUT"' EXIT
render() { local name=$1; shift; "$HELM" template rel "$CHART" -n ns "$@" >"$OUT/$name.yaml"; echo "$name $*" >>"$OUT/sets"; }
render default
render existing --set tls.existingSecret=web-tls --set db.existingSecret=db-client --set tokens.existingSecret=tok
render nokube --set kube.enabled=false
render watch --set kube.watchSecrets=true --set serviceMonitor.enabled=true --set image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef --set networkPolicy.apiServer[0].ipBlock.cidr=172.18.0.2/32
render cakube --set policy.clientAuth=optional --set clientCa.existingSecret=client-cas --set kube.watchSecrets=true
render clientauth --set policy.clientAuth=required --set clientCa.existingSecret=client-cas
render nonetpol --set networkPolicy.enabled=false --set podDisruptionBudget.enabled=false
render dev --set certManager.devIssuer.enabled=true
# OpenShift's restricted SCC assigns the UID and GID itself.
render openshift --set podSecurityContext.runAsUser=null --set podSecurityContext.runAsGroup=null --set podSecurityContext.fsGroup=null
cat >"$OUT/extras-values.yaml" <<'YAML'
nodeSelector: { kubernetes.io/os: linux }
tolerations: [{ key: dedicated, operator: Equal, value: edge, effect: NoSchedule }]
affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: { matchExpressions: [{ key: zone, operator: In, values: [a] }] } }] } }
topologySpreadConstraints: [{ maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule }]
podAnnotations: { example.com/owner: web }
podLabels: { team: web }
extraEnv: [{ name: TLSWARD_LOG, value: debug }]
extraArgs: ["--idle-timeout", "120s"]
extraVolumes: [{ name: scratch, emptyDir: {} }]
extraVolumeMounts: [{ name: scratch, mountPath: /scratch }]
priorityClassName: high
imagePullSecrets: [{ name: regcred }]
resources: { requests: { cpu: 200m, memory: 64Mi }, limits: { memory: 256Mi } }
YAML
render extras -f "$OUT/extras-values.yaml"
cat >"$OUT/policy-values.yaml" <<'YAML'
policy:
  profile: intermediate
  minVersion: "1.2"
  cipherSuites: [TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]
  kxGroups: [X25519MLKEM768, X25519]
  alpn: [h2]
YAML
render policy -f "$OUT/policy-values.yaml"
render monitoring --set serviceMonitor.enabled=true --set prometheusRule.enabled=true --set dashboard.enabled=true --set prometheusRule.labels.release=kps
render netfrom --set 'networkPolicy.from[0].namespaceSelector.matchLabels.team=web'
# mode sidecar: an app with tlsward as its native sidecar (both hops), with tokens and the
# Secret watch, and without the database hop but with an egress of its own.
APP=registry.example.com/shop:1.0
render sidecar --set mode=sidecar --set app.image=$APP
render sidecartok --set mode=sidecar --set app.image=$APP --set app.requireToken=true --set kube.watchSecrets=true --set app.healthPath=/healthz
render sidecarnodb --set mode=sidecar --set app.image=$APP --set app.dbProxy=false --set kube.enabled=false --set 'app.egress[0].ports[0].port=443'
# As a sub-chart of a parent that has global values.
PARENT=$OUT/parent
mkdir -p "$PARENT/charts" && cp -r "$CHART" "$PARENT/charts/tlsward"
printf 'apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n  - name: tlsward\n    version: 0.1.0\n' >"$PARENT/Chart.yaml"
printf 'global:\n  imageRegistry: registry.example.com\ntlsward:\n  replicaCount: 3\n' >"$PARENT/values.yaml"
"$HELM" template rel "$PARENT" -n ns >"$OUT/subchart.yaml"; echo "subchart parent-chart" >>"$OUT/sets"
refuse() { if "$HELM" template rel "$CHART" -n ns "$@" >/dev/null 2>&1; then echo "contradictory values accepted: $*" >&2; exit 1; fi; }
refuse --set tls.issuerRef.name= --set db.issuerRef.name=
refuse --set policy.clientAuth=required
refuse --set podDisruptionBudget.minAvailable=2
refuse --set unknownKey=1
refuse --set kube.enabled=false --set kube.watchSecrets=true
refuse --set mode=sidecar
refuse --set mode=sidecar --set app.image=x:1 --set app.port=8443
refuse --set mode=proxy
refuse --set drainDelaySeconds=15 --set shutdownGraceSeconds=20 --set terminationGracePeriodSeconds=30
# Downgrade-enabling policy values are refused with the binary's own reasons.
refuse_with() {
  local want=$1; shift
  local err; err=$("$HELM" template rel "$CHART" -n ns "$@" 2>&1 >/dev/null) && { echo "accepted: $*" >&2; exit 1; }
  grep -qF "$want" <<<"$err" || { echo "refused without the reason \"$want\": $err" >&2; exit 1; }
}
refuse_with "CBC suites are open to BEAST/Lucky13; not allowed" --set 'policy.cipherSuites={TLS_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}'
refuse_with "RC4 has exploitable keystream biases (RFC 7465); not allowed" --set 'policy.cipherSuites={TLS_AES_128_GCM_SHA256,TLS_RSA_WITH_RC4_128_SHA}'
refuse_with "TLS 1.0/1.1 allow BEAST-class downgrades; the floor is 1.2" --set policy.minVersion=1.1
refuse_with "no TLS 1.3 suite listed" --set 'policy.cipherSuites={TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}'
refuse_with "a TLS 1.2 suite cannot be used with min_version 1.3" --set policy.profile=modern --set 'policy.cipherSuites={TLS_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}'
refuse_with "finite-field groups are not offered" --set 'policy.kxGroups={ffdhe2048}'
python3 - "$OUT" <<'PY'
import sys, yaml, pathlib
out = pathlib.Path(sys.argv[1])
def walk(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items():
            assert k != "subPath", f"subPath at {path}"
            walk(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            walk(v, f"{path}[{i}]")
def tw(spec):
    """The tlsward container: the one container in mode api, the native sidecar in mode sidecar."""
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == "tlsward")
def selects(match, labels):
    return match.items() <= labels.items()

def check_roles(name, args, docs, by, dep, pod, test):
    """Components, the test Pod's reach, the admin Service, drain settings and policy hotness."""
    for d in docs:
        comp = d["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        assert comp in ("server", "test"), f"{name}: {d['kind']} {d['metadata']['name']} has component {comp}"
    tl = test["metadata"]["labels"]
    assert tl["app.kubernetes.io/component"] == "test", f"{name}: test Pod component"
    assert not selects(dep["spec"]["selector"]["matchLabels"], tl), f"{name}: the ReplicaSet would adopt the test Pod"
    for svc in by("Service"):
        assert not selects(svc["spec"]["selector"], tl), f"{name}: Service {svc['metadata']['name']} selects the test Pod"
    server_nps = [np for np in by("NetworkPolicy") if not np["metadata"]["name"].endswith("-test")]
    for np in by("NetworkPolicy"):
        if np in server_nps:
            continue
        # The test Pod's own policy: it selects the test Pod only and lets it reach the TLS port.
        assert selects(np["spec"]["podSelector"]["matchLabels"], tl) and not selects(np["spec"]["podSelector"]["matchLabels"], pod["metadata"]["labels"]), f"{name}: test NetworkPolicy selector"
        out_rule = np["spec"]["egress"][0]
        assert selects(out_rule["to"][0]["podSelector"]["matchLabels"], pod["metadata"]["labels"]) and out_rule["ports"] == [{"port": 8443, "protocol": "TCP"}], f"{name}: test egress"
    for np in server_nps:
        assert not selects(np["spec"]["podSelector"]["matchLabels"], tl), f"{name}: the NetworkPolicy restricts the test Pod"
        assert selects(np["spec"]["podSelector"]["matchLabels"], pod["metadata"]["labels"]), f"{name}: NetworkPolicy misses the server pods"
        tls_rules = [r for r in np["spec"]["ingress"] if {"port": int(8443), "protocol": "TCP"} in r["ports"]]
        assert any(p == {"podSelector": {}} or selects(p.get("podSelector", {}).get("matchLabels", {"x": "y"}), tl)
                   for r in tls_rules for p in r.get("from", [])), f"{name}: the test Pod cannot reach the TLS port"
    svcs = {s["metadata"]["name"]: s for s in by("Service")}
    main, admin = svcs["rel-tlsward"], svcs["rel-tlsward-admin"]
    assert [p["name"] for p in main["spec"]["ports"]] == ["https"], f"{name}: the admin port is on the HTTPS Service"
    assert admin["spec"]["type"] == "ClusterIP" and [p["name"] for p in admin["spec"]["ports"]] == ["admin"], f"{name}: admin Service"
    for sm in by("ServiceMonitor"):
        assert selects(sm["spec"]["selector"]["matchLabels"], admin["metadata"]["labels"]), f"{name}: ServiceMonitor misses the admin Service"
        assert not selects(sm["spec"]["selector"]["matchLabels"], main["metadata"]["labels"]), f"{name}: ServiceMonitor scrapes the HTTPS Service"
    spec = pod["spec"]
    assert "checksum/policy" not in (pod["metadata"].get("annotations") or {}), f"{name}: a policy change would roll the pods"
    env = {e["name"]: e.get("value") for e in tw(spec)["env"]}
    secs = lambda v: int(v.rstrip("s"))
    assert spec["terminationGracePeriodSeconds"] > secs(env["TLSWARD_DRAIN_DELAY"]) + secs(env["TLSWARD_SHUTDOWN_GRACE"]), f"{name}: grace period"
    assert env["TLSWARD_MAX_CONNECTION_AGE"], f"{name}: max connection age"

rendered = {}
for line in (out / "sets").read_text().splitlines():
    name, *args = line.split()
    docs = [d for d in yaml.safe_load_all((out / f"{name}.yaml").read_text()) if d]
    by = lambda kind: [d for d in docs if d["kind"] == kind]
    for d in docs:
        walk(d)
        assert d["metadata"].get("namespace") == "ns", f"{name}: {d['kind']} {d['metadata']['name']} not in the release namespace"
    dep = by("Deployment")[0]
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    sel = dep["spec"]["selector"]["matchLabels"]
    assert sel.items() <= labels.items(), f"{name}: deployment selector"
    for svc in by("Service"):
        assert svc["spec"]["selector"].items() <= labels.items(), f"{name}: service selector"
    for pdb in by("PodDisruptionBudget"):
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), f"{name}: pdb selector"
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    c = tw(spec)["securityContext"]
    assert c["readOnlyRootFilesystem"] is True and c["allowPrivilegeEscalation"] is False and c["capabilities"]["drop"] == ["ALL"]
    kube = "kube.enabled=false" not in " ".join(args)
    sidecar = "mode=sidecar" in " ".join(args)
    assert spec["automountServiceAccountToken"] is (kube and not sidecar), f"{name}: token automount must follow kube.enabled (never in mode sidecar)"
    roles = by("Role")
    assert bool(roles) == kube, f"{name}: Role only with kube.enabled"
    env = {e["name"]: e.get("value") for e in tw(spec)["env"]}
    assert env["TLSWARD_KUBE_EVENTS"] == ("on" if kube else "off"), f"{name}: Events follow kube.enabled"
    assert {"POD_NAME", "POD_NAMESPACE", "POD_UID"} <= env.keys(), f"{name}: downward API"
    if "kube.watchSecrets=true" in " ".join(args):
        # Every watched Secret is mounted at the directory it is paired with, and the Role
        # lets the pod read exactly those Secrets.
        mounts = {m["name"]: m["mountPath"] for m in tw(spec)["volumeMounts"]}
        mounted = {v["secret"]["secretName"]: mounts[v["name"]] for v in spec["volumes"] if "secret" in v}
        pairs = dict(x.split("=", 1) for x in env["TLSWARD_KUBE_SECRETS"].split(","))
        assert env["TLSWARD_WATCH_SECRETS"] == "api" and pairs == mounted, f"{name}: {pairs} vs {mounted}"
        readable = next(set(r["resourceNames"]) for rr in roles for r in rr["rules"] if "secrets" in r["resources"])
        assert readable == set(pairs), f"{name}: Role {readable} vs watched {set(pairs)}"
        if "image.digest" in " ".join(args):
            assert "@sha256:" in tw(spec)["image"], f"{name}: image.digest"
    else:
        assert "TLSWARD_WATCH_SECRETS" not in env, f"{name}: API watch only with kube.watchSecrets"
        assert not [r for rr in roles for r in rr["rules"] if "secrets" in r["resources"]], f"{name}: no Secret access without kube.watchSecrets"
    for np in [n for n in by("NetworkPolicy") if not n["metadata"]["name"].endswith("-test")]:
        api = [e for e in np["spec"]["egress"] if {"port": 6443, "protocol": "TCP"} in e["ports"]]
        assert bool(api) == kube, f"{name}: API egress only with kube.enabled"
        if "networkPolicy.apiServer" in " ".join(args):
            assert api[0].get("to") == [{"ipBlock": {"cidr": "172.18.0.2/32"}}], f"{name}: apiServer peers {api}"
    for r in roles:
        for rule in r["rules"]:
            if "secrets" in rule["resources"]:
                assert rule.get("resourceNames") and set(rule["verbs"]) <= {"get", "list", "watch"}, f"{name}: secrets rule {rule}"
            else:
                assert set(rule["verbs"]) <= {"create", "patch"} and rule["resources"] == ["events"], f"{name}: {rule}"
    for cert in by("Certificate"):
        if cert["metadata"]["name"].endswith("-tls"):
            dns = cert["spec"]["dnsNames"]
            for want in ["rel-tlsward", "rel-tlsward.ns.svc", "rel-tlsward.ns.svc.cluster.local", "localhost"]:
                assert want in dns, f"{name}: {want} missing from {dns}"
        if cert["metadata"]["name"].endswith("-db-client"):
            assert cert["spec"]["commonName"] == "app" and cert["spec"]["usages"][0] == "client auth"
    if "tls.existingSecret=web-tls" in " ".join(args):
        assert not [c for c in by("Certificate") if c["metadata"]["name"].endswith("-tls")], "existing TLS secret: no Certificate"
    tests = [d for d in docs if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    assert tests and tests[0]["spec"]["containers"][0]["args"][0] == "scan", f"{name}: helm test runs tlsward scan"
    check_roles(name, args, docs, by, dep, pod, tests[0])
    rendered[name] = docs
def pod_of(docs):
    return next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]
def test_of(docs):
    return next(d for d in docs if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test")
# OpenShift: no fixed UID/GID anywhere, the rest of the hardening kept.
for d in (pod_of(rendered["openshift"]), test_of(rendered["openshift"])):
    sc = d["spec"]["securityContext"]
    assert not {"runAsUser", "runAsGroup", "fsGroup"} & sc.keys() and sc["runAsNonRoot"] is True, f"openshift: {sc}"
# Every scheduling and extension value reaches the pod.
ps = pod_of(rendered["extras"])["spec"]; c = tw(ps)
assert ps["nodeSelector"] == {"kubernetes.io/os": "linux"} and ps["tolerations"][0]["key"] == "dedicated"
assert "nodeAffinity" in ps["affinity"] and ps["priorityClassName"] == "high" and ps["imagePullSecrets"] == [{"name": "regcred"}]
tsc = ps["topologySpreadConstraints"]
assert len(tsc) == 1 and tsc[0]["topologyKey"] == "topology.kubernetes.io/zone" and tsc[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "server"
meta = pod_of(rendered["extras"])["metadata"]
assert meta["annotations"] == {"example.com/owner": "web"} and meta["labels"]["team"] == "web"
assert {"name": "TLSWARD_LOG", "value": "debug"} in c["env"] and c["args"] == ["serve", "--idle-timeout", "120s"]
assert {"name": "scratch", "emptyDir": {}} in ps["volumes"] and {"name": "scratch", "mountPath": "/scratch"} in c["volumeMounts"]
assert c["resources"]["requests"]["cpu"] == "200m"
# The whole policy goes into the ConfigMap, and only there: the pod template is the same.
cm = next(d for d in rendered["policy"] if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-policy"))
assert yaml.safe_load(cm["data"]["policy.yaml"]) == {"profile": "intermediate", "min_version": "1.2",
    "cipher_suites": ["TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"],
    "kx_groups": ["X25519MLKEM768", "X25519"], "alpn": ["h2"], "client_auth": "none"}, cm["data"]
assert pod_of(rendered["policy"]) == pod_of(rendered["default"]), "a policy-only change alters the pod template"
# Monitoring objects.
mon = rendered["monitoring"]
rule = next(d for d in mon if d["kind"] == "PrometheusRule")
assert rule["metadata"]["labels"]["release"] == "kps" and len(rule["spec"]["groups"][0]["rules"]) == 7
dash = next(d for d in mon if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
import json
panels = json.loads(dash["data"]["tlsward.json"])["panels"]
assert len(panels) >= 10 and all(t["expr"] for p in panels for t in p["targets"])
(out / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
# networkPolicy.from narrows the TLS port to the given peers and still lets the test Pod in.
np = next(d for d in rendered["netfrom"] if d["kind"] == "NetworkPolicy" and not d["metadata"]["name"].endswith("-test"))
peers = np["spec"]["ingress"][0]["from"]
assert {"namespaceSelector": {"matchLabels": {"team": "web"}}} in peers and {"podSelector": {}} not in peers, peers
# mode sidecar: tlsward is a native sidecar (`proxy`) in front of the app on loopback, the
# database socket is shared (rw for tlsward, ro for the app), the service account token and the
# token keys reach tlsward only, the Service targets the port by number (it is declared on an
# init container), the app keeps serving through the drain delay.
for name in ("sidecar", "sidecartok", "sidecarnodb"):
    docs = rendered[name]; spec = pod_of(docs)["spec"]; t = tw(spec)
    init = spec["initContainers"]
    assert [c["name"] for c in init] == ["tlsward"] and init[0]["restartPolicy"] == "Always", f"{name}: native sidecar"
    assert [c["name"] for c in spec["containers"]] == ["app"] and spec["containers"][0]["image"] == "registry.example.com/shop:1.0"
    app = spec["containers"][0]
    env = {e["name"]: e.get("value") for e in t["env"]}
    app_env = {e["name"]: e.get("value") for e in app.get("env", [])}
    assert t["args"][0] == "proxy" and env["TLSWARD_UPSTREAM"] == "http://127.0.0.1:8000" and env["TLSWARD_DRAIN_DELAY"] == "0s", f"{name}: {env}"
    assert app["lifecycle"]["preStop"]["sleep"]["seconds"] == 5, f"{name}: the app's preStop sleep"
    assert "ports" not in app, f"{name}: the app exposes no port"
    tmounts = {m["name"]: m for m in t["volumeMounts"]}; amounts = {m["name"]: m for m in app["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    db = name != "sidecarnodb"
    assert ("run" in volumes) == db and ("db" in volumes) == db and ("TLSWARD_DB_URL" in env) == db, f"{name}: the database hop"
    if db:
        assert env["TLSWARD_DB_PROXY_LISTEN"] == "unix:/run/tlsward" and "emptyDir" in volumes["run"]
        assert not tmounts["run"].get("readOnly") and amounts["run"]["readOnly"] is True, f"{name}: socket mounts"
        assert app_env["DATABASE_URL"] == "postgresql+psycopg2://app@/app?host=/run/tlsward&port=26257" and app_env["PGHOST"] == "/run/tlsward"
        assert any(c["metadata"]["name"].endswith("-db-client") for c in docs if c["kind"] == "Certificate"), f"{name}: db client Certificate"
    else:
        assert not any(c["metadata"]["name"].endswith("-db-client") for c in docs if c["kind"] == "Certificate"), f"{name}: db Certificate without dbProxy"
        np = next(d for d in docs if d["kind"] == "NetworkPolicy" and not d["metadata"]["name"].endswith("-test"))
        assert {"port": 26257, "protocol": "TCP"} not in [p for e in np["spec"]["egress"] for p in e["ports"]], f"{name}: DB egress without dbProxy"
        assert {"ports": [{"port": 443}]} in np["spec"]["egress"], f"{name}: app.egress missing: {np['spec']['egress']}"
    tokens = name == "sidecartok"
    assert ("tokens" in volumes) == tokens and ("tokens" in tmounts) == tokens and "tokens" not in amounts, f"{name}: token keys"
    assert (env.get("TLSWARD_REQUIRE_TOKEN") == "true") == tokens and any(d["kind"] == "Secret" and d["metadata"]["name"].endswith("-tokens") for d in docs) == tokens
    kube = name != "sidecarnodb"
    assert ("kube-api-access" in tmounts) == kube and "kube-api-access" not in amounts, f"{name}: the API token reaches tlsward only"
    svc = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "rel-tlsward")
    assert svc["spec"]["ports"][0]["targetPort"] == 8443, f"{name}: Service targetPort"
tok_env = {e["name"]: e.get("value") for e in tw(pod_of(rendered["sidecartok"])["spec"])["env"]}
assert tok_env["TLSWARD_UPSTREAM_HEALTH_PATH"] == "/healthz" and "rel-tlsward-tokens=/etc/tlsward/tokens" in tok_env["TLSWARD_KUBE_SECRETS"]
# As a sub-chart: the parent's values reach it and `global` is accepted.
assert next(d for d in rendered["subchart"] if d["kind"] == "Deployment")["spec"]["replicas"] == 3
print("chart checks: %d value sets rendered and asserted, 15 contradictory sets refused (6 with the binary's reasons)" % len((out / "sets").read_text().splitlines()))
PY
# The alerts: promtool checks the rendered rules and runs their unit tests.
command -v promtool >/dev/null || { echo "promtool not found (scripts/deps.sh installs Debian's prometheus package)" >&2; exit 1; }
cp tests/alerts/alerts_test.yaml "$OUT/"
promtool check rules "$OUT/rules.yaml" >/dev/null
(cd "$OUT" && promtool test rules alerts_test.yaml) >"$OUT/promtool.log" 2>&1 || { cat "$OUT/promtool.log" >&2; echo "alert unit tests failed" >&2; exit 1; }
echo "alerts: $(grep -c '^  *- alert:' "$OUT/rules.yaml") rules checked, $(grep -c 'alertname:' tests/alerts/alerts_test.yaml) promtool cases passed"
# Every rendered set against the Kubernetes schemas (strict: unknown fields fail) of the oldest
# and the newest version we support, cert-manager and Prometheus Operator CRDs included, and
# through checkov. The checkov findings that are decisions carry their reason in a
# checkov.io/skip annotation on the object (see deployment.yaml and tests/test-scan.yaml).
FILES=()
while read -r name _; do FILES+=("$OUT/$name.yaml"); done <"$OUT/sets"
for k in 1.31.0 1.37.0; do
  if ! "$TOOLS" validate "$k" "${FILES[@]}" >"$OUT/validate-$k.log" 2>&1; then
    grep -v '^ok ' "$OUT/validate-$k.log" >&2; echo "schema validation failed (Kubernetes $k)" >&2; exit 1
  fi
done
if ! "$TOOLS" checkov "${FILES[@]}" >"$OUT/checkov.log" 2>&1; then
  cat "$OUT/checkov.log" >&2; echo "checkov found problems" >&2; exit 1
fi
echo "schemas: ${#FILES[@]} value sets valid on Kubernetes 1.31 and 1.37 (strict, with cert-manager CRDs); checkov: $(grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$OUT/checkov.log" | head -1)"
