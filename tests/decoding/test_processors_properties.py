"""Properties of the newer processors, warpers, the pipeline and the stopping criteria, on any
input hypothesis can think of.

Logits are on the grid of test_warpers_properties.py (multiples of 1/8, some -inf, never a
whole row). The rules are restated here the plain way (a loop, a set, a string search) and
the vectorised functions must agree with them exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_warpers_properties import logits_rows

from decoding.biasing import bad_words_ids, sequence_bias
from decoding.length_processors import exponential_decay_length_penalty, min_length, min_new_tokens
from decoding.pipeline import Pipeline
from decoding.probs import softmax
from decoding.processors import (
    Processors,
    begin_suppress_tokens,
    no_repeat_ngram,
    renormalize_logits,
    repetition_penalty,
    suppress_tokens,
)
from decoding.stopping import MaxTime, max_time_reached, stop_strings
from decoding.warpers import (
    REMOVED_LISTED,
    Warpers,
    count_kept,
    epsilon_cutoff,
    eta_cutoff,
    min_p_filter,
    score_step,
    top_h,
    top_k_filter,
    top_p_filter,
    typical_filter,
)

open_fractions = st.floats(0.001, 0.999)
keeps = st.integers(1, 6)


def finite_count(x: np.ndarray) -> np.ndarray:
    return np.isfinite(x).sum(axis=-1)


def assert_only_cuts(x: np.ndarray, out: np.ndarray) -> None:
    """A filter sets logits to -inf and leaves every other one exactly as it was."""
    assert out.dtype == np.float32 and out.shape == x.shape
    kept = ~np.isneginf(out)
    np.testing.assert_array_equal(out[kept], x[kept])


# --- the new warpers ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(logits_rows(), open_fractions, keeps)
def test_epsilon_removes_exactly_the_improbable_tokens_beyond_the_kept_ones(x, eps, keep):
    before = x.copy()
    out = epsilon_cutoff(x, eps, keep)
    np.testing.assert_array_equal(x, before)
    assert_only_cuts(x, out)
    probs = softmax(x)
    for row in range(x.shape[0]):
        finite = np.flatnonzero(np.isfinite(x[row]))
        kth = np.sort(x[row][finite])[::-1][min(keep, finite.size) - 1]
        for t in finite:
            removed = probs[row, t] < np.float32(eps) and x[row, t] < kth
            assert np.isneginf(out[row, t]) == removed
    assert (count_kept(out) >= np.minimum(keep, finite_count(x))).all()


@settings(max_examples=200, deadline=None)
@given(logits_rows(), open_fractions, keeps)
def test_eta_never_cuts_more_than_epsilon(x, eps, keep):
    """eta = min(epsilon, ...) <= epsilon: whatever eta removes, epsilon removes too."""
    eta, epsilon = eta_cutoff(x, eps, keep), epsilon_cutoff(x, eps, keep)
    assert_only_cuts(x, eta)
    assert not (np.isneginf(eta) & ~np.isneginf(epsilon) & np.isfinite(x)).any()
    assert (count_kept(eta) >= np.minimum(keep, finite_count(x))).all()


@settings(max_examples=200, deadline=None)
@given(logits_rows(max_vocab=130), st.floats(0.01, 1.0), st.floats(0.01, 1.0))
def test_top_h_keeps_a_prefix_of_the_likeliest_and_grows_with_top_h(x, a, b):
    low, high = sorted((a, b))
    small, large = top_h(x, low), top_h(x, high)
    assert_only_cuts(x, small)
    kept_small, kept_large = ~np.isneginf(small), ~np.isneginf(large)
    assert not (kept_small & ~kept_large).any()  # a larger top_h keeps a superset
    assert (count_kept(small) >= 1).all() and (count_kept(large) <= 100).all()
    for row in range(x.shape[0]):
        kept = kept_small[row]
        # every token strictly more likely than a kept one is kept (ties go by token id)
        assert not (~kept & (x[row] > x[row][kept].min())).any()


@settings(max_examples=150, deadline=None)
@given(logits_rows(), st.integers(1, 5), keeps, keeps, st.floats(0.0, 1.0))
def test_a_larger_min_tokens_to_keep_keeps_a_superset(x, k, keep_a, keep_b, p):
    low, high = sorted((keep_a, keep_b))
    p_open = min(max(p, 0.001), 0.999)
    p_frac = max(p, 0.01)
    filters = [
        lambda m: top_k_filter(x, k, m),
        lambda m: top_p_filter(x, p_frac, m),
        lambda m: min_p_filter(x, p, m),
        lambda m: typical_filter(x, p_frac, m),
        lambda m: epsilon_cutoff(x, p_open, m),
        lambda m: eta_cutoff(x, p_open, m),
    ]
    for run in filters:
        fewer, more = ~np.isneginf(run(low)), ~np.isneginf(run(high))
        assert not (fewer & ~more).any()
        assert (more.sum(axis=-1) >= np.minimum(high, finite_count(x))).all()


@settings(max_examples=150, deadline=None)
@given(logits_rows(max_vocab=60), st.integers(0, 5))
def test_score_step_lists_what_a_step_removed(x, k):
    after = top_k_filter(x, max(k, 1))
    step = score_step("top_k", k, x, after)
    assert step.kept == tuple(count_kept(after).tolist())
    for row, listed in enumerate(step.removed):
        gone = np.flatnonzero(np.isneginf(after[row]) & np.isfinite(x[row])).tolist()
        assert listed == (tuple(gone) if len(gone) <= REMOVED_LISTED else None)


def test_warpers_run_in_generates_order_and_skip_the_off_ones():
    every = Warpers(temperature=0.7, top_h=0.9, top_k=5, top_p=0.9, min_p=0.1, typical_p=0.9,
                    epsilon_cutoff=0.01, eta_cutoff=0.01)  # fmt: skip
    assert [n for n, _ in every.active()] == [
        "temperature", "top_h", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff",
        "eta_cutoff",
    ]  # fmt: skip
    assert Warpers(epsilon_cutoff=0.0, eta_cutoff=0.0, top_h=None).active() == []


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"epsilon_cutoff": 1.0}, "epsilon_cutoff"),
        ({"eta_cutoff": -0.1}, "eta_cutoff"),
        ({"top_h": 0.0}, "top_h"),
        ({"top_h": 1.5}, "top_h"),
        ({"min_tokens_to_keep": 0}, "min_tokens_to_keep"),
        ({"min_tokens_to_keep": True}, "min_tokens_to_keep"),
    ],
)
def test_bad_warper_settings_fail_in_one_line(kwargs, word):
    with pytest.raises(ValueError, match=word) as error:
        Warpers(**kwargs)
    assert "\n" not in str(error.value)


# --- the new processors ---------------------------------------------------------------------

token_lists = st.lists(st.integers(0, 5), min_size=0, max_size=10)


@st.composite
def batch(draw, min_len: int = 0):
    """Logits [B, V] and B histories of ids in [0, 6) (some beyond a small vocabulary), with
    each row's prompt length."""
    x = draw(logits_rows(max_vocab=8))
    seqs = [draw(st.lists(st.integers(0, 5), min_size=max(min_len, 1), max_size=9)) for _ in x]
    prompts = [draw(st.integers(0, len(s))) for s in seqs]
    return x, seqs, prompts


