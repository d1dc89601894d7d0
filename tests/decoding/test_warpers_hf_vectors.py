"""Hugging Face's own unit-test vectors for the warpers and processors, replayed on ours.

The inputs and expected outcomes are the numbers of transformers'
tests/generation/test_logits_process.py, min_tokens_to_keep included: where HF's test sets it
above 1, so do we, and the single-token outcome HF's comments state is checked beside it.
"""

import numpy as np
import pytest

from decoding import (
    apply_temperature,
    min_p_filter,
    no_repeat_ngram,
    repetition_penalty,
    softmax,
    top_k_filter,
    top_p_filter,
    typical_filter,
)


def uniform_logits(batch: int, vocab: int) -> np.ndarray:
    return np.full((batch, vocab), 1.0 / vocab, dtype=np.float32)


def log_probs(rows: list[list[float]]) -> np.ndarray:
    return np.log(np.array(rows, dtype=np.float32))


def ramp(batch: int, vocab: int, shift: int = 0) -> np.ndarray:
    return np.tile(np.arange(vocab, dtype=np.float32) - shift, (batch, 1))


def removed(logits: np.ndarray) -> list:
    return np.isneginf(logits).tolist()


# --- temperature ---------------------------------------------------------------------------


def test_temperature_sharpens_and_smooths_hf_vector():
    scores = uniform_logits(2, 20)
    scores[1, 5] = 1 / 20 + 0.1  # a peak
    scores[1, 10] = 1 / 20 - 0.4  # a valley
    original = scores.copy()
    probs = softmax(scores)
    sharp = softmax(apply_temperature(scores, 0.5))
    smooth = softmax(apply_temperature(scores, 1.3))

    # a uniform row stays uniform
    np.testing.assert_allclose(sharp[0], probs[0], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(smooth[0], probs[0], rtol=1e-3, atol=1e-3)
    # T < 1: peaks higher, valleys lower; T > 1: the reverse
    assert sharp[1].max() > probs[1].max() and sharp[1].min() < probs[1].min()
    assert smooth[1].max() < probs[1].max() and smooth[1].min() > probs[1].min()
    np.testing.assert_array_equal(scores, original)  # the input is not modified


# --- repetition penalty --------------------------------------------------------------------


def test_repetition_penalty_hf_vector():
    scores = uniform_logits(2, 10)
    scores[0, 0] = -(1 / 10)
    scores[1, 5] = 4 / 10
    original = scores.copy()
    out = repetition_penalty(scores, [[0, 1], [5, 0]], 2.0)

    assert out[0, 0] == pytest.approx(-(1 / 10) * 2)  # negative: multiplied
    assert out[0, 1] == pytest.approx((1 / 10) / 2)  # positive: divided
    assert out[1, 0] == pytest.approx((1 / 10) / 2)
    assert out[1, 5] == pytest.approx((4 / 10) / 2)
    assert out[0, 2] == pytest.approx(1 / 10)  # unseen tokens untouched
    np.testing.assert_array_equal(scores, original)


# --- top-k ---------------------------------------------------------------------------------


def test_top_k_hf_vector():
    scores = ramp(2, 10)
    scores[1, :5] += 10  # row 1: the first five become the largest
    out = top_k_filter(scores, 3)
    assert removed(out)[0] == 7 * [True] + 3 * [False]
    assert removed(out)[1] == 2 * [True] + 3 * [False] + 5 * [True]
    assert not np.isinf(scores).any()


def test_top_k_keeps_a_uniform_row_whole_hf_vector():
    # HF: "uniform dist is not changed" (all logits tie with the k-th largest)
    assert not np.isinf(top_k_filter(uniform_logits(2, 5), 1, min_tokens_to_keep=3)).any()
    assert not np.isinf(top_k_filter(uniform_logits(2, 5), 1)).any()


def test_top_k_min_tokens_to_keep_overrides_k_hf_vector():
    # HF: top_k=1 with min_tokens_to_keep=3 on a ramp of 5 keeps 3, so 2 are removed per row
    out = top_k_filter(ramp(2, 5), 1, min_tokens_to_keep=3)
    assert np.isinf(out).sum(axis=-1).tolist() == [2, 2]


# --- top-p ---------------------------------------------------------------------------------


def test_top_p_hf_vector():
    dist = log_probs([[0.3, 0.1, 0.1, 0.5], [0.15, 0.3, 0.3, 0.25]])
    filtered = np.exp(top_p_filter(dist, 0.8))
    expected = [[0.3, 0.0, 0.0, 0.5], [0.0, 0.3, 0.3, 0.25]]
    np.testing.assert_allclose(filtered, expected, rtol=1e-3, atol=1e-3)


def test_top_p_float32_boundary_keeps_exactly_two():
    """In float32 the two 0.1 tokens sum to <= 1 - 0.8 and both go (float64 would keep one)."""
    out = top_p_filter(log_probs([[0.3, 0.1, 0.1, 0.5]]), 0.8)
    assert removed(out) == [[False, True, True, False]]


def test_top_p_extreme_logits_hf_vector():
    scores = ramp(2, 10, shift=5)
    scores[1] *= 100.0
    # HF: 3 tokens in the first row; the second "would keep only 1" but min_tokens_to_keep=2
    # keeps 2
    assert (~np.isinf(top_p_filter(scores, 0.9, min_tokens_to_keep=2))).sum(-1).tolist() == [3, 2]
    assert (~np.isinf(top_p_filter(scores, 0.9))).sum(axis=-1).tolist() == [3, 1]


# --- min-p ---------------------------------------------------------------------------------


def test_min_p_hf_vector():
    dist = log_probs(
        [
            [0.9, 0.0274, 0.047, 0.0274],  # 0.047 > 0.9 * 0.05 = 0.045 stays
            [0.15, 0.3, 0.3, 0.25],  # no dominant token: all stay
            [0.97, 0.01, 0.01, 0.01],  # only the first stays
        ]
    )
    filtered = np.exp(min_p_filter(dist, 0.05))
    expected = [[0.9, 0.0, 0.047, 0.0], [0.15, 0.3, 0.3, 0.25], [0.97, 0.0, 0.0, 0.0]]
    np.testing.assert_allclose(filtered, expected, rtol=1e-3, atol=1e-3)


def test_min_p_extreme_logits_hf_vector():
    scores = ramp(2, 10, shift=5)
    scores[1] *= 100.0
    # p = 0.9: the runner-up has e^-1 ~ 0.37 of the top probability, so only the top passes
    # in both rows; HF's min_tokens_to_keep=2 keeps the runner-up too
    assert (~np.isinf(min_p_filter(scores, 0.9, min_tokens_to_keep=2))).sum(-1).tolist() == [2, 2]
    assert (~np.isinf(min_p_filter(scores, 0.9))).sum(axis=-1).tolist() == [1, 1]


# --- typical -------------------------------------------------------------------------------


def test_typical_hf_vector():
    dist = log_probs([[0.97, 0.01, 0.01, 0.01], [0.4, 0.2, 0.2, 0.2]])
    filtered = np.exp(typical_filter(dist, 0.5))
    expected = [[0.97, 0.0, 0.0, 0.0], [0.0, 0.2, 0.2, 0.2]]
    np.testing.assert_allclose(filtered, expected, rtol=1e-3, atol=1e-3)


def test_typical_keeps_a_uniform_row_whole_hf_vector():
    # HF's setting: mass 0.5, min_tokens_to_keep=3; every gap ties, so all 5 stay either way
    assert not np.isinf(typical_filter(uniform_logits(2, 5), 0.5, min_tokens_to_keep=3)).any()
    assert not np.isinf(typical_filter(uniform_logits(2, 5), 0.5)).any()


def test_typical_extreme_logits_hf_vector():
    scores = ramp(2, 10, shift=5)
    scores[1] *= 100.0
    # Row 0 (probabilities ~ e^k): H ~ 1.04 nats; the runner-up's surprise 1.46 is closer to H
    # than the top's 0.46, so it ranks first (mass 0.23), then the top (0.63) crosses 0.7:
    # 2 tokens. Row 1 is one-hot: 1 token, and 2 with HF's min_tokens_to_keep=2.
    kept = ~np.isinf(typical_filter(scores, 0.7, min_tokens_to_keep=2))
    assert kept.sum(axis=-1).tolist() == [2, 2]
    assert (~np.isinf(typical_filter(scores, 0.7))).sum(axis=-1).tolist() == [2, 1]


# --- no-repeat-ngram -----------------------------------------------------------------------


def test_no_repeat_ngram_hf_vector():
    sequences = [[1, 1, 2, 1], [0, 1, 0, 1]]
    scores = uniform_logits(2, 3)
    # 2-grams: row 0 saw (1,1) and (1,2) after a 1; row 1 saw (1,0)
    assert removed(no_repeat_ngram(scores, sequences, 2)) == [
        [False, True, True],
        [True, False, False],
    ]
    # 3-grams: row 0's suffix (2,1) never started a 3-gram; row 1 saw (0,1,0)
    assert removed(no_repeat_ngram(scores, sequences, 3)) == [
        [False, False, False],
        [True, False, False],
    ]
    assert not np.isinf(scores).any()


def test_no_repeat_ngram_banned_token_reappears_hf_vector():
    # (1,2,5) bans 5 after the suffix (1,2); (7,8,5) ends in 5 too and must not un-ban it
    out = no_repeat_ngram(uniform_logits(1, 10), [[1, 2, 5, 7, 8, 5, 1, 2]], 3)
    assert np.flatnonzero(np.isinf(out[0])).tolist() == [5]


def test_no_repeat_ngram_sequence_shorter_than_n_hf_vector():
    out = no_repeat_ngram(uniform_logits(2, 3), [[1, 2], [0, 1]], 3)
    assert not np.isinf(out).any()
