#!/usr/bin/env python3
"""The import gate of `make lint`: every `crate::<module>` path in src/ (outside test modules and
comments; a `tests.rs` is a test module) names a module of a lower layer than the one it is written in, so the module graph has
no cycle and nothing below imports what composes it. A new top-level module must be given a
layer here. Exit 1 with every offending import listed."""
import os
import re
import sys

# Lowest first. A module may import only modules of the layers before its own.
LAYERS = [
    ["util", "reloadable"],         # the clock, RFC 3339, SHA-256; the kinds of reloaded material
    ["files", "logs", "metrics"],   # the file reader, log throttling, the metrics registry
    ["tls", "token", "edge"],       # TLS material and configs, tokens, the accept loop
    ["pki", "scan", "db"],          # dev PKI, the scanner, the database side (pool, manager)
    ["snapshot"],                   # the validated snapshot and its store
    ["reload", "dbproxy", "web"],   # the reload task, its status and notices; the database proxy; the HTTP edge
    ["k8s", "api", "proxy"],        # Kubernetes Events and Secret watches; the users API; the proxy's forwarding
    ["cli"],                        # flags
    ["config"],                     # flags -> checked configuration + first snapshot
    ["server"],                     # composes the handles and runs the listeners
]
ROOT_FILES = {"lib", "main"}
PATH = re.compile(r"crate::(?:\{([^}]*)\}|([a-z_0-9]+))")


def layer_of():
    return {m: i for i, layer in enumerate(LAYERS) for m in layer}


def imports(text):
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("//"):
            continue
        for group, single in PATH.findall(line):
            names = [single] if single else [g.strip().split("::")[0] for g in group.split(",")]
            for name in filter(None, names):
                yield n, name


def main(src):
    rank = layer_of()
    problems = []
    for d, _, files in os.walk(src):
        for f in sorted(files):
            # A module's `tests.rs` is its `#[cfg(test)] mod tests` in a file of its own.
            if not f.endswith(".rs") or f == "tests.rs":
                continue
            path = os.path.join(d, f)
            top = os.path.relpath(path, src).split(os.sep)[0].removesuffix(".rs")
            if top in ROOT_FILES:
                continue
            if top not in rank:
                problems.append(f"{path}: module `{top}` has no layer in scripts/check-layers.py")
                continue
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            for n, name in imports(text):
                if name == top or name in ("self", "super"):
                    continue
                if name not in rank:
                    problems.append(f"{path}:{n}: imports `crate::{name}`, which has no layer")
                elif rank[name] >= rank[top]:
                    problems.append(
                        f"{path}:{n}: `{top}` (layer {rank[top]}) imports `crate::{name}` (layer {rank[name]}): "
                        "only lower layers may be imported; hand the value in from the composing module instead"
                    )
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "src"))
