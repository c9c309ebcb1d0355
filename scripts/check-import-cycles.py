#!/usr/bin/env python3
"""Fails when a crate's source files import each other in a circle.

docs/architecture.md says the folders show the architecture and depend one way; this
keeps it true. For each crate's src/, every `crate::a::b` and `super::x` path outside a
comment is resolved to the file that defines it, and the strongly connected components
of that graph with more than one file are reported. Test modules (after
`#[cfg(test)]`) are left out: a test may reach anywhere.
"""
import collections
import os
import re
import sys

CRATES = ["core/src", "backends/src", "conformance/src", "cli/src", "examples/toml-backend/src"]


def files_of(src):
    found = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    text = f.read().split("#[cfg(test)]")[0]
                code = "\n".join(line for line in text.split("\n") if not line.strip().startswith("//"))
                found[os.path.relpath(path, src)] = code
    return found


def resolve(files, parts):
    for n in range(len(parts), 0, -1):
        base = "/".join(parts[:n])
        for candidate in (base + ".rs", base + "/mod.rs"):
            if candidate in files:
                return candidate
    return None


def graph(files):
    edges = collections.defaultdict(set)
    for path, code in files.items():
        if path in ("lib.rs", "main.rs"):
            continue
        for match in re.finditer(r"crate::((?:[a-z_]+::)*[a-z_]+)", code):
            target = resolve(files, match.group(1).split("::"))
            if target and target != path and target not in ("lib.rs", "main.rs"):
                edges[path].add(target)
        directory = os.path.dirname(path)
        parent = os.path.dirname(directory) if path.endswith("mod.rs") else directory
        for match in re.finditer(r"\bsuper::((?:[a-z_]+::)*[A-Za-z_]+)", code):
            prefix = [p for p in parent.split("/") if p]
            target = resolve(files, prefix + match.group(1).split("::"))
            if target is None:
                for candidate in ("/".join(prefix) + ".rs", "/".join(prefix) + "/mod.rs"):
                    if candidate in files:
                        target = candidate
            if target and target != path:
                edges[path].add(target)
    return edges


def circles(edges, nodes):
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in nodes:
        if v not in index:
            visit(v)
    return found


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    failed = False
    for crate in CRATES:
        files = files_of(os.path.join(root, crate))
        edges = graph(files)
        for component in circles(edges, list(files)):
            failed = True
            print(f"{crate}: these files import each other in a circle:", file=sys.stderr)
            for path in component:
                inside = sorted(t for t in edges[path] if t in component)
                print(f"  {path} -> {', '.join(inside)}", file=sys.stderr)
    if failed:
        sys.exit(1)
    print("no import circles in " + ", ".join(CRATES))


if __name__ == "__main__":
    main()
