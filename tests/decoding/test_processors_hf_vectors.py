"""Hugging Face's own unit-test vectors for the newer warpers, processors and stopping criteria,
replayed on ours.

The inputs and expected outcomes are the numbers of transformers'
tests/generation/test_logits_process.py and tests/generation/test_stopping_criteria.py (the
settings too: min_tokens_to_keep, lengths, eos ids). HF's tests have no vectors for
suppress_tokens and begin_suppress_tokens (only Whisper examples); the reference file checks
those against HF's classes. Where HF's test feeds a case minigpt cannot meet (a row shorter
than its own prompt, several EOS ids), the comment says so and the case is left out.
"""

import math

import numpy as np
import pytest

from decoding.biasing import bad_words_ids, sequence_bias
from decoding.length_processors import exponential_decay_length_penalty, min_length, min_new_tokens
from decoding.probs import softmax
from decoding.processors import renormalize_logits
from decoding.stopping import MaxTime, continues, end_overlaps, stop_strings
from decoding.warpers import epsilon_cutoff, eta_cutoff, top_h
from minigpt.tokenizer import load_tokenizer


def uniform_logits(batch: int, vocab: int) -> np.ndarray:
    return np.full((batch, vocab), 1.0 / vocab, dtype=np.float32)


def log_probs(rows: list[list[float]]) -> np.ndarray:
    with np.errstate(divide="ignore"):  # HF's rows hold a 0.0, whose log is -inf
        return np.log(np.array(rows, dtype=np.float32))


def extreme_ramp(batch: int = 2, vocab: int = 10) -> np.ndarray:
    """HF's edge case: a ramp centred on 0, its second row multiplied by 100."""
    scores = np.tile(np.arange(vocab, dtype=np.float32) - vocab // 2, (batch, 1))
    scores[1] *= 100.0
    return scores


def kept_per_row(scores: np.ndarray) -> list[int]:
    return (~np.isneginf(scores)).sum(axis=-1).tolist()


def random_ids(rng: np.random.Generator, batch: int, length: int, vocab: int) -> list[list[int]]:
    return rng.integers(vocab, size=(batch, length)).tolist()


RNG = np.random.default_rng(0)


# --- min_length / min_new_tokens ------------------------------------------------------------


def test_min_length_hf_vector():
    # vocab 20, batch 4, eos 0, min_length 10: EOS banned at length 5, free at length 15
    scores = uniform_logits(4, 20)
    short = min_length(scores, random_ids(RNG, 4, 5, 20), 10, eos_token_id=0)
    assert short[:, 0].tolist() == 4 * [-math.inf]
    assert np.isneginf(short).sum() == 4  # nothing but EOS
    long = min_length(scores, random_ids(RNG, 4, 15, 20), 10, eos_token_id=0)
    assert not np.isinf(long).any()


@pytest.mark.parametrize(
    "length, banned", [(5, True), (6, True), (7, True), (8, False), (15, False)]
)
def test_min_new_tokens_hf_vector(length, banned):
    # prompt of 5, min_new_tokens 3, eos 0: EOS banned with 0, 1 or 2 new tokens, then free.
    # (HF's test also calls it on a 2-token input, shorter than the prompt, and with two EOS
    # ids; a minigpt row always holds its prompt and has one EOS.)
    out = min_new_tokens(uniform_logits(4, 20), random_ids(RNG, 4, length, 20), 4 * [5], 3, 0)
    assert out[:, 0].tolist() == (4 * [-math.inf] if banned else out[:, 0].tolist())
    assert np.isinf(out).any() == banned
    assert np.isneginf(out[:, 1:]).sum() == 0


# --- epsilon / eta --------------------------------------------------------------------------


def test_epsilon_cutoff_hf_vector():
    dist = log_probs([[0.87, 0.099, 0.001, 0.03], [0.4, 0.299, 0.101, 0.2]])
    filtered = np.exp(epsilon_cutoff(dist, 0.1))
    expected = [[0.87, 0, 0, 0], [0.4, 0.299, 0.101, 0.2]]  # only p >= 0.1 stays
    np.testing.assert_allclose(filtered, expected, rtol=1e-3, atol=1e-3)


def test_epsilon_cutoff_extreme_logits_hf_vector():
    # HF: 3 tokens in the first row; the second would keep 1 but min_tokens_to_keep=2 keeps 2
    assert kept_per_row(epsilon_cutoff(extreme_ramp(), 5e-2, min_tokens_to_keep=2)) == [3, 2]
    assert kept_per_row(epsilon_cutoff(extreme_ramp(), 5e-2)) == [3, 1]


def test_eta_cutoff_hf_vector():
    dist = log_probs([[0.0, 0.1, 0.8, 0.1], [0.01, 0.04, 0.9, 0.05]])
    filtered = np.exp(eta_cutoff(dist, 0.0625))
    # HF's comment: the cuts are min(0.0625, 0.1320) and min(0.0625, 0.1644)
    expected = [[0.0, 0.1, 0.8, 0.1], [0.0, 0.0, 0.9, 0.0]]
    np.testing.assert_allclose(filtered, expected, rtol=1e-3, atol=1e-3)


def test_eta_cutoff_extreme_logits_hf_vector():
    # HF: 2 tokens in the first row; the second would keep 1 but min_tokens_to_keep=2 keeps 2
    assert kept_per_row(eta_cutoff(extreme_ramp(), 0.1, min_tokens_to_keep=2)) == [2, 2]
    assert kept_per_row(eta_cutoff(extreme_ramp(), 0.1)) == [2, 1]


# --- top-h ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "probs, alpha, expected",
    [
        ([0.97, 0.01, 0.01, 0.01], 0.3, [0.97, 0.0, 0.0, 0.0]),  # peaked: the top alone
        ([0.4, 0.3, 0.2, 0.1], 0.7, [0.4, 0.3, 0.0, 0.0]),  # skewed: the top two
        ([0.25, 0.25, 0.25, 0.25], 1.0, [0.25, 0.25, 0.25, 0.25]),  # uniform, alpha 1: all
        ([0.75, 0.25, 0.0, 0.0], 0.4, [0.75, 0.0, 0.0, 0.0]),  # zeros in the row
    ],
)
def test_top_h_hf_vectors(probs, alpha, expected):
    dist = log_probs([probs])
    out = top_h(dist, alpha)
    np.testing.assert_allclose(np.exp(out), [expected], rtol=1e-3, atol=1e-3)


