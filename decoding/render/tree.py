"""The search tree of a decoding run, as a Graph (see dot.py) and as DOT text.

Three shapes, one picture language (left to right, like the text):
- greedy search and sampling: the chosen tokens form a path per sample (samples that share a
  prefix share nodes); the `alternatives` next most likely tokens of each step hang off it,
  dashed, so you see what was passed over. Nodes show and are coloured by the probability the
  token was chosen with.
- beam search: every one of the 2K candidates ranked at each step. Live beams and finished
  hypotheses are coloured by their mean log-prob per generated token; candidates that were
  pruned (spares, finished too late or not kept) are grey; finished ones have a double border.
- the seed post's exhaustive tree: every node, coloured by the post's sequence score.
In all three the chosen (best) path is drawn bold. An assisted decoder's trace, which has
rounds, is drawn round by round instead (rounds.py).
"""

from __future__ import annotations

from decoding.render.colors import GREY, GREY_TEXT, scale_color, value_range
from decoding.render.dot import Decode, Edge, Graph, Node, ids_as_text, prompt_label, token_label
from decoding.render.rounds import rounds_graph
from decoding.results import FINISHED, LIVE, Decoded, Trace
from decoding.tree import TreeSearchResult

BOLD = {"penwidth": "2.5"}
ROOT_STYLE = {"shape": "box", "style": "rounded", "fillcolor": "white"}


def tree_dot(
    result: Trace | Decoded | TreeSearchResult,
    decode: Decode = ids_as_text,
    *,
    alternatives: int = 2,
) -> str:
    """DOT text of the search tree of a traced run (see the module docstring).

    `decode` turns token ids into text (a tokenizer's decode); by default nodes show ids.
    """
    return tree_graph(result, decode, alternatives=alternatives).to_dot()


def tree_graph(
    result: Trace | Decoded | TreeSearchResult,
    decode: Decode = ids_as_text,
    *,
    alternatives: int = 2,
) -> Graph:
    """The search tree as a Graph: pick the drawing that fits the decoder."""
    if isinstance(result, TreeSearchResult):
        return exhaustive_graph(result, decode)
    trace = result.trace if isinstance(result, Decoded) else result
    if not isinstance(trace, Trace):
        raise ValueError("no trace to draw: run the decoder with trace=True")
    if trace.rounds:  # assisted decoding: its draft-and-verify rounds
        return rounds_graph(trace, decode)
    if any(step.candidates for step in trace.steps):
        return beam_graph(trace, decode)
    return chain_graph(trace, decode, alternatives)


class TreeBuilder:
    """Nodes keyed by the token sequence they stand for, so each prefix is drawn once."""

    def __init__(self, name: str, prompt: list[int], decode: Decode) -> None:
        self.graph = Graph(name, attrs={"rankdir": "LR", "fontname": "Helvetica"})
        self.graph.node_defaults = {
            "shape": "box",
            "style": "filled,rounded",
            "fontname": "Helvetica",
        }
        self.ids: dict[tuple[int, ...], str] = {}
        self.add(tuple(prompt), prompt_label(prompt, decode), dict(ROOT_STYLE))

    def add(self, key: tuple[int, ...], label: str, attrs: dict[str, str]) -> str:
        node_id = f"n{len(self.ids)}"
        self.ids[key] = node_id
        self.graph.nodes.append(Node(node_id, label, attrs))
        return node_id

    def link(self, parent: tuple[int, ...], child: tuple[int, ...], attrs: dict[str, str]) -> None:
        self.graph.edges.append(Edge(self.ids[parent], self.ids[child], attrs))


# ------------------------------------------------------------------ greedy search and sampling


