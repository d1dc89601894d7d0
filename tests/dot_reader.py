"""A small reader for the DOT text decoding/render/ writes: enough to check pictures in tests.

Every statement our renderers write sits on its own line, `ID [attrs];` or `A -> B [attrs];`.
"""

from __future__ import annotations

import re

EDGE = re.compile(r"^\s+(\w+) -> (\w+) \[(.*)\];$")
ATTR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|<.*>)')


def parse_dot(text: str, node_ids: str) -> tuple[dict[str, dict], list[tuple[str, str, dict]]]:
    """{node id: attributes}, [(tail, head, attributes)]. `node_ids` is a regex of the ids a
    renderer gives its nodes, so `node [...]` and `edge [...]` defaults are not read as nodes."""
    node = re.compile(rf"^\s+({node_ids}) \[(.*)\];$")
    assert text.startswith("digraph ") and text.rstrip().endswith("}")
    nodes, edges = {}, []
    for line in text.splitlines():
        if m := EDGE.match(line):
            edges.append((m[1], m[2], dict(ATTR.findall(m[3]))))
        elif m := node.match(line):
            nodes[m[1]] = dict(ATTR.findall(m[2]))
    for tail, head, _ in edges:
        assert tail in nodes and head in nodes, f"edge {tail} -> {head} names an unknown node"
    return nodes, edges
