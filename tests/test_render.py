"""Pictures from traces: the DOT text is parsed back and checked against the trace it came from.

Toy next-token tables stand in for the model, so every structural claim (one node per
candidate, grey = pruned, bold = chosen path, one dashed line per warper cut) is checked on
many shapes quickly. Where Graphviz's `dot` is installed, the DOT is also rendered and the node
and edge counts are read back from its JSON output; MINIGPT_REQUIRE_DOT=1 (CI) turns the
"dot is not installed" skip into a failure.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from dot_reader import parse_dot as read_dot
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding.beam import beam_search
from decoding.greedy import greedy_search
from decoding.render import bars_dot, dot_available, save_picture, tree_dot
from decoding.render import output as render_output
from decoding.render.colors import GREEN, RED, YELLOW, scale_color
from decoding.results import FINISHED, LIVE
from decoding.sampling import sample
from decoding.tree import exhaustive_tree_search

V = 12
# Token texts that DOT and HTML labels must escape: quotes, backslashes, markup, newlines.
TRICKY = ['"', "\\", "<b>", "&", "{|}", "\n", " a", "é", "x", "\\n", "'", "ok"]


def decode(ids: list[int]) -> str:
    return "".join(TRICKY[t % len(TRICKY)] for t in ids)


def bigram(seed: int, sharpness: float = 3.0):
    """A random bigram table: logits of the next token depend on the last one."""
    table = np.random.default_rng(seed).standard_normal((V, V)).astype(np.float32) * sharpness
    return lambda seqs: table[[s[-1] for s in seqs]]


def parse_dot(text: str):
    """The tree and bar renderers' nodes are n<k> (tree nodes) and s<step>r<row> (bar tables)."""
    return read_dot(text, r"n\d+|s\d+r\d+")


def is_bold(attrs: dict) -> bool:
    return attrs.get("penwidth") == '"2.5"'


def is_grey(attrs: dict) -> bool:
    return attrs.get("fillcolor") == '"#dddddd"'


def rooted_tree(nodes, edges) -> None:
    """Every node but one (the root) has exactly one parent: the picture is a tree."""
    parents = {}
    for tail, head, _ in edges:
        assert head not in parents
        parents[head] = tail
    assert len(parents) == len(nodes) - 1


# ---------------------------------------------------------------------- the seed post's tree


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), branching=st.integers(1, 3), depth=st.integers(1, 4))
def test_exhaustive_tree_has_a_node_per_tree_node_and_a_bold_best_path(seed, branching, depth):
    """Guards: node/edge counts equal the tree's, and exactly the best leaf's path is bold."""
    tree = exhaustive_tree_search(bigram(seed), [0], branching=branching, depth=depth)
    nodes, edges = parse_dot(tree_dot(tree, decode))
    assert len(nodes) == len(tree.nodes) and len(edges) == len(tree.nodes) - 1
    rooted_tree(nodes, edges)
    assert sum(is_bold(a) for a in nodes.values()) == len(tree.best.new_ids)
    assert sum("score" in a["label"] for a in nodes.values()) == len(tree.leaves)


def test_the_seed_posts_tree_shape():
    tree = exhaustive_tree_search(bigram(1), [0], branching=2, depth=5)
    nodes, edges = parse_dot(tree_dot(tree, decode))
    assert (len(nodes), len(edges)) == (1 + 62, 62)  # 2 + 4 + 8 + 16 + 32 tokens
    assert "31 expansions, 32 leaves" in tree_dot(tree, decode)


# ------------------------------------------------------------------------------ beam search


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    num_beams=st.integers(1, 4),
    steps=st.integers(1, 5),
    eos=st.sampled_from([None, 0, 3]),
)
def test_beam_tree_draws_every_candidate_and_greys_the_pruned(seed, num_beams, steps, eos):
    """Guards: one node per ranked candidate; grey exactly for the pruned; bold = best path."""
    result = beam_search(
        bigram(seed), [1], num_beams=num_beams, max_new_tokens=steps, eos_token_id=eos,
        trace=True,
    )[0]  # fmt: skip
    candidates = [c for step in result.trace.steps for c in step.candidates]
    nodes, edges = parse_dot(tree_dot(result, decode))
    assert len(nodes) == 1 + len(candidates) and len(edges) == len(candidates)
    rooted_tree(nodes, edges)
    pruned = [c for c in candidates if c.fate not in (LIVE, FINISHED)]
    assert sum(is_grey(a) for a in nodes.values()) == len(pruned)
    finished = [c for c in candidates if c.fate == FINISHED]
    assert sum(a.get("peripheries") == '"2"' for a in nodes.values()) == len(finished)
    assert sum(is_bold(a) for a in nodes.values()) == len(result.best.new_ids)
    assert sum(is_bold(a) for _, _, a in edges) == len(result.best.new_ids)


