"""Worked examples and error messages of the decoders, on tables small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest
from decoder_toys import Counting, toy_model

from decoding import (
    Decoded,
    Trace,
    beam_search,
    exhaustive_tree_search,
    greedy_search,
    sample,
)
from decoding.results import FINISHED, LIVE, TOO_LATE

EOS = 3


def fixed_rows(rows: dict[tuple[int, ...], list[float]], vocab_size: int = 4):
    """A model given as probabilities per exact sequence (uniform for any other sequence)."""

    def next_token_logits(seqs):
        out = np.zeros((len(seqs), vocab_size), dtype=np.float32)
        for i, s in enumerate(seqs):
            if tuple(s) in rows:
                with np.errstate(divide="ignore"):  # probability 0 -> logit -inf, on purpose
                    out[i] = np.log(np.asarray(rows[tuple(s)], dtype=np.float32))
        return out

    return next_token_logits


# --- worked examples ---------------------------------------------------------------------------


def test_beam_search_beats_greedy_when_a_good_token_hides_behind_a_poor_one():
    """The textbook case: greedy takes 1 (0.5) then faces a flat row; beam keeps 2 (0.4)
    alive and finds 2 -> 0 (0.4 * 0.9 = 0.36 > 0.5 * 0.4 = 0.2)."""
    model = fixed_rows({
        (0,): [0.05, 0.5, 0.4, 0.05],
        (0, 1): [0.4, 0.3, 0.3, 0.0],
        (0, 2): [0.9, 0.05, 0.05, 0.0],
    })  # fmt: skip
    greedy = greedy_search(model, [0], max_new_tokens=2)[0].best
    beam = beam_search(model, [0], num_beams=2, max_new_tokens=2, length_penalty=0.0)[0].best
    assert greedy.new_ids == [1, 0]
    assert beam.new_ids == [2, 0]
    assert beam.score == pytest.approx(np.log(0.36), abs=1e-5)
    assert beam.logprob == pytest.approx(np.log(0.36), abs=1e-5)


def test_eos_finishes_only_among_the_first_k_candidates():
    """EOS ranked third of 2K = 4 candidates with K = 2 is dropped, as HF drops it."""
    model = fixed_rows({(0,): [0.05, 0.5, 0.3, 0.15]})  # EOS (3) is third
    [decoded] = beam_search(model, [0], num_beams=2, max_new_tokens=2, eos_token_id=EOS,
                            num_return_sequences=2, trace=True)  # fmt: skip
    step = decoded.trace.steps[0]
    assert [(c.token, c.fate) for c in step.candidates] == [
        (1, LIVE), (2, LIVE), (3, TOO_LATE), (0, "spare"),
    ]  # fmt: skip
    assert step.finished == []
    assert all(h.new_ids != [EOS] for h in decoded.hypotheses)


def test_eos_among_the_first_k_finishes_and_can_win():
    """EOS ranked first finishes at once; with length_penalty 0 its raw score wins."""
    model = fixed_rows({(0,): [0.1, 0.2, 0.1, 0.6]})
    [decoded] = beam_search(model, [0], num_beams=2, max_new_tokens=3, eos_token_id=EOS,
                            length_penalty=0.0, trace=True)  # fmt: skip
    assert decoded.trace.steps[0].candidates[0].fate == FINISHED
    assert decoded.best.ids == [0, EOS]
    assert decoded.best.score == pytest.approx(np.log(0.6), abs=1e-5)


def test_greedy_stops_at_eos_and_keeps_it():
    model = fixed_rows({(0,): [0.1, 0.6, 0.2, 0.1], (0, 1): [0.1, 0.1, 0.1, 0.7]})
    [decoded] = greedy_search(model, [0], max_new_tokens=10, eos_token_id=EOS)
    assert decoded.best.new_ids == [1, EOS]
    assert decoded.best.logprob == pytest.approx(np.log(0.6 * 0.7), abs=1e-5)
    assert decoded.best.score is None


def test_seed_post_tree_shape_31_expansions_32_leaves():
    """The seed's tree: 2 children per node, depth 5 -> 31 forward passes, 32 leaves (not 25)."""
    model = Counting(toy_model("history", 10, seed=3))
    tree = exhaustive_tree_search(model, [1, 2, 3, 4], branching=2, depth=5)
    assert tree.expansions == 31 and len(tree.leaves) == 32
    assert len(model.batches) == 5  # one call per level
    assert "31 expansions" in str(tree)


def test_tree_search_stops_a_branch_at_eos():
    model = fixed_rows({(0,): [0.1, 0.2, 0.0, 0.7]})  # EOS and 1 are the top 2
    tree = exhaustive_tree_search(model, [0], branching=2, depth=3, eos_token_id=EOS)
    assert [0, EOS] in [leaf.ids for leaf in tree.leaves]
    assert len(tree.leaves) == 1 + 2 * 2  # the EOS leaf, and the full subtree under 1


# --- traces ------------------------------------------------------------------------------------


