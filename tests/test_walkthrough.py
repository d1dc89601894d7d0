"""docs/walkthrough.md: its outputs are fresh, and each "what the original got wrong" claim holds.

The seed post's buggy pieces are re-implemented here, in NumPy, from the description in the
walkthrough, and compared with what minigpt's decoders do. The post's published GPT-2 outputs
are checked where the real weights exist (marked `real_weights`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
from checkpoints import build
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minigpt
from decoding import (
    apply_temperature,
    beam_search,
    exhaustive_tree_search,
    greedy_search,
    log_softmax,
    sample,
    softmax,
    top_p_filter,
)
from decoding.render.output import dot_available
from minigpt import cli
from minigpt.config import GPT2Config
from minigpt.defaults import default_model_dir, is_random_demo

REPO = Path(__file__).resolve().parents[1]
GPT2_DIR = REPO / "weights" / "gpt2"
_spec = importlib.util.spec_from_file_location(
    "build_walkthrough", REPO / "docs/build_walkthrough.py"
)
walkthrough = importlib.util.module_from_spec(_spec)
sys.modules["build_walkthrough"] = walkthrough  # its dataclasses look their module up by name
_spec.loader.exec_module(walkthrough)


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory):
    config = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=64)  # GPT-2's vocabulary
    return build(tmp_path_factory.mktemp("walkthrough") / "small", config, std=0.3)


def bigram(seed: int, vocab: int = 10):
    table = np.random.default_rng(seed).standard_normal((vocab, vocab)).astype(np.float32) * 2
    return lambda seqs: table[[s[-1] for s in seqs]]


# ------------------------------------------------------------------------- the doc is fresh


def test_walkthrough_is_up_to_date_with_the_bundled_model():
    if is_random_demo(default_model_dir()):
        pytest.skip("the bundled minigpt-tiny is missing, so the walkthrough cannot be rebuilt")
    stale = walkthrough.stale_files(walkthrough.load_context(None))
    assert stale == [], "run: python docs/build_walkthrough.py"


def test_build_fills_every_block_and_draws_every_picture(small_model_dir):
    """The build runs end to end on any model; every picture the doc shows is one it draws."""
    doc, pictures = walkthrough.build(walkthrough.load_context(str(small_model_dir)))
    for match in walkthrough.BLOCK.finditer(doc):
        assert match["body"].strip(), f"block {match['name']} is empty"
    shown = {p.split("/")[-1].removesuffix(".svg") for p in _image_links(doc)}
    assert shown == set(pictures)
    assert all(text.startswith("digraph") for text in pictures.values())


def _image_links(doc: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\((img/[\w-]+\.svg)\)", doc)


def test_the_committed_pictures_are_there():
    doc = (REPO / "docs" / "walkthrough.md").read_text(encoding="utf-8")
    for link in _image_links(doc):
        path = REPO / "docs" / link
        assert path.with_suffix(".dot").exists(), path.with_suffix(".dot")
        if dot_available() or os.environ.get("MINIGPT_REQUIRE_DOT") == "1":
            assert path.exists(), f"{path}: run python docs/build_walkthrough.py with Graphviz"


# ------------------------------------------------------- 1. the post's tree does not prune


class Counting:
    def __init__(self, inner):
        self.inner, self.sequences = inner, 0

    def __call__(self, seqs):
        self.sequences += len(seqs)
        return self.inner(seqs)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6])
def test_real_beam_search_prunes_where_the_post_expands_everything(depth):
    """Tree: 2^depth - 1 model inputs, 2^depth leaves. Beam search, 2 beams: 1 + 2 (depth - 1)."""
    tree_model, beam_model = Counting(bigram(depth)), Counting(bigram(depth))
    tree = exhaustive_tree_search(tree_model, [0], branching=2, depth=depth)
    beam = beam_search(beam_model, [0], num_beams=2, max_new_tokens=depth, trace=True)[0]
    assert (tree_model.sequences, len(tree.leaves)) == (2**depth - 1, 2**depth)
    assert beam_model.sequences == 1 + 2 * (depth - 1)
    # With as many beams as children per node, every beam is a node of the tree ...
    tree_sequences = {tuple(node.ids) for node in tree.nodes}
    for step in beam.trace.steps:
        assert all(tuple(b.ids) in tree_sequences for b in step.beams)
    # ... so the tree's best leaf is at least as likely, bought with exponential work.
    assert tree.best.logprob >= beam.best.logprob - 1e-5


def test_the_post_miscounts_its_sequences():
    tree = exhaustive_tree_search(bigram(0), [0], branching=2, depth=5)
    assert len(tree.leaves) == 32 != 25 and tree.expansions == 31


def test_on_the_model_the_tree_costs_31_calls_and_beam_search_9(small_model_dir):
    model = minigpt.load(small_model_dir)
    prompt = [40, 423, 257, 4320]
    tree_model = Counting(minigpt.NextTokenLogits(model))
    beam_model = Counting(minigpt.NextTokenLogits(model))
    exhaustive_tree_search(tree_model, prompt, branching=2, depth=5)
    beam_search(beam_model, prompt, num_beams=2, max_new_tokens=5)
    assert (tree_model.sequences, beam_model.sequences) == (31, 9)


# ---------------------------------------------- 2. and 3. the post's nucleus sampler, redone


def posts_nucleus_draw(logits: np.ndarray, p: float, rng: np.random.Generator) -> int:
    """The post's nucleus sampler, step by step as the walkthrough describes it."""
    order = np.argsort(-logits, kind="stable")  # token ids, most likely first
    sorted_logits = logits[order].copy()
    cumulative = np.cumsum(softmax(sorted_logits))
    last_below_p = int(np.flatnonzero(cumulative < p)[-1]) if (cumulative < p).any() else 1
    to_drop = order[max(last_below_p, 1) :]  # token ids from that position on (bug 3)
    sorted_logits[to_drop] = -np.inf  # ... used as positions in the sorted array (bug 2)
    weights = softmax(sorted_logits).astype(np.float64)
    position = rng.choice(len(logits), p=weights / weights.sum())
    return int(position)  # a position of the sorted array, returned as a token id (bug 2)