def test_beam_tree_accepts_a_trace_or_a_decoded_and_refuses_no_trace():
    result = beam_search(bigram(0), [1], num_beams=2, max_new_tokens=3, trace=True)[0]
    assert tree_dot(result, decode) == tree_dot(result.trace, decode)
    untraced = beam_search(bigram(0), [1], num_beams=2, max_new_tokens=3)[0]
    with pytest.raises(ValueError, match="trace=True"):
        tree_dot(untraced)


# ------------------------------------------------------------------- greedy search, sampling


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 6), alternatives=st.integers(0, 3))
def test_greedy_chain_is_bold_with_dashed_alternatives(seed, steps, alternatives):
    """Guards: one bold node per generated token, `alternatives` dashed siblings per step."""
    result = greedy_search(bigram(seed), [2], max_new_tokens=steps, trace=True)[0]
    nodes, edges = parse_dot(tree_dot(result, decode, alternatives=alternatives))
    rooted_tree(nodes, edges)
    assert sum(is_bold(a) for a in nodes.values()) == len(result.best.new_ids)
    dashed = [a for a in nodes.values() if "dashed" in a.get("style", "")]
    assert len(dashed) == len(result.trace.steps) * alternatives


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 4))
def test_samples_sharing_a_prefix_share_its_nodes(seed, n):
    """Guards: the bold nodes are exactly the distinct prefixes of the drawn samples."""
    result = sample(
        bigram(seed, sharpness=1.0), [2], rng=np.random.default_rng(seed), max_new_tokens=4,
        num_return_sequences=n, trace=True,
    )[0]  # fmt: skip
    prefixes = {tuple(h.ids[: k + 1]) for h in result.hypotheses for k in range(1, len(h.ids))}
    nodes, edges = parse_dot(tree_dot(result, decode, alternatives=0))
    assert len(nodes) == 1 + len(prefixes) and len(edges) == len(prefixes)


# -------------------------------------------------------------------------------------- bars


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), top_k=st.integers(1, V), top_p=st.floats(0.1, 0.99))
def test_bars_mark_the_cutoff_of_every_warper_and_the_chosen_token(seed, top_k, top_p):
    """Guards: one table per step and row, one dashed cutoff line per warper, ◀ on the draw."""
    result = sample(
        bigram(seed), [2], rng=np.random.default_rng(seed), max_new_tokens=3, top_k=top_k,
        top_p=top_p, trace=True,
    )[0]  # fmt: skip
    text = bars_dot(result, decode, top=V)
    nodes, edges = parse_dot(text)
    assert len(nodes) == len(result.trace.steps)
    for step, attrs in zip(result.trace.steps, nodes.values()):
        label = attrs["label"]
        row = step.rows[0]
        assert label.count('STYLE="dashed"') == len(row.cuts) == 2
        for cut in row.cuts:
            assert f"{cut.name}={cut.param}: {cut.kept} kept" in label
        assert label.count("◀") == 1
        kept = sum(c.prob > 0 for c in row.candidates)
        assert label.count("FIXEDSIZE") == 2 * kept  # a bar and its blank rest per kept token


def test_bars_of_beam_search_have_a_table_per_live_beam():
    result = beam_search(bigram(4), [1], num_beams=3, max_new_tokens=4, trace=True)[0]
    nodes, _ = parse_dot(bars_dot(result, decode, max_steps=10))
    assert len(nodes) == sum(len(step.rows) for step in result.trace.steps)


def test_bars_show_at_most_max_steps():
    result = greedy_search(bigram(4), [1], max_new_tokens=6, trace=True)[0]
    nodes, edges = parse_dot(bars_dot(result, decode, max_steps=4))
    assert len(nodes) == 4 and len(edges) == 3


