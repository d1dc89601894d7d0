"""Transition scores, token log-probs, output_scores / output_logits and beam_indices, checked
on toy models (decoder_toys.py) against numbers recomputed from the toy model itself.

The beam-search relation comes from HF's `_beam_search`: a beam's running score is a float32
tensor to which each step's processed log-prob is added (`log_probs + running_beam_scores`),
and a finished hypothesis's `sequences_scores` entry is that sum divided by
generated_length ** length_penalty (a Python float, so torch divides in float32). Folding the
transition scores left to right in float32 is therefore the same arithmetic, and must give the
score bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from decoder_toys import KINDS, toy_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoding import (
    Processors,
    Warpers,
    assisted_greedy_search,
    assisted_sample,
    beam_search,
    compute_transition_scores,
    greedy_search,
    log_softmax,
    sample,
)
from decoding.transition_scores import sequences_array, transition_scores_of

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
U = 2.0**-24  # float32 unit roundoff


@st.composite
def cases(draw):
    vocab_size = draw(st.integers(2, 12))
    # no-repeat-ngram 2 bans at most one token per earlier occurrence of the last token; with
    # more tokens than a sequence can hold (4 + 6), a token is always left.
    ngram = draw(st.sampled_from([None, 2])) if vocab_size > 10 else None
    return {
        "kind": draw(st.sampled_from(KINDS)),
        "vocab_size": vocab_size,
        "seed": draw(st.integers(0, 2**32 - 1)),
        "prompts": draw(
            st.lists(
                st.lists(st.integers(0, vocab_size - 1), min_size=1, max_size=4),
                min_size=1,
                max_size=3,
            )
        ),  # fmt: skip
        "eos": draw(st.none() | st.integers(0, vocab_size - 1)),
        "max_new_tokens": draw(st.integers(1, 6)),
        "repetition_penalty": draw(st.sampled_from([None, 1.5, 0.7])),
        "no_repeat_ngram_size": ngram,
    }


def common(case) -> dict:
    return {
        "max_new_tokens": case["max_new_tokens"],
        "eos_token_id": case["eos"],
        "repetition_penalty": case["repetition_penalty"],
        "no_repeat_ngram_size": case["no_repeat_ngram_size"],
    }


def processed_row(model, case, prefix: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(raw logits, processed logits) of the toy model after `prefix`, recomputed here."""
    logits = np.asarray(model([prefix]), dtype=np.float32)
    return logits[0], processors_of(case).apply(logits, [prefix])[0]


def processors_of(case) -> Processors:
    return Processors(
        repetition_penalty=case["repetition_penalty"],
        no_repeat_ngram_size=case["no_repeat_ngram_size"],
    )


def check_token_logprobs(model, h) -> None:
    """Each token's log-prob is log_softmax of the model's row at its prefix, and they add up
    (in order) to `logprob`, which is summed the same way."""
    assert len(h.token_logprobs) == len(h.new_ids)
    for t, token in enumerate(h.new_ids):
        prefix = h.ids[: h.prompt_length + t]
        assert h.token_logprobs[t] == float(log_softmax(model([prefix]))[0, token])
    running = 0.0
    for x in h.token_logprobs:
        running += x
    assert running == h.logprob


@SETTINGS
@given(case=cases())
def test_greedy_transition_scores_are_the_processed_logits_of_the_chosen_tokens(case):
    model = toy_model(case["kind"], case["vocab_size"], case["seed"])
    decoded = greedy_search(model, case["prompts"], **common(case), output_scores=True,
                            output_logits=True)  # fmt: skip
    for d in decoded:
        h = d.best
        check_token_logprobs(model, h)
        for t, token in enumerate(h.new_ids):
            logits, processed = processed_row(model, case, h.ids[: h.prompt_length + t])
            assert h.transition_scores[t] == float(processed[token])
            assert d.scores[t].dtype == np.float32 and d.logits[t].dtype == np.float32
            np.testing.assert_array_equal(d.scores[t][0], processed)
            np.testing.assert_array_equal(d.logits[t][0], logits)
        assert len(d.scores) == len(d.logits) == len(h.new_ids)
        full = transition_scores_of(d)
        assert full.dtype == np.float32
        assert full[0].tolist() == pytest.approx(h.transition_scores, abs=0)


@SETTINGS
@given(case=cases())
def test_normalize_logits_gives_log_probs_of_the_processed_distribution(case):
    model = toy_model(case["kind"], case["vocab_size"], case["seed"])
    for d in greedy_search(model, case["prompts"], **common(case), output_scores=True):
        h = d.best
        normalized = transition_scores_of(d, normalize_logits=True)[0]
        for t, token in enumerate(h.new_ids):
            _, processed = processed_row(model, case, h.ids[: h.prompt_length + t])
            assert normalized[t] == log_softmax(processed)[token]
            assert normalized[t] <= 0.0
        if case["repetition_penalty"] is None and case["no_repeat_ngram_size"] is None:
            # Nothing processed: the normalized scores are the model's own log-probs.
            assert normalized.tolist() == h.token_logprobs