def posts_nucleus_distribution(logits: np.ndarray, p: float) -> np.ndarray:
    """What posts_nucleus_draw draws, exactly: token j gets the j-th largest probability."""
    order = np.argsort(-logits, kind="stable")
    probs_sorted = softmax(logits[order])
    cumulative = np.cumsum(probs_sorted)
    n_keep = max(int(np.sum(cumulative < p)) - 1, 1)
    kept_ids = order[:n_keep]
    weights = np.zeros_like(probs_sorted)
    weights[kept_ids] = probs_sorted[kept_ids]  # token id j, weighted by sorted position j
    return weights / weights.sum()


# The most likely tokens have the LARGEST ids here, as when punctuation (small ids) is unlikely.
LOGITS = np.log(np.array([0.02, 0.03, 0.05, 0.07, 0.1, 0.13, 0.25, 0.35], dtype=np.float32))


def test_the_posts_nucleus_sampler_permutes_the_probabilities():
    p = 0.85  # sorted cumulative mass: .35 .60 .73 .83 | .90 .95 .98 1
    rng = np.random.default_rng(0)
    draws = np.bincount([posts_nucleus_draw(LOGITS, p, rng) for _ in range(20_000)], minlength=8)
    theirs = posts_nucleus_distribution(LOGITS, p)
    assert np.allclose(draws / draws.sum(), theirs, atol=0.015)  # the reimplementation agrees
    ours = softmax(top_p_filter(LOGITS, p))
    model = softmax(LOGITS)
    kept = ours > 0
    assert np.allclose(ours[kept], model[kept] / model[kept].sum(), atol=1e-6)  # softmax, cut
    # The post keeps 3 tokens (ids 7, 6, 5; we keep 5), and token j gets the probability of the
    # j-th most likely token: id 5 (13%) the most weight, id 7 (35%) the least.
    assert np.flatnonzero(theirs).tolist() == [5, 6, 7]
    assert np.flatnonzero(ours).tolist() == [3, 4, 5, 6, 7]
    assert np.allclose(theirs[[5, 6, 7]], [0.5, 0.3, 0.2], atol=1e-6)
    assert np.allclose(ours[[5, 6, 7]], np.array([0.13, 0.25, 0.35]) / 0.9, atol=1e-6)


def test_our_sampler_draws_from_the_cut_softmax():
    """Guards the fix: 20,000 draws of decoding.sample follow softmax restricted to the nucleus."""
    p = 0.9
    fixed = lambda seqs: np.tile(LOGITS, (len(seqs), 1))  # noqa: E731
    draws = sample(fixed, [0], rng=np.random.default_rng(1), max_new_tokens=1, top_p=p,
                   num_return_sequences=20_000)[0]  # fmt: skip
    counts = np.bincount([h.new_ids[0] for h in draws.hypotheses], minlength=8)
    assert np.allclose(counts / counts.sum(), softmax(top_p_filter(LOGITS, p)), atol=0.015)


@settings(max_examples=60, deadline=None)
@given(
    logits=st.lists(st.floats(-6, 6), min_size=3, max_size=40).map(
        lambda xs: np.array(xs, dtype=np.float32)
    ),
    p=st.floats(0.05, 0.95),
)
def test_the_posts_nucleus_keeps_too_few_tokens(logits, p):
    """Guards bug 3: our nucleus reaches mass p with the crossing token; the post's never does."""
    model = softmax(logits)
    assume(np.min(np.abs(np.cumsum(np.sort(model)[::-1]) - p)) > 1e-4)  # not on the boundary
    ours = softmax(top_p_filter(logits, p)) > 0
    theirs = posts_nucleus_distribution(logits, p) > 0
    assert model[ours].sum() >= p - 1e-5
    below = int(np.sum(np.cumsum(np.sort(model)[::-1]) < p))
    if below >= 2:  # the post keeps below - 1 tokens: 2 fewer than the rule, mass < p
        assert theirs.sum() == below - 1 and ours.sum() >= theirs.sum() + 2
        assert model[np.argsort(-logits, kind="stable")[: below - 1]].sum() < p