def test_top_h_does_not_change_its_input_hf_vector():
    dist = log_probs([[0.25, 0.25, 0.25, 0.25]])
    original = dist.copy()
    out = top_h(dist, 0.5)
    assert not np.array_equal(out, dist)  # alpha 0.5 cuts a uniform row
    np.testing.assert_array_equal(dist, original)


# --- bad words / sequence bias --------------------------------------------------------------

HISTORY = [[0, 1, 3, 1], [0, 1, 0, 1]]


def test_bad_words_ids_hf_vector():
    bad = [[1], [4], [1, 0], [0, 1, 2], [1, 3, 1, 3]]
    out = bad_words_ids(uniform_logits(2, 5), HISTORY, bad, eos_token_id=4)
    # row 0 bans 0, 1, 3; row 1 bans 0, 1, 2; the lone [4] is EOS and is never banned
    assert np.isinf(out).tolist() == [
        [True, True, False, True, False],
        [True, True, True, False, False],
    ]


def test_bad_words_ids_eos_alone_changes_nothing_hf_vector():
    scores = uniform_logits(2, 5)
    np.testing.assert_array_equal(bad_words_ids(scores, HISTORY, [[4]], eos_token_id=4), scores)


def test_sequence_bias_hf_vector():
    biases = {
        (1,): 100.0,
        (4,): 100.0,
        (1, 0): -100.0,
        (0, 1, 2): -100.0,
        (1, 3, 1, 3): -100.0,
        (1, 3, 1, 3, 1, 3): -100.0,  # the same last token twice, longer than the rows
    }
    out = sequence_bias(np.zeros((2, 5), np.float32), HISTORY, biases)
    assert out.tolist() == [
        [-100.0, 100.0, 0.0, -100.0, 100.0],
        [-100.0, 100.0, -100.0, 0.0, 100.0],
    ]
    assert out.dtype == np.float32


# --- exponential decay length penalty -------------------------------------------------------


def test_exponential_decay_length_penalty_hf_vector():
    # vocab 20, batch 4, eos 0, (start 5, factor 1.1), prompt length 2
    decay, prompt = (5, 1.1), 4 * [2]
    scores = uniform_logits(4, 20)
    before = exponential_decay_length_penalty(scores, random_ids(RNG, 4, 2, 20), prompt, decay, 0)
    np.testing.assert_array_equal(before, scores)  # not before the start
    after = exponential_decay_length_penalty(scores, random_ids(RNG, 4, 20, 20), prompt, decay, 0)
    assert (after[:, 0] > scores[:, 0]).all()  # EOS raised after the start
    np.testing.assert_array_equal(after[:, 1:], scores[:, 1:])
    negative = -scores
    raised = exponential_decay_length_penalty(
        negative, random_ids(RNG, 4, 20, 20), prompt, decay, 0
    )
    assert (raised[:, 0] > negative[:, 0]).all()  # a negative EOS score rises too


# --- renormalize_logits (LogitNormalization) ------------------------------------------------