def chain_graph(trace: Trace, decode: Decode, alternatives: int = 2) -> Graph:
    """Chosen tokens bold and solid, the next `alternatives` candidates of each step dashed."""
    chosen, passed_over = [], []  # (parent key, token, prob)
    for step in trace.steps:
        for row in step.rows:
            parent = tuple(row.sequence)
            probs = {c.token: c.prob for c in row.candidates}
            chosen += [(parent, t, probs[t]) for t in row.chosen]
            others = [c for c in row.candidates if c.token not in row.chosen and c.prob > 0]
            passed_over += [(parent, c.token, c.prob) for c in others[:alternatives]]
    low, high = value_range([p for _, _, p in chosen + passed_over])

    tree = TreeBuilder(trace.decoder, trace.prompt, decode)
    for parent, token, prob in chosen:
        key = parent + (token,)
        if key not in tree.ids:  # samples sharing a prefix share its nodes
            attrs = {"fillcolor": scale_color(prob, low, high), **BOLD}
            tree.add(key, f"{token_label(token, decode)}\n{prob:.1%}", attrs)
            tree.link(parent, key, dict(BOLD))
    for parent, token, prob in passed_over:
        key = parent + (token,)
        if key not in tree.ids:
            attrs = {"fillcolor": scale_color(prob, low, high), "style": "filled,rounded,dashed"}
            tree.add(key, f"{token_label(token, decode)}\n{prob:.1%}", attrs)
            tree.link(parent, key, {"style": "dashed", "color": GREY_TEXT})
    tree.graph.attrs["label"] = (
        f"{trace.decoder}: bold = chosen, dashed = next most likely; colour = probability"
    )
    return tree.graph


# ------------------------------------------------------------------------------- beam search


def beam_graph(trace: Trace, decode: Decode) -> Graph:
    """The 2K candidates of every step; the pruned ones grey; the best hypothesis bold."""
    best = trace.steps[-1].finished[0].ids if trace.steps and trace.steps[-1].finished else []
    on_best_path = {tuple(best[:n]) for n in range(len(trace.prompt) + 1, len(best) + 1)}
    means = [c.score / step.number for step in trace.steps for c in step.candidates]
    low, high = value_range(means)

    tree = TreeBuilder(trace.decoder, trace.prompt, decode)
    for step in trace.steps:
        for c in step.candidates:
            parent = tuple(step.rows[c.beam].sequence)
            key = parent + (c.token,)
            attrs = candidate_style(c.fate, c.score / step.number, low, high)
            edge = {"color": GREY_TEXT} if attrs.get("fontcolor") == GREY_TEXT else {}
            if key in on_best_path:
                attrs.update(BOLD)
                edge = dict(BOLD)
            tree.add(key, f"{token_label(c.token, decode)}\n{c.score:.2f}", attrs)
            tree.link(parent, key, edge)
    k = len(trace.steps[0].candidates) // 2 if trace.steps else 0
    tree.graph.attrs["label"] = (
        f"beam search, {k} beams: each node shows its cumulative log-prob; colour = mean "
        f"log-prob per token; grey = pruned; double border = finished; bold = best"
    )
    return tree.graph


def candidate_style(fate: str, mean: float, low: float, high: float) -> dict[str, str]:
    """Coloured if the candidate lived on or finished in the pool, grey if it was pruned."""
    if fate == LIVE:
        return {"fillcolor": scale_color(mean, low, high)}
    if fate == FINISHED:
        return {"fillcolor": scale_color(mean, low, high), "peripheries": "2"}
    return {"fillcolor": GREY, "fontcolor": GREY_TEXT, "color": GREY_TEXT}


# ------------------------------------------------------------- the seed post's exhaustive tree


def exhaustive_graph(result: TreeSearchResult, decode: Decode) -> Graph:
    """Every node of the post's top-b tree, coloured by its sequence score; best leaf bold."""
    best = result.best.ids
    low, high = value_range([n.score for n in result.nodes[1:]])
    tree = TreeBuilder("exhaustive tree search", result.prompt, decode)
    for node in result.nodes[1:]:
        key = tuple(node.ids)
        label = f"{token_label(node.token, decode)}\n{node.prob:.1%}"
        if not node.children:
            label += f"\nscore {node.score:.2f}"
        attrs = {"fillcolor": scale_color(node.score, low, high)}
        edge = {}
        if best[: len(key)] == list(key):
            attrs.update(BOLD)
            edge = dict(BOLD)
        tree.add(key, label, attrs)
        tree.link(tuple(result.nodes[node.parent].ids), key, edge)
    tree.graph.attrs["label"] = (
        f'exhaustive top-b tree (the seed post\'s "beam search"): {result.expansions} '
        f"expansions, {len(result.leaves)} leaves; colour = score (log-prob / length)"
    )
    return tree.graph