@settings(max_examples=200, deadline=None)
@given(batch(), st.lists(token_lists.filter(bool), min_size=1, max_size=4), st.integers(0, 5))
def test_bad_words_ban_exactly_the_tokens_that_would_complete_one(data, words, eos):
    x, seqs, _ = data
    v = x.shape[1]
    words = [w for w in words if max(w) < v] or [[0]]
    assume(eos < v)
    out = bad_words_ids(x, seqs, words, eos_token_id=eos)
    for row, seq in enumerate(seqs):
        banned = {
            w[-1]
            for w in words
            if w != [eos] and len(w) - 1 <= len(seq) and seq[len(seq) - len(w) + 1 :] == w[:-1]
        }
        for t in range(v):
            expected = -math.inf if t in banned else x[row, t]
            assert out[row, t] == expected


@settings(max_examples=200, deadline=None)
@given(batch(), st.lists(st.tuples(token_lists.filter(bool), st.integers(-8, 8)), min_size=1,
                         max_size=5))  # fmt: skip
def test_sequence_bias_adds_each_completed_sequences_bias(data, pairs):
    x, seqs, _ = data
    v = x.shape[1]
    pairs = [(w, b / 4) for w, b in pairs if max(w) < v] or [([0], 1.0)]
    out = sequence_bias(x, seqs, [[w, b] for w, b in pairs])
    merged = {tuple(w): b for w, b in pairs}  # the last bias of a repeated sequence wins
    for row, seq in enumerate(seqs):
        added = np.zeros(v)
        for w, b in merged.items():
            if len(w) - 1 <= len(seq) and tuple(seq[len(seq) - len(w) + 1 :]) == w[:-1]:
                added[w[-1]] += b  # quarters: exact in float32, in any order
        np.testing.assert_array_equal(out[row], (x[row] + added).astype(np.float32))