def test_renormalize_logits_hf_vector():
    scores = np.array(
        [[-23.18, -29.96, -43.54, 47.77], [-33.58, -26.87, -32.96, 22.51]], dtype=np.float32
    )
    normalized = np.exp(renormalize_logits(scores))
    np.testing.assert_allclose(normalized.sum(axis=-1), [1.0, 1.0], rtol=1e-5)
    np.testing.assert_allclose(normalized, softmax(scores), rtol=1e-5, atol=1e-8)
    assert not np.array_equal(normalized, scores)


# --- stop strings ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2():
    tokenizer = load_tokenizer("gpt2")
    return tokenizer, [tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size)]


def stops(gpt2, text: str, strings) -> bool:
    tokenizer, table = gpt2
    return stop_strings([tokenizer.encode(text)], strings, table)[0]


TRUE_STRINGS = [
    "<|im_start|><|im_end|>",
    "<|im_start|><|im_end|<|im_end|>",
    ">><|im_start|>>stop",
    "stop",
    "e nd",
]
FALSE_STRINGS = [
    "<|im_start|><|im_end|",
    "<|im_start|><|im_end|<|im_end|",
    "<|im_end|><|im_start|>",
    "<|im_end|<>stop<|im_end|",
    "end",
    "en d",
    "eNd",
    "<|im_end|",
    "|im_end|>",
    "s",
]


@pytest.mark.parametrize("text", TRUE_STRINGS)
def test_stop_strings_match_hf_vector(gpt2, text):
    assert stops(gpt2, text, ["<|im_end|>", "stop", "e nd"])


@pytest.mark.parametrize("text", FALSE_STRINGS)
def test_stop_strings_no_match_hf_vector(gpt2, text):
    assert not stops(gpt2, text, ["<|im_end|>", "stop", "e nd"])


def test_stop_string_byte_level_ascii_hf_vector(gpt2):
    assert stops(gpt2, "the end", ["end"]) and not stops(gpt2, "end of", ["end"])


@pytest.mark.parametrize("text, expected", [("a", True), ("baa", True), ("abc", True),
                                            ("abbbbbbb", False), ("b", False)])  # fmt: skip
def test_single_letter_stop_string_hf_vector(gpt2, text, expected):
    # "abc" is one token holding the "a" (a full match inside the final token); "abbbbbbb"
    # splits into several tokens and its "a" is not in the last one
    assert stops(gpt2, text, ["a"]) == expected


def test_stop_string_per_row_hf_vector(gpt2):
    tokenizer, table = gpt2
    texts = [
        "They completed the challenging puzzle, revealing the hidden image at the end",
        "Today a dragon flew over France",
        "The aroma of freshly baked pizza filled the kitchen",
    ]
    rows = [tokenizer.encode(t) for t in texts]
    assert stop_strings(rows, ["end"], table) == [True, False, False]
    assert stop_strings([r[:-1] for r in rows], ["end"], table) == [False, False, False]


def test_stop_string_byte_fragments_hf_vector(gpt2):
    # HF's byte-level cases (its test uses Qwen's vocabulary; GPT-2 splits these characters
    # into single bytes too, which decoded one by one are not text at all)
    tokenizer, _ = gpt2
    assert not any("끝" in tokenizer.decode([t]) for t in tokenizer.encode("대화 끝"))
    assert stops(gpt2, "대화 끝", ["끝"])
    assert stops(gpt2, "작업 완료", ["완료"])
    assert not stops(gpt2, "대화 끝 다음", ["끝"])


def test_stop_string_ids_outside_the_table_hf_vector(gpt2):
    # HF: an id above the vocabulary never matches and raises nothing
    _, table = gpt2
    assert stop_strings([[len(table) + 1024, 1, 2]], ["test"], table) == [False]


def test_stop_string_matching_positions_hf_vector():
    # HF's table for "stop" and the tokens last, top, topper, s, p: where each token can sit
    # inside the stop string (bytes matched after it, counted from the end), and how much of
    # the string's end it can hold as the final token
    tokens = [b"last", b"top", b"topper", b"s", b"p"]
    positions = {t: [m for m in range(1, 4) if continues(t, b"stop", m)] for t in tokens}
    assert {t: m for t, m in positions.items() if m} == {b"s": [3], b"last": [2]}
    overlaps = {t: end_overlaps(t, b"stop") for t in tokens}
    assert {t: n for t, n in overlaps.items() if n} == {b"top": [3], b"topper": [3], b"p": [1]}


# --- max_time -------------------------------------------------------------------------------


def test_max_time_hf_vector():
    # HF: a fresh 0.1 s budget has not run out; one started 0.2 s ago has
    now = [1000.0]
    fresh = MaxTime(0.1, clock=lambda: now[0])
    assert not fresh.reached()
    started_earlier = MaxTime(0.1, clock=lambda: now[0])
    now[0] += 0.2
    assert started_earlier.reached() and fresh.reached()