@SETTINGS
@given(case=cases(), temperature=st.sampled_from([0.5, 1.0, 2.0]), top_k=st.sampled_from([None, 2]))
def test_sampling_transition_scores_are_the_warped_logits(case, temperature, top_k):
    model = toy_model(case["kind"], case["vocab_size"], case["seed"])
    rng = np.random.default_rng(case["seed"])
    warpers = Warpers(temperature=temperature, top_k=top_k)
    decoded = sample(model, case["prompts"], rng=rng, temperature=temperature, top_k=top_k,
                     num_return_sequences=2, output_scores=True, **common(case))  # fmt: skip
    for d in decoded:
        full = transition_scores_of(d)
        for n, h in enumerate(d.hypotheses):
            check_token_logprobs(model, h)
            for t, token in enumerate(h.new_ids):
                _, processed = processed_row(model, case, h.ids[: h.prompt_length + t])
                warped, _ = warpers.apply(processed)
                assert h.transition_scores[t] == float(warped[token])
                assert np.isfinite(h.transition_scores[t])  # a drawn token was never cut
            assert full[n, : len(h.new_ids)].tolist() == h.transition_scores
            # A sample that stopped has no rows after its EOS: minigpt never computed them.
            assert np.isnan(full[n, len(h.new_ids) :]).all()


def float32_fold(values: list[float]) -> np.float32:
    total = np.float32(0.0)
    for v in values:
        total = np.float32(total + np.float32(v))
    return total


@SETTINGS
@given(
    case=cases(),
    num_beams=st.integers(1, 4),
    length_penalty=st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]),
    early_stopping=st.sampled_from([True, False, "never"]),
)
def test_beam_scores_are_the_sum_of_transition_scores_over_length_to_the_penalty(
    case, num_beams, length_penalty, early_stopping
):
    model = toy_model(case["kind"], case["vocab_size"], case["seed"])
    decoded = beam_search(model, case["prompts"], num_beams=num_beams,
                          num_return_sequences=num_beams, length_penalty=length_penalty,
                          early_stopping=early_stopping, output_scores=True,
                          output_logits=True, **common(case))  # fmt: skip
    for d in decoded:
        for h in d.hypotheses:
            check_token_logprobs(model, h)
            n = len(h.new_ids)
            assert len(h.transition_scores) == len(h.beam_indices) == n
            # HF's arithmetic exactly: a float32 running sum, then one float32 division.
            folded = float32_fold(h.transition_scores)
            assert float(folded / np.float32(n**length_penalty)) == h.score
            # And against exact arithmetic: the fold's rounding is at most (n - 1) u sum|x|,
            # plus the rounding of n ** length_penalty and of the division (u |score| each).
            exact = math.fsum(h.transition_scores) / n**length_penalty
            magnitude = math.fsum(abs(x) for x in h.transition_scores) / n**length_penalty
            assert abs(exact - h.score) <= (n + 2) * U * magnitude + 1e-30
            # Each transition score is the processed log-prob of the token at its prefix.
            for t, token in enumerate(h.new_ids):
                prefix = h.ids[: h.prompt_length + t]
                logits, _ = processed_row(model, case, prefix)
                processed = processors_of(case).apply(log_softmax(logits[None]), [prefix])[0]
                assert h.transition_scores[t] == float(processed[token])
                # Row beam_indices[t] of step t is the beam this token extended.
                row = d.logits[t][h.beam_indices[t]]
                np.testing.assert_array_equal(row, logits)
        full = transition_scores_of(d)
        for n_, h in enumerate(d.hypotheses):
            k = len(h.new_ids)
            assert full[n_, :k].tolist() == h.transition_scores
            assert (full[n_, k:] == 0.0).all()  # HF's mask: after the end, 0.0
        assert all(s.shape == (num_beams, case["vocab_size"]) for s in d.scores)


@SETTINGS
@given(case=cases(), num_beams=st.integers(2, 4))
def test_beam_indices_name_the_live_beam_each_token_extended(case, num_beams):
    model = toy_model(case["kind"], case["vocab_size"], case["seed"])
    decoded = beam_search(model, case["prompts"], num_beams=num_beams, trace=True,
                          num_return_sequences=num_beams, **common(case))  # fmt: skip
    for d in decoded:
        for h in d.hypotheses:
            assert h.beam_indices[0] == 0  # step 1 extends the prompt, the only beam
            for t in range(1, len(h.new_ids)):
                live_before = d.trace.steps[t - 1].beams  # the live beams after step t
                assert live_before[h.beam_indices[t]].ids == h.ids[: h.prompt_length + t]