@settings(max_examples=200, deadline=None)
@given(batch(), st.integers(0, 8), st.integers(0, 7))
def test_min_length_and_min_new_tokens_ban_eos_and_nothing_else(data, n, eos):
    x, seqs, prompts = data
    assume(eos < x.shape[1])
    by_length = min_length(x, seqs, n, eos)
    by_new = min_new_tokens(x, seqs, prompts, n, eos)
    for row, seq in enumerate(seqs):
        for out, banned in ((by_length, len(seq) < n), (by_new, len(seq) - prompts[row] < n)):
            expected = x[row].copy()
            if banned:
                expected[eos] = -np.inf
            np.testing.assert_array_equal(out[row], expected)


@settings(max_examples=200, deadline=None)
@given(batch(), st.integers(0, 4), st.floats(1.0, 3.0), st.integers(0, 7))
def test_exponential_decay_only_raises_eos_and_only_after_its_start(data, start, factor, eos):
    x, seqs, prompts = data
    assume(eos < x.shape[1])
    out = exponential_decay_length_penalty(x, seqs, prompts, (start, factor), eos)
    others = np.arange(x.shape[1]) != eos
    np.testing.assert_array_equal(out[:, others], x[:, others])
    for row, seq in enumerate(seqs):
        generated = len(seq) - prompts[row]
        if generated <= start or not np.isfinite(x[row, eos]):
            assert out[row, eos] == x[row, eos]
        else:
            assert out[row, eos] >= x[row, eos]  # factor >= 1: EOS never loses


@settings(max_examples=200, deadline=None)
@given(batch(), token_lists)
def test_suppressions(data, tokens):
    x, seqs, prompts = data
    v = x.shape[1]
    always = suppress_tokens(x, tokens)
    at_start = begin_suppress_tokens(x, seqs, prompts, tokens)
    listed = np.isin(np.arange(v), tokens)
    np.testing.assert_array_equal(always, np.where(listed, -np.inf, x).astype(np.float32))
    for row, seq in enumerate(seqs):
        first = len(seq) == prompts[row]  # the first new token is being chosen
        expected = np.where(listed & first, -np.inf, x[row]).astype(np.float32)
        np.testing.assert_array_equal(at_start[row], expected)


@settings(max_examples=150, deadline=None)
@given(batch(min_len=1), st.integers(0, 7))
def test_processors_apply_is_the_functions_in_generates_order(data, eos):
    x, seqs, prompts = data
    v = x.shape[1]
    assume(eos < v)
    settings_ = dict(
        sequence_bias=[[[0], 0.5], [[1, 2], -1.0]],
        repetition_penalty=1.5,
        no_repeat_ngram_size=2,
        bad_words_ids=[[3], [0, 1]],
        min_new_tokens=2,
        exponential_decay_length_penalty=(1, 2.0),
        suppress_tokens=[4],
        begin_suppress_tokens=[5],
    )
    assume(all(max(ids) < v for ids, _ in settings_["sequence_bias"]))
    assume(all(max(w) < v for w in settings_["bad_words_ids"]))
    ours, steps = Processors(**settings_).apply_traced(
        x, seqs, prompt_lengths=prompts, eos_token_id=eos
    )
    by_hand = sequence_bias(x, seqs, settings_["sequence_bias"])
    by_hand = repetition_penalty(by_hand, seqs, 1.5)
    by_hand = no_repeat_ngram(by_hand, seqs, 2)
    by_hand = bad_words_ids(by_hand, seqs, settings_["bad_words_ids"], eos)
    by_hand = min_new_tokens(by_hand, seqs, prompts, 2, eos)
    by_hand = exponential_decay_length_penalty(by_hand, seqs, prompts, (1, 2.0), eos)
    by_hand = suppress_tokens(by_hand, [4])
    by_hand = begin_suppress_tokens(by_hand, seqs, prompts, [5])
    np.testing.assert_array_equal(ours, by_hand)
    assert [s.name for s in steps] == list(settings_)