def test_greedy_trace_records_each_choice_with_its_candidates():
    model = toy_model("bigram", 30, seed=1)
    [decoded] = greedy_search(model, [4, 5], max_new_tokens=4, trace=True)
    trace = decoded.trace
    assert isinstance(trace, Trace) and len(trace.steps) == 4
    for step, token in zip(trace.steps, decoded.best.new_ids):
        [row] = step.rows
        assert row.chosen == [token] and row.candidates[0].token == token
        probs = [c.prob for c in row.candidates]
        assert len(probs) == 20 and probs == sorted(probs, reverse=True)
    assert "greedy search" in str(trace)


def test_sampling_trace_records_warper_cuts():
    model = toy_model("bigram", 30, seed=2)
    [decoded] = sample(model, [1], rng=np.random.default_rng(0), max_new_tokens=3, top_k=5,
                       top_p=0.9, num_return_sequences=2, trace=True)  # fmt: skip
    for step in decoded.trace.steps:
        assert [row.index for row in step.rows] == [0, 1]
        for row in step.rows:
            (k_name, _, k_kept), (p_name, _, p_kept) = [(c.name, c.param, c.kept) for c in row.cuts]
            assert (k_name, p_name) == ("top_k", "top_p") and p_kept <= k_kept == 5
            assert sum(c.prob > 0 for c in row.candidates) == p_kept
            assert row.chosen[0] in [c.token for c in row.candidates if c.prob > 0]


def test_beam_trace_candidates_agree_with_live_beams_and_pool():
    model = toy_model("history", 12, seed=5)
    [decoded] = beam_search(model, [2], num_beams=3, max_new_tokens=5, eos_token_id=EOS,
                            num_return_sequences=3, trace=True)  # fmt: skip
    previous = [[2]]
    for step in decoded.trace.steps:
        assert [row.sequence for row in step.rows] == previous
        live = [previous[c.beam] + [c.token] for c in step.candidates if c.fate == LIVE]
        assert live == [b.ids for b in step.beams]
        scores = [c.score for c in step.candidates]
        assert scores == sorted(scores, reverse=True)
        previous = live
    assert decoded.trace.steps[-1].finished[:3] == decoded.hypotheses
    assert decoded.trace.stop_reason


# --- errors ------------------------------------------------------------------------------------

MODEL = toy_model("bigram", 8, seed=0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: beam_search(MODEL, [1], num_beams=0, max_new_tokens=3), "num_beams"),
        (lambda: beam_search(MODEL, [1], num_beams=2, max_new_tokens=3, num_return_sequences=3),
         "num_return_sequences"),
        (lambda: beam_search(MODEL, [1], num_beams=2, max_new_tokens=3, early_stopping="yes"),
         "early_stopping"),
        (lambda: beam_search(MODEL, [1], num_beams=2, max_new_tokens=3,
                             length_penalty=float("nan")), "length_penalty"),
        (lambda: greedy_search(MODEL, [1], max_new_tokens=0), "max_new_tokens"),
        (lambda: greedy_search(MODEL, [1], max_new_tokens=True), "max_new_tokens"),
        (lambda: greedy_search(MODEL, [], max_new_tokens=3), "empty"),
        (lambda: greedy_search(MODEL, [[1], []], max_new_tokens=3), "prompt 1 is empty"),
        (lambda: greedy_search(MODEL, [99, 1], max_new_tokens=3), "outside the vocabulary"),
        (lambda: greedy_search(MODEL, [1], max_new_tokens=3, eos_token_id=8), "eos_token_id"),
        (lambda: greedy_search(MODEL, [1], max_new_tokens=3, eos_token_id=-1), "eos_token_id"),
        (lambda: greedy_search(MODEL, [1], max_new_tokens=3, repetition_penalty=0.0), "penalty"),
        (lambda: greedy_search(lambda s: np.full((len(s), 8), np.nan), [1], max_new_tokens=3),
         "NaN"),
        (lambda: greedy_search(lambda s: np.zeros((1, 8)), [[1], [2]], max_new_tokens=3),
         "shape"),
        (lambda: sample(MODEL, [1], rng=np.random.default_rng(0), max_new_tokens=3,
                        num_return_sequences=0), "num_return_sequences"),
        (lambda: sample(MODEL, [1], rng=0, max_new_tokens=3), "np.random.Generator"),
        (lambda: sample(MODEL, [1], rng=np.random.default_rng(0), max_new_tokens=3,
                        temperature=0.0), "temperature"),
        (lambda: sample(MODEL, [1], rng=np.random.default_rng(0), max_new_tokens=3, top_p=0.0),
         "top_p"),
        (lambda: greedy_search(MODEL, [1], max_new_tokens=10, no_repeat_ngram_size=1),
         "every token is banned"),
        (lambda: exhaustive_tree_search(MODEL, [1], branching=9, depth=2), "branching"),
        (lambda: exhaustive_tree_search(MODEL, [1], branching=2, depth=0), "depth"),
    ],
)  # fmt: skip
def test_bad_input_raises_one_clear_line(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_one_prompt_or_a_batch():
    """A flat list is one prompt; a list of lists is a batch; both return one Decoded each."""
    one = greedy_search(MODEL, [1, 2], max_new_tokens=2)
    many = greedy_search(MODEL, [[1, 2], [3]], max_new_tokens=2)
    assert len(one) == 1 and len(many) == 2 and isinstance(one[0], Decoded)
    assert one[0] == many[0]
