"""validate_schemas.py K8S_VERSION FILE.yaml... — the first offline schema check of rendered
manifests: kubernetes-validate (PyPI; the Kubernetes JSON schemas of 1.25 to 1.37 ship in the
wheel), strict, so an unknown or misspelt field fails. An apiVersion/kind without a schema (a
removed API such as policy/v1beta1) fails too, except for the custom resources that
validate_models.mjs checks against their CRD schemas. Prints one line per document; exits 1
when any fails, 2 when the Kubernetes version is not supported.
"""
import sys

import kubernetes_validate.utils as kv
import yaml

CRD_GROUPS = {"cert-manager.io", "acme.cert-manager.io", "monitoring.coreos.com"}


def group_of(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def check(doc: dict, version: str, where: str) -> bool:
    ident = f"{where}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')} ({doc.get('apiVersion')})"
    try:
        kv.validate(doc, version, True)
    except kv.SchemaNotFoundError:
        if group_of(doc.get("apiVersion", "")) in CRD_GROUPS:
            return True
        print(f"ERROR {ident}: no schema in Kubernetes {version} (removed or unknown API version)")
        return False
    except kv.ValidationError as e:
        print(f"ERROR {ident}: {'.'.join(str(p) for p in e.path)}: {e.message}")
        return False
    except kv.VersionNotSupportedError:
        print(f"kubernetes-validate does not know Kubernetes {version}", file=sys.stderr)
        sys.exit(2)
    print(f"ok    {ident} (Kubernetes {version}, strict)")
    return True


def main() -> int:
    version, files = sys.argv[1], sys.argv[2:]
    ok = True
    for f in files:
        with open(f) as fh:
            for doc in yaml.safe_load_all(fh):
                if isinstance(doc, dict):
                    ok = check(doc, version, f) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
