"""The picture of assisted decoding's rounds (decoding/render/rounds.py), checked against the trace.

One node per drafted token, coloured by its outcome, one blue node per model's own token, one
residual table per sampling rejection, bold edges along exactly the generated text; tree_dot
(and so `minigpt generate --tree`) draws it for an assisted trace. Where Graphviz is installed
it must read back the graph we wrote, without a warning.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from dot_reader import parse_dot
from hypothesis import given, settings
from hypothesis import strategies as st
from test_render import decode, rendered_counts, require_dot

from decoding import assisted_greedy_search, assisted_sample, greedy_search
from decoding.render import rounds_dot, tree_dot
from decoding.render.colors import GREEN, GREY, RED
from decoding.render.rounds import BLUE, hex_color, residual_table
from decoding.results import ACCEPTED, REJECTED, UNCHECKED, ResidualProb
from minigpt import cli

V = 12
FILL = {ACCEPTED: hex_color(GREEN), REJECTED: hex_color(RED), UNCHECKED: GREY}


def parse(text: str):
    """rounds_dot's nodes: r<round> (its label), r<round>d<k> (drafted tokens), r<round>b (the
    model's own token), r<round>res (a rejection's residual table)."""
    return parse_dot(text, r"r\d+(?:d\d+|b|res)?")


def fill(attrs: dict) -> str:
    return attrs.get("fillcolor", "").strip('"')


def model(seed: int, sharpness: float = 1.5):
    table = np.random.default_rng(seed).standard_normal((V, V)).astype(np.float32) * sharpness
    return lambda seqs: table[[s[-1] for s in seqs]]


def runs(seed: int, steps: int, draft: int):
    """An assisted greedy run (token 0 is EOS: an accepted EOS ends a round without the
    model's own token) and an assisted sampling run (two samples) of a random bigram, drafted
    by another one; and one drafted by prompt lookup."""
    target, drafter = model(seed), model(seed + 1)
    assist = {"assistant_model": drafter, "num_assistant_tokens": draft}
    return [
        assisted_greedy_search(target, [1], max_new_tokens=steps, trace=True, eos_token_id=0,
                               **assist)[0],
        assisted_sample(target, [1], rng=np.random.default_rng(seed), max_new_tokens=steps,
                        num_return_sequences=2, top_k=6, trace=True, **assist)[0],
        assisted_sample(target, [1, 2, 3, 1, 2], rng=np.random.default_rng(seed), trace=True,
                        max_new_tokens=steps, prompt_lookup_num_tokens=draft)[0],
    ]  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 12), draft=st.integers(1, 5))
def test_a_node_per_drafted_token_and_model_token_coloured_by_outcome(seed, steps, draft):
    for decoded in runs(seed, steps, draft):
        rounds = decoded.trace.rounds
        nodes, edges = parse(rounds_dot(decoded, decode, max_rounds=100))
        for k, r in enumerate(rounds):
            assert f"r{k}" in nodes  # the round's own box
            for i, d in enumerate(r.drafted):
                assert fill(nodes[f"r{k}d{i}"]) == FILL[d.outcome]
            assert f"r{k}d{len(r.drafted)}" not in nodes
            assert (f"r{k}b" in nodes) == (r.bonus is not None)
            if r.bonus is not None:
                assert fill(nodes[f"r{k}b"]) == hex_color(BLUE)
            assert (f"r{k}res" in nodes) == bool(r.residual_top)
        drafted = sum(len(r.drafted) for r in rounds)
        bonuses = sum(r.bonus is not None for r in rounds)
        tables = sum(bool(r.residual_top) for r in rounds)
        assert len(nodes) == len(rounds) + drafted + bonuses + tables
        # Bold edges: one into every token the text gained, nothing else.
        bold = [e for e in edges if e[2].get("penwidth") == '"2.5"']
        emitted = sum(len(r.emitted) for r in rounds)
        assert len(bold) == emitted == sum(len(h.new_ids) for h in decoded.hypotheses)


def test_labels_show_p_q_and_the_sampling_rule():
    decoded = runs(3, 12, 4)[1]
    text = rounds_dot(decoded, decode, max_rounds=100)
    nodes, _ = parse(text)
    checked = [d for r in decoded.trace.rounds for d in r.drafted if d.p is not None]
    assert checked
    labels = [a["label"] for a in nodes.values()]
    assert sum("p/q" in label for label in labels) == len(checked)
    assert "u uniform in [0, 1)" in text and "sample 2, round 1" in text
    if any(r.residual_top for r in decoded.trace.rounds):
        assert "max(0, p − q)" in text and "drawn from the residual" in text
    greedy = rounds_dot(runs(3, 12, 4)[0], decode)
    assert "p/q" not in greedy and "most likely token" in greedy


def test_tree_dot_draws_the_rounds_of_an_assisted_trace():
    decoded = runs(1, 10, 3)[0]
    assert tree_dot(decoded, decode) == rounds_dot(decoded, decode)
    plain = greedy_search(model(1), [1], max_new_tokens=3, trace=True)[0]
    with pytest.raises(ValueError, match="not an assisted decoder"):
        rounds_dot(plain)
    with pytest.raises(ValueError, match="trace=True"):
        rounds_dot(greedy_search(model(1), [1], max_new_tokens=3)[0])


def test_at_most_max_rounds_are_drawn():
    decoded = runs(2, 12, 1)[1]
    assert len(decoded.trace.rounds) > 3
    nodes, _ = parse(rounds_dot(decoded, decode, max_rounds=3))
    assert {n for n in nodes if re.fullmatch(r"r\d+", n)} == {"r0", "r1", "r2"}
    assert "(the first 3 drawn)" in rounds_dot(decoded, decode, max_rounds=3)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_graphviz_reads_the_same_graph_we_wrote(which, tmp_path):
    require_dot()
    text = rounds_dot(runs(5, 12, 4)[which], decode)
    nodes, edges = parse(text)
    assert rendered_counts(text, tmp_path) == (len(nodes), len(edges))


def test_the_command_draws_the_rounds(tmp_path, capsys):
    """The issue's command: the bundled model drafted by the bundled draft model."""
    dot_file = tmp_path / "rounds.dot"
    status = cli.main(["generate", "Once upon a time", "--assistant-model", "minigpt-tiny-draft",
                       "--num-assistant-tokens", "5", "--tree", str(dot_file)])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    text = dot_file.read_text(encoding="utf-8")
    nodes, edges = parse(text)
    assert "round 1" in text and "assisted greedy search" in text
    assert any(fill(a) == hex_color(GREEN) for a in nodes.values())
    assert sum(n.endswith("b") for n in nodes) >= 1


def test_small_probabilities_are_escaped_in_the_residual_table():
    """percent() writes "<0.1%": inside an HTML-like label the "<" must be &lt;."""
    rows = [ResidualProb(0, 0.9995, 0.0, 0.9996), ResidualProb(1, 0.0004, 1.0, 0.0004)]
    label = residual_table(rows, rejected=1, bonus=0, decode=decode)
    assert "&lt;0.1%" in label and "<0.1%" not in label


def test_the_command_renders_prompt_lookup_sampling(tmp_path, capsys):
    """Sampling with prompt lookup: certain guesses (q = 100%), residual tables, escaping."""
    require_dot()
    png = tmp_path / "rounds.png"
    status = cli.main(["generate", "Once upon a time, there was a girl. Once upon a time",
                       "--strategy", "sample", "--seed", "1", "--prompt-lookup-num-tokens", "4",
                       "--max-new-tokens", "16", "--tree", str(png)])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert png.stat().st_size > 0
    text = png.with_suffix(".dot").read_text(encoding="utf-8")
    assert "q 100%" in text and "max(0, p − q)" in text
    nodes, edges = parse(text)
    assert rendered_counts(text, tmp_path) == (len(nodes), len(edges))