# ------------------------------------------------------------------------ 4. temperature


def test_the_posts_temperature_figure():
    logits = np.array([1.5, -1.8, 0.9, -3.2], dtype=np.float32)
    figure = {1.0: [0.63, 0.02, 0.34, 0.01], 0.5: [0.77, 0.00, 0.23, 0.00], 0.1: [1, 0, 0, 0]}
    for t, expected in figure.items():
        probs = softmax(apply_temperature(logits, t)).astype(np.float64)
        assert np.round(probs, 2).tolist() == expected


def test_temperature_changes_the_distribution(small_model_dir):
    """Guards bug 4: the temperature reaches the sampler (the post passed a literal 1)."""
    logits = minigpt.NextTokenLogits(minigpt.load(small_model_dir))
    prompt = [40, 423, 257, 4320]

    def first_step(t: float):
        run = sample(logits, prompt, rng=np.random.default_rng(0), max_new_tokens=1,
                     temperature=t, trace=True)[0]  # fmt: skip
        return [c.prob for c in run.trace.steps[0].rows[0].candidates]

    cold, neutral, hot = first_step(0.5), first_step(1.0), first_step(1.5)
    assert cold[0] > neutral[0] > hot[0]  # the top token: sharper when cold, flatter when hot
    model = softmax(logits([prompt])[0])
    assert neutral[0] == pytest.approx(float(model.max()), rel=1e-5)  # T = 1 is the model


def test_log_softmax_keeps_tiny_probabilities():
    """The post's log(softmax(x)) turns an unlikely token's log-prob into -inf."""
    logits = np.array([0.0, -200.0], dtype=np.float32)
    with np.errstate(divide="ignore"):
        assert np.log(softmax(logits))[1] == -np.inf
    assert log_softmax(logits)[1] == pytest.approx(-200.0)


# ---------------------------------------------------------- the post's outputs, real weights


def run_cli(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(list(argv)) == 0
    return out.getvalue()


@pytest.mark.real_weights
@pytest.mark.skipif(
    not (GPT2_DIR / "model.safetensors").exists(),
    reason="needs the published gpt2 weights: python weights/scripts/download.py gpt2",
)
def test_the_posts_gpt2_outputs():
    model, tok = minigpt.load(GPT2_DIR), minigpt.load_tokenizer(GPT2_DIR)
    prompt = tok.encode("I have a dream")
    assert prompt == [40, 423, 257, 4320]
    logits = minigpt.NextTokenLogits(model)
    greedy = greedy_search(logits, prompt, max_new_tokens=5, trace=True)[0]
    assert tok.decode(greedy.best.ids) == "I have a dream of being a doctor."
    probs = [step.rows[0].candidates[0].prob for step in greedy.trace.steps]
    assert np.round(np.array(probs) * 100, 2).tolist() == [15.20, 9.68, 30.59, 2.86, 22.93]
    assert round(greedy.best.logprob / len(greedy.best.ids), 2) == -1.16
    tree = exhaustive_tree_search(logits, prompt, branching=2, depth=5)
    assert tok.decode(tree.best.ids) == "I have a dream. I have a dream"
    assert round(tree.best.score, 2) == -0.69
    shown = run_cli("generate", "I have a dream", "--model", str(GPT2_DIR), "--max-new-tokens", "5")
    assert shown == "I have a dream of being a doctor.\n"
    shown = run_cli("generate", "I have a dream", "--model", str(GPT2_DIR), "--strategy", "tree")
    assert shown.splitlines()[1] == "I have a dream. I have a dream"


def test_the_readme_picture_is_what_its_command_draws(tmp_path):
    """README.md shows docs/img/beam-tree.svg under a command: that command draws that tree."""
    if is_random_demo(default_model_dir()):
        pytest.skip("the bundled minigpt-tiny is missing, so the picture cannot be redrawn")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command = next(line for line in readme.splitlines() if "--tree beam.svg" in line)
    argv = shlex.split(command)[1:]  # drop "minigpt"
    argv[argv.index("beam.svg")] = str(tmp_path / "beam.dot")
    run_cli(*argv)
    drawn = (tmp_path / "beam.dot").read_text(encoding="utf-8")
    assert drawn == (REPO / "docs" / "img" / "beam-tree.dot").read_text(encoding="utf-8")
