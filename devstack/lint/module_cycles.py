#!/usr/bin/env python3
"""Fails when the top-level modules of a crate import each other in a cycle.

Reads `use crate::…` paths (outside comments and `#[cfg(test)]` code) of every `src/**/*.rs`
of the crates named on the command line and reports each cycle with the files that make
it. Imports must run one way (README: "Code we want to live in"); `make lint` runs this.
"""
import glob
import os
import re
import sys


def imports(text):
    """The top-level modules a Rust source names through `crate::`."""
    names = set(re.findall(r"crate::([a-z_][a-z0-9_]*)", text))
    for group in re.findall(r"use crate::\{(.*?)\};", text, flags=re.S):
        depth, part = 0, ""
        for ch in group + ",":
            depth += ch == "{"
            depth -= ch == "}"
            if ch == "," and depth == 0:
                names.add(part.strip().split("::")[0])
                part = ""
            else:
                part += ch
    return {n for n in names if n}


def graph(crate):
    edges, files = {}, {}
    src = os.path.join(crate, "src")
    for path in glob.glob(os.path.join(src, "**", "*.rs"), recursive=True):
        rel = os.path.relpath(path, src)
        if rel.startswith("bin" + os.sep) or rel in ("lib.rs", "main.rs"):
            continue
        module = rel[:-3].split(os.sep)[0]
        with open(path, encoding="utf-8") as f:
            text = f.read().split("#[cfg(test)]")[0]
        text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
        for target in imports(text) - {module}:
            edges.setdefault(module, set()).add(target)
            files.setdefault((module, target), set()).add(rel)
        edges.setdefault(module, set())
    return edges, files


def cycles(edges):
    found, state = [], {}

    def visit(node, stack):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges:
                continue
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif not state.get(nxt):
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if not state.get(node):
            visit(node, [])
    return found


def main(crates):
    failed = False
    for crate in crates:
        edges, files = graph(crate)
        for cycle in cycles(edges):
            failed = True
            print(f"{crate}: import cycle {' -> '.join(cycle)}")
            for a, b in zip(cycle, cycle[1:]):
                print(f"    {a} -> {b}: {', '.join(sorted(files[(a, b)]))}")
    if not failed:
        print(f"module_cycles: no import cycle in {', '.join(crates)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