@SETTINGS
@given(case=cases())
def test_keeping_outputs_changes_no_result(case):
    model = toy_model(case["kind"], case["vocab_size"], case["seed"])
    plain = beam_search(model, case["prompts"], num_beams=3, **common(case))
    kept = beam_search(model, case["prompts"], num_beams=3, output_scores=True,
                       output_logits=True, **common(case))  # fmt: skip
    for a, b in zip(plain, kept):
        assert a.hypotheses == b.hypotheses and a.scores is None and a.logits is None
        assert [h.transition_scores for h in a.hypotheses] == [
            h.transition_scores for h in b.hypotheses
        ]


def test_first_beam_step_has_one_computed_row_and_nan_for_the_empty_slots():
    model = toy_model("bigram", 6, 3)
    (d,) = beam_search(model, [1], num_beams=3, max_new_tokens=2, output_scores=True)
    assert np.isfinite(d.scores[0][0]).all() and np.isnan(d.scores[0][1:]).all()
    assert np.isfinite(d.scores[1]).all()  # three live beams at step 2


def test_beam_positions_after_a_hypothesis_ended_are_masked_to_zero():
    # A toy where EOS (0) is likely at once: some hypotheses are 1 token, others longer.
    table = np.log(np.array([[0.1, 0.5, 0.4], [0.6, 0.1, 0.3], [0.2, 0.3, 0.5]], np.float32))
    model = lambda seqs: table[[s[-1] for s in seqs]]  # noqa: E731
    (d,) = beam_search(model, [1], num_beams=2, num_return_sequences=2, max_new_tokens=4,
                       eos_token_id=0, output_scores=True)  # fmt: skip
    lengths = [len(h.new_ids) for h in d.hypotheses]
    assert len(set(lengths)) > 1
    full = transition_scores_of(d)
    assert full.shape == (2, max(lengths))
    short = lengths.index(min(lengths))
    assert (full[short, min(lengths) :] == 0.0).all()
    assert sequences_array(d).shape == (2, 1 + max(lengths))


@pytest.mark.parametrize("flag", ["output_scores", "output_logits"])
def test_the_output_flags_must_be_booleans(flag):
    with pytest.raises(ValueError, match=f"{flag} must be True or False"):
        greedy_search(toy_model("uniform", 3, 0), [0], max_new_tokens=1, **{flag: 1})


def test_compute_transition_scores_gathers_like_hf_on_a_hand_made_case():
    # Two steps of a 2-beam search over 3 tokens; hypothesis 0 took token 2 from slot 1, then
    # token 0 from slot 0; hypothesis 1 ended after one token (slot 0, token 1).
    step1 = np.array([[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0]], np.float32)
    step2 = np.array([[-7.0, -8.0, -9.0], [-10.0, -11.0, -12.0]], np.float32)
    sequences = np.array([[5, 2, 0], [5, 1, 0]])
    beam_indices = np.array([[1, 0], [0, -1]])
    got = compute_transition_scores(sequences, [step1, step2], beam_indices)
    assert got.tolist() == [[-6.0, -7.0], [-2.0, 0.0]]


@SETTINGS
@given(case=cases(), lookup=st.sampled_from([1, 3]))
def test_assisted_decoding_records_the_same_per_token_scores(case, lookup):
    # Assistance changes how many model calls a text costs, never the text: nor its numbers.
    model = toy_model(case["kind"], case["vocab_size"], case["seed"])
    plain = greedy_search(model, case["prompts"], **common(case))
    assisted = assisted_greedy_search(model, case["prompts"], prompt_lookup_num_tokens=lookup,
                                      **common(case))  # fmt: skip
    for a, p in zip(assisted, plain):
        assert a.best.ids == p.best.ids
        assert a.best.token_logprobs == p.best.token_logprobs
        assert a.best.transition_scores == p.best.transition_scores
    drafter = toy_model("bigram", case["vocab_size"], case["seed"] + 1)
    rng = np.random.default_rng(case["seed"])
    for d in assisted_sample(model, case["prompts"], rng=rng, assistant_model=drafter,
                             num_assistant_tokens=2, temperature=0.7, **common(case)):  # fmt: skip
        h = d.best
        check_token_logprobs(model, h)
        for t, token in enumerate(h.new_ids):
            _, processed = processed_row(model, case, h.ids[: h.prompt_length + t])
            warped, _ = Warpers(temperature=0.7).apply(processed)
            assert h.transition_scores[t] == float(warped[token])
