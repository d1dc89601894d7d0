"""A graph as plain data, and its Graphviz DOT text. No Graphviz needed to write DOT."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Decode = Callable[[list[int]], str]  # token ids -> text, e.g. a tokenizer's decode


def ids_as_text(ids: list[int]) -> str:
    """The default `decode` for pictures without a tokenizer: the ids themselves.

    >>> ids_as_text([40, 423])
    '40 423'
    """
    return " ".join(str(t) for t in ids)


@dataclass
class Node:
    id: str  # the DOT identifier, e.g. "n12"
    label: str  # plain text; "\n" separates lines
    attrs: dict[str, str] = field(default_factory=dict)  # fillcolor, style, penwidth, ...
    html: bool = False  # label is Graphviz's HTML-like markup, written inside <...>


@dataclass
class Edge:
    tail: str
    head: str
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class Graph:
    name: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)  # graph-wide: rankdir, label, ...
    node_defaults: dict[str, str] = field(default_factory=dict)

    def to_dot(self) -> str:
        """The DOT text: one node statement per line, then one edge statement per line."""
        lines = [f"digraph {quote(self.name)} {{"]
        lines += [f"  {key}={quote(value)};" for key, value in self.attrs.items()]
        if self.node_defaults:
            lines.append(f"  node {attributes(self.node_defaults)};")
        for node in self.nodes:
            label = f"<{node.label}>" if node.html else quote(node.label)
            lines.append(f"  {node.id} {attributes({'label': label, **node.attrs})};")
        for edge in self.edges:
            lines.append(f"  {edge.tail} -> {edge.head} {attributes(edge.attrs)};")
        lines.append("}")
        return "\n".join(lines) + "\n"


def quote(text: str) -> str:
    """A DOT double-quoted string; a newline becomes DOT's centred line break."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def attributes(attrs: dict[str, str]) -> str:
    """`[k="v", ...]`; a label already written as DOT (quoted or <html>) is kept as it is."""
    parts = [f"{k}={v if k == 'label' else quote(v)}" for k, v in attrs.items()]
    return f"[{', '.join(parts)}]"


def show_token(text: str) -> str:
    """A token's text made visible: spaces as "␣", newlines as "↵", other controls as \\xNN.

    >>> show_token(" of"), show_token("\\n\\n"), show_token("\\x07")
    ('␣of', '↵↵', '\\\\x07')
    """
    out = []
    for char in text:
        if char == " ":
            out.append("␣")
        elif char == "\n":
            out.append("↵")
        elif char == "\t":
            out.append("⇥")
        elif not char.isprintable():
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def html_escape(text: str) -> str:
    """Text safe inside a Graphviz HTML-like label."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def prompt_label(prompt: list[int], decode: Decode, width: int = 32) -> str:
    """The prompt's text for the root node, its start cut so it fits in `width` characters."""
    text = decode(prompt).replace("\n", " ")
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def token_label(token: int, decode: Decode) -> str:
    """One token's text as a node shows it."""
    return show_token(decode([token]))