@settings(max_examples=150, deadline=None)
@given(batch(min_len=1), st.booleans())
def test_pipeline_is_processors_then_warpers_then_renormalisation(data, renormalize):
    x, seqs, prompts = data
    processors = Processors(suppress_tokens=[1], min_new_tokens=1)
    warpers = Warpers(temperature=0.5, top_k=3)
    pipe = Pipeline(processors, warpers, renormalize)
    processed = processors.apply(x, seqs, prompt_lengths=prompts, eos_token_id=0)
    assume(count_kept(processed).min() > 0)  # a decoder refuses a row with nothing left
    ours, steps = pipe.apply(x, seqs, prompt_lengths=prompts, eos_token_id=0)
    by_hand = warpers.apply(processed)[0]
    if renormalize:
        by_hand = renormalize_logits(by_hand)
    np.testing.assert_array_equal(ours, by_hand)
    expected = ["min_new_tokens", "suppress_tokens", "temperature", "top_k"]
    assert [s.name for s in steps] == expected + ["renormalize_logits"] * renormalize
    if renormalize:
        np.testing.assert_allclose(np.exp(ours.astype(np.float64)).sum(axis=-1), 1.0, atol=1e-5)


def test_without_eos_the_eos_processors_do_nothing_as_in_hf():
    processors = Processors(min_length=5, min_new_tokens=2, exponential_decay_length_penalty=(0, 2))
    assert [n for n, _ in processors.active(eos_token_id=None)] == []
    assert [n for n, _ in processors.active(eos_token_id=3)] == [
        "min_new_tokens",  # it overrides min_length, as generate() does
        "exponential_decay_length_penalty",
    ]


def test_lists_and_tuples_spell_the_same_processors():
    a = Processors(bad_words_ids=[[1, 2]], suppress_tokens=[3], sequence_bias={(4,): 1.0})
    b = Processors(bad_words_ids=((1, 2),), suppress_tokens=(3,), sequence_bias=[[[4], 1.0]])
    assert a == b and hash(a) == hash(b)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"bad_words_ids": []}, "bad_words_ids"),
        ({"bad_words_ids": [[1, -2]]}, "bad_words_ids"),
        ({"bad_words_ids": [[]]}, "bad_words_ids"),
        ({"sequence_bias": [[[1], "x"]]}, "sequence_bias"),
        ({"sequence_bias": {(1,): math.nan}}, "sequence_bias"),
        ({"min_new_tokens": -1}, "min_new_tokens"),
        ({"min_length": 2.5}, "min_length"),
        ({"exponential_decay_length_penalty": (1,)}, "exponential_decay_length_penalty"),
        ({"exponential_decay_length_penalty": (-1, 2.0)}, "start_index"),
        ({"suppress_tokens": [1.5]}, "suppress_tokens"),
        ({"begin_suppress_tokens": "abc"}, "begin_suppress_tokens"),
    ],
)
def test_bad_processor_settings_fail_in_one_line(kwargs, word):
    with pytest.raises(ValueError, match=word) as error:
        Processors(**kwargs)
    assert "\n" not in str(error.value)


def test_processors_that_count_new_tokens_ask_for_prompt_lengths():
    with pytest.raises(ValueError, match="prompt_lengths"):
        Processors(min_new_tokens=2).apply(np.zeros((1, 3)), [[0]], eos_token_id=1)


def test_a_biased_token_outside_the_vocabulary_is_refused_as_hf_does():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        sequence_bias(np.zeros((1, 3)), [[0]], [[[7], 1.0]])


# --- stop strings and max_time --------------------------------------------------------------

pieces = st.sampled_from([b"", b"a", b"b", b"ab", b"ba", b"aab", b"bba", b"abab", b"\xc3", b"\xa9"])
vocabularies = st.lists(pieces, min_size=1, max_size=8)
stop_texts = st.text(alphabet="abé", min_size=1, max_size=5)


