#!/usr/bin/env python3
"""The function-length gate of `make lint`: of the non-test functions in src/, at most 3 % may be
longer than 50 lines (a long function is one whose steps want names), and none longer than 100.
Test modules (`#[cfg(test)]` and a module's `tests.rs`) are not counted. Prints the distribution
and the long ones; exit 1 above either limit."""
import collections
import os
import re
import sys

LIMIT_LINES = 50
LIMIT_SHARE = 0.03
LIMIT_ANY = 100
FN = re.compile(r"\s*(pub(\([a-z]+\))? )?(async )?(const )?(unsafe )?fn (\w+)")


def functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    end = next((i for i, l in enumerate(lines) if l.startswith("#[cfg(test)]")), len(lines))
    i = 0
    while i < end:
        m = FN.match(lines[i])
        if not m or lines[i].rstrip().endswith(";"):
            i += 1
            continue
        indent = len(lines[i]) - len(lines[i].lstrip())
        j = i
        while "{" not in lines[j]:
            j += 1
        if j == i and lines[i].count("{") == lines[i].count("}"):
            yield 1, m.group(6)
            i += 1
            continue
        k = j + 1
        while k < len(lines) and not (lines[k].startswith(" " * indent + "}") and len(lines[k]) - len(lines[k].lstrip()) == indent):
            k += 1
        yield k - i + 1, m.group(6)
        i += 1


def main(src):
    found = []
    for d, _, files in os.walk(src):
        for f in sorted(files):
            if f.endswith(".rs") and f != "tests.rs":
                path = os.path.join(d, f)
                found.extend((n, path, name) for n, name in functions(path))
    long = sorted((x for x in found if x[0] > LIMIT_LINES), reverse=True)
    buckets = collections.Counter(
        "1-10" if n <= 10 else "11-25" if n <= 25 else "26-50" if n <= 50 else "51-100" if n <= 100 else ">100"
        for n, _, _ in found
    )
    share = len(long) / max(len(found), 1)
    print(f"functions: {len(found)}; over {LIMIT_LINES} lines: {len(long)} ({share:.1%}); "
          + ", ".join(f"{k}: {buckets[k]}" for k in ["1-10", "11-25", "26-50", "51-100", ">100"]))
    for n, path, name in long:
        print(f"  {n:4} {path} {name}")
    failed = 0
    if share > LIMIT_SHARE:
        print(f"more than {LIMIT_SHARE:.0%} of the functions are over {LIMIT_LINES} lines: split one where a name explains a step",
              file=sys.stderr)
        failed = 1
    for n, path, name in (x for x in long if x[0] > LIMIT_ANY):
        print(f"{path}: {name} is {n} lines, over the cap of {LIMIT_ANY}: split it into named steps", file=sys.stderr)
        failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "src"))
