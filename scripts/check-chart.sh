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
RENDERED=$("$HELM" template tlsward "$CHART" -n tlsward --set tokens.existingSecret=tlsward-tokens | sed '/^# Source:/d')
if [ "${1:-}" = --write-manifests ]; then
  printf '# Rendered from charts/tlsward with default values by `make manifests`; do not edit.\n%s\n' "$RENDERED" >manifests/tlsward.yaml
  echo "wrote manifests/tlsward.yaml"; exit 0
fi
if ! diff -q <(printf '# Rendered from charts/tlsward with default values by `make manifests`; do not edit.\n%s\n' "$RENDERED") manifests/tlsward.yaml >/dev/null; then
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
refuse() { if "$HELM" template rel "$CHART" -n ns "$@" >/dev/null 2>&1; then echo "contradictory values accepted: $*" >&2; exit 1; fi; }
refuse --set tls.issuerRef.name= --set db.issuerRef.name=
refuse --set policy.clientAuth=required
refuse --set podDisruptionBudget.minAvailable=2
refuse --set unknownKey=1
refuse --set kube.enabled=false --set kube.watchSecrets=true
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
    c = spec["containers"][0]["securityContext"]
    assert c["readOnlyRootFilesystem"] is True and c["allowPrivilegeEscalation"] is False and c["capabilities"]["drop"] == ["ALL"]
    kube = "kube.enabled=false" not in " ".join(args)
    assert spec["automountServiceAccountToken"] is kube, f"{name}: token automount must follow kube.enabled"
    roles = by("Role")
    assert bool(roles) == kube, f"{name}: Role only with kube.enabled"
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["TLSWARD_KUBE_EVENTS"] == ("on" if kube else "off"), f"{name}: Events follow kube.enabled"
    assert {"POD_NAME", "POD_NAMESPACE", "POD_UID"} <= env.keys(), f"{name}: downward API"
    if "kube.watchSecrets=true" in " ".join(args):
        # Every watched Secret is mounted at the directory it is paired with, and the Role
        # lets the pod read exactly those Secrets.
        mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        mounted = {v["secret"]["secretName"]: mounts[v["name"]] for v in spec["volumes"] if "secret" in v}
        pairs = dict(x.split("=", 1) for x in env["TLSWARD_KUBE_SECRETS"].split(","))
        assert env["TLSWARD_WATCH_SECRETS"] == "api" and pairs == mounted, f"{name}: {pairs} vs {mounted}"
        readable = next(set(r["resourceNames"]) for rr in roles for r in rr["rules"] if "secrets" in r["resources"])
        assert readable == set(pairs), f"{name}: Role {readable} vs watched {set(pairs)}"
        if "image.digest" in " ".join(args):
            assert "@sha256:" in spec["containers"][0]["image"], f"{name}: image.digest"
    else:
        assert "TLSWARD_WATCH_SECRETS" not in env, f"{name}: API watch only with kube.watchSecrets"
        assert not [r for rr in roles for r in rr["rules"] if "secrets" in r["resources"]], f"{name}: no Secret access without kube.watchSecrets"
    for np in by("NetworkPolicy"):
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
print("chart checks: %d value sets rendered and asserted, 5 contradictory sets refused" % len((out / "sets").read_text().splitlines()))
PY
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