# ------------------------------------------------------------------------------------ colours


@settings(max_examples=200)
@given(a=st.floats(-10, 10), b=st.floats(-10, 10), low=st.floats(-10, 0), span=st.floats(0.1, 10))
def test_colour_moves_from_red_to_green_as_the_value_grows(a, b, low, span):
    """Guards the scale's direction: a higher value is never redder (green minus red grows)."""
    a, b = sorted((a, b))

    def greenness(colour: str) -> int:
        return int(colour[3:5], 16) - int(colour[1:3], 16)

    assert greenness(scale_color(a, low, low + span)) <= greenness(scale_color(b, low, low + span))


def test_colour_scale_ends():
    def hex_of(rgb):
        return "#" + "".join(f"{c:02x}" for c in rgb)

    assert scale_color(0, 0, 1) == hex_of(RED) and scale_color(1, 0, 1) == hex_of(GREEN)
    assert scale_color(0.5, 0, 1) == hex_of(YELLOW)


# ---------------------------------------------------------------------- writing and rendering


def require_dot():
    if dot_available():
        return
    message = "Graphviz's dot is not installed (apt-get install graphviz)"
    if os.environ.get("MINIGPT_REQUIRE_DOT") == "1":
        pytest.fail(message)
    pytest.skip(message)


def rendered_counts(dot_text: str, tmp_path) -> tuple[int, int]:
    """(nodes, edges) as Graphviz itself reads the DOT text."""
    path = tmp_path / "g.dot"
    path.write_text(dot_text, encoding="utf-8")
    done = subprocess.run(["dot", "-Tjson", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and "Error" not in done.stderr, done.stderr
    graph = json.loads(done.stdout)
    return len(graph.get("objects", [])), len(graph.get("edges", []))


def all_pictures():
    """One picture of each kind, over the tricky token texts."""
    beam = beam_search(bigram(5), [1], num_beams=2, max_new_tokens=4, eos_token_id=0, trace=True)
    drawn = sample(bigram(5), [2], rng=np.random.default_rng(0), max_new_tokens=3, top_k=4,
                   top_p=0.8, num_return_sequences=2, trace=True)  # fmt: skip
    greedy = greedy_search(bigram(5), list(range(V)), max_new_tokens=3, trace=True)
    tree = exhaustive_tree_search(bigram(5), [1], branching=2, depth=3)
    return {
        "beam tree": tree_dot(beam[0], decode),
        "sample tree": tree_dot(drawn[0], decode),
        "greedy tree": tree_dot(greedy[0], decode),
        "exhaustive tree": tree_dot(tree, decode),
        "beam bars": bars_dot(beam[0], decode),
        "sample bars": bars_dot(drawn[0], decode),
    }


@pytest.mark.parametrize("name", list(all_pictures()))
def test_graphviz_reads_the_same_graph_we_wrote(name, tmp_path):
    require_dot()
    text = all_pictures()[name]
    nodes, edges = parse_dot(text)
    assert rendered_counts(text, tmp_path) == (len(nodes), len(edges))


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_save_picture_renders_with_graphviz(tmp_path, suffix):
    require_dot()
    target = tmp_path / f"tree{suffix}"
    written, note = save_picture(all_pictures()["beam tree"], target)
    assert note == "" and written == [target.with_suffix(".dot"), target]
    assert target.stat().st_size > 0


def test_save_picture_without_graphviz_writes_dot_and_explains(tmp_path, monkeypatch):
    monkeypatch.setattr(render_output.shutil, "which", lambda name: None)
    written, note = save_picture("digraph g {}\n", tmp_path / "tree.png")
    assert written == [tmp_path / "tree.dot"] and not (tmp_path / "tree.png").exists()
    assert "Graphviz" in note and "dot -Tpng" in note


def test_save_picture_refuses_unknown_types(tmp_path):
    with pytest.raises(ValueError, match="unknown picture type"):
        save_picture("digraph g {}\n", tmp_path / "tree.jpg")


def test_docstring_examples_run():
    import doctest

    import decoding.render
    import decoding.render.colors
    import decoding.render.dot

    for module in (decoding.render, decoding.render.colors, decoding.render.dot):
        failed, _ = doctest.testmod(module)
        assert failed == 0, module.__name__