def plain_rule(sequence, stops, table) -> bool:
    """HF's rule said plainly: for some number k of final tokens (at most the longest stop
    string's length in bytes), their concatenation holds a stop string that starts inside
    the first of them and ends after the start of the last (so it needs both)."""
    window = max(len(s.encode()) for s in stops)
    for stop in (s.encode() for s in stops):
        for k in range(1, min(window, len(sequence)) + 1):
            tokens = [table[t] for t in sequence[-k:]]
            text = b"".join(tokens)
            last_start = len(text) - len(tokens[-1])
            start = text.find(stop)
            while start >= 0:
                if start < len(tokens[0]) and start + len(stop) > last_start:
                    return True
                start = text.find(stop, start + 1)
    return False


@settings(max_examples=400, deadline=None)
@given(vocabularies, st.lists(stop_texts, min_size=1, max_size=3), st.data())
def test_stop_strings_follow_the_plain_rule(table, stops, data):
    seqs = data.draw(st.lists(st.lists(st.integers(0, len(table) - 1), min_size=1, max_size=8),
                              min_size=1, max_size=3))  # fmt: skip
    assert stop_strings(seqs, stops, table) == [plain_rule(s, stops, table) for s in seqs]


def test_stop_strings_take_str_or_bytes_alike():
    as_str, as_bytes = ["st", "op", "é"], [b"st", b"op", "é".encode()]
    for seq in ([0, 1], [1, 0], [2], [0, 2]):
        for stops in ("stop", "é", ["p", "té"]):
            assert stop_strings([seq], stops, as_str) == stop_strings([seq], stops, as_bytes)


@pytest.mark.parametrize("bad", ["", [""], [], [1], None])
def test_bad_stop_strings_fail_in_one_line(bad):
    with pytest.raises(ValueError, match="stop_strings") as error:
        stop_strings([[0]], bad, ["a"])
    assert "\n" not in str(error.value)


@settings(max_examples=100, deadline=None)
@given(st.floats(0.001, 100.0), st.floats(0.0, 200.0))
def test_max_time_is_strictly_more_than_the_budget(budget, elapsed):
    now = [50.0]
    timer = MaxTime(budget, clock=lambda: now[0])
    now[0] += elapsed
    assert timer.reached() == (now[0] - 50.0 > budget) == max_time_reached(50.0, now[0], budget)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, "1", True])
def test_bad_max_time_fails_in_one_line(bad):
    with pytest.raises(ValueError, match="max_time"):
        MaxTime(bad, clock=lambda: 0.0)


def test_stop_strings_look_back_only_as_many_tokens_as_the_longest_has_bytes():
    """HF's window: a 2-byte stop string is looked for in the last 2 tokens, so an empty token
    in between hides it (a quirk that matters only for tokens that decode to nothing)."""
    table = [b"a", b"", b"b"]
    assert stop_strings([[0, 2], [0, 1, 2]], "ab", table) == [True, False]
    assert stop_strings([[0, 1, 2]], ["ab", "xyz"], table) == [True]  # a longer window
    assert plain_rule([0, 1, 2], ["ab"], table) is False


def test_stopping_checks_its_arguments_and_asks_the_clock_once_per_call():
    from decoding.stopping import MAX_TIME, STOP_STRING, Stopping

    with pytest.raises(ValueError, match="token_strings"):
        Stopping.of(stop_strings=["x"])
    ticks = iter([0.0, 1.0, 5.0])
    stopping = Stopping.of(["ab"], [b"a", b"b"], MaxTime(2.0, clock=lambda: next(ticks)))
    assert stopping.reason([0, 1]) == STOP_STRING  # no clock read: the stop string decides
    assert not stopping.time_is_up()  # 1.0 s of 2.0
    assert stopping.reason([0], time_is_up=True) == MAX_TIME
    assert stopping.time_is_up()  # 5.0 s
    assert Stopping.of().reason([0, 1, 2]) == ""


def test_pipeline_of_refuses_an_option_no_processor_has():
    with pytest.raises(ValueError, match="unknown processor option 'top_k'"):
        Pipeline.of(None, top_k=3)
    assert Pipeline.of(None, min_new_tokens=2, renormalize_logits=True).renormalize_logits
