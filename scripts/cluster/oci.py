#!/usr/bin/env python3
"""Writes a one-layer OCI image archive from a directory, for the test cluster's own images.

usage: oci.py ROOTFS REFERENCE OUT.tar [--entrypoint JSON] [--cmd JSON] [--user UID:GID]

No image can be pulled on the project's machines, so the pause, app and client images of the
test cluster are laid out from files the machine has (static binaries, or binaries with the
libraries ldd lists) and packed here: a layer tar of ROOTFS (owners root, times zero, so the
same files give the same digest), an image config, a manifest and an index whose
`io.containerd.image.name` and `org.opencontainers.image.ref.name` annotations carry REFERENCE,
which `ctr images import` takes as the image's name.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def layer_of(rootfs: str) -> bytes:
    """A gzipped tar of rootfs with fixed owners and times."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(rootfs):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(top, name)
                info = tar.gettarinfo(path, arcname=os.path.relpath(path, rootfs))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return gzip.compress(raw.getvalue(), mtime=0)


def blob(tar: tarfile.TarFile, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("rootfs")
    p.add_argument("reference")
    p.add_argument("out")
    p.add_argument("--entrypoint", default="null")
    p.add_argument("--cmd", default="null")
    p.add_argument("--user", default="")
    a = p.parse_args()
    layer = layer_of(a.rootfs)
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": json.loads(a.entrypoint),
            "Cmd": json.loads(a.cmd),
            "User": a.user,
            "Env": ["PATH=/bin:/usr/bin:/usr/local/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    tmp = a.out + ".tmp"
    with tarfile.open(tmp, "w") as tar:
        layer_desc = blob(tar, layer, "application/vnd.oci.image.layer.v1.tar+gzip")
        config_desc = blob(tar, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc,
            "layers": [layer_desc],
        }
        manifest_desc = blob(tar, json.dumps(manifest).encode(), manifest["mediaType"])
        manifest_desc["annotations"] = {
            "io.containerd.image.name": a.reference,
            "org.opencontainers.image.ref.name": a.reference.rsplit(":", 1)[-1],
        }
        index = {"schemaVersion": 2, "manifests": [manifest_desc]}
        for name, data in (("oci-layout", {"imageLayoutVersion": "1.0.0"}), ("index.json", index)):
            encoded = json.dumps(data).encode()
            info = tarfile.TarInfo(name)
            info.size = len(encoded)
            tar.addfile(info, io.BytesIO(encoded))
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
