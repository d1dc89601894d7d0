"""Properties every warper and processor must have, on any logits hypothesis can think of.

Logits are drawn on a grid of multiples of 1/8 in [-16, 16] (many ties), with some entries
-inf (never a whole row). On that grid, adding a small power of two is exact in float32, so
shift invariance can be checked exactly rather than to a tolerance.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding import (
    Processors,
    Warpers,
    apply_temperature,
    banned_ngram_tokens,
    count_kept,
    min_p_filter,
    no_repeat_ngram,
    repetition_penalty,
    softmax,
    top_k_filter,
    top_p_filter,
    typical_filter,
)

# Probabilities are float32 softmaxes summed over <= 40 tokens: each carries a relative error
# of a few ulps (~1e-7), so masses agree with exact arithmetic to well within 1e-5.
MASS_TOL = 1e-5


@st.composite
def logits_rows(draw, max_rows: int = 3, max_vocab: int = 40) -> np.ndarray:
    rows = draw(st.integers(1, max_rows))
    vocab = draw(st.integers(1, max_vocab))
    grid = st.integers(-128, 128).map(lambda i: i / 8)
    cells = st.one_of(grid, grid, grid, st.just(-math.inf))
    x = np.array(draw(st.lists(cells, min_size=rows * vocab, max_size=rows * vocab)))
    x = x.reshape(rows, vocab).astype(np.float32)
    # a row must keep one finite logit, or there is no distribution at all
    all_removed = np.isneginf(x).all(axis=-1)
    x[all_removed, draw(st.integers(0, vocab - 1))] = draw(grid)
    return x


fractions = st.floats(0.01, 1.0)
temperatures = st.floats(0.05, 20.0)


@st.composite
def warper_calls(draw):
    """(name, function, parameter) for one warper with a valid parameter."""
    name = draw(st.sampled_from(["temperature", "top_k", "top_p", "min_p", "typical"]))
    if name == "temperature":
        return name, apply_temperature, draw(temperatures)
    if name == "top_k":
        return name, top_k_filter, draw(st.integers(1, 50))
    function = {"top_p": top_p_filter, "min_p": min_p_filter, "typical": typical_filter}[name]
    return name, function, draw(fractions if name != "min_p" else st.floats(0.0, 1.0))


@settings(max_examples=200, deadline=None)
@given(logits_rows(), warper_calls())
def test_probabilities_sum_to_one_after_every_warper(x, call):
    """Whatever a warper removes, softmax of its output is still a distribution."""
    _, warp, param = call
    probs = softmax(warp(x, param))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=MASS_TOL)


@settings(max_examples=200, deadline=None)
@given(logits_rows(), warper_calls())
def test_every_warper_keeps_a_token_and_leaves_its_input_alone(x, call):
    """At least one token survives each warper, and the caller's array is never modified."""
    _, warp, param = call
    before = x.copy()
    out = warp(x, param)
    assert (count_kept(out) >= 1).all()
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_array_equal(x, before)


@settings(max_examples=200, deadline=None)
@given(logits_rows(), warper_calls(), st.sampled_from([-4.0, -0.5, 0.25, 1.0, 8.0]))
def test_warpers_ignore_a_constant_added_to_the_logits(x, call, c):
    """Softmax cannot see a shift, so neither may the choice of removed tokens."""
    name, warp, param = call
    out, shifted = warp(x, param), warp(x + np.float32(c), param)
    if name == "temperature":  # (x + c) / T = x / T + c / T: same distribution
        probs, shifted_probs = softmax(out), softmax(shifted)
        bound = shift_bound(x, c, param)
        gap = np.abs(probs.astype(np.float64) - shifted_probs)
        print(f"T={param} c={c}: max gap {gap.max():.3g}, its bound {bound.flat[gap.argmax()]:.3g}")
        assert (gap <= bound).all()
    else:  # on the 1/8 grid x + c is exact, so the kept set must be identical
        np.testing.assert_array_equal(np.isneginf(out), np.isneginf(shifted))


U = 2.0**-24  # float32's unit roundoff
EXP_ULPS = 4  # NumPy's float32 exp is accurate to a few ulps (an ulp is at most 2U relative)


def softmax_rounding(z: np.ndarray) -> np.ndarray:
    """How far a float32 softmax of z may be from the exact softmax of z, relative to each
    probability: z - max rounds (U |z - max|), exp adds a few ulps, the sum of n terms at most
    (n - 1) U of itself (carrying each term's error), the division U more."""
    top = z.max(axis=-1, keepdims=True).astype(np.float64)
    d = np.abs(np.where(np.isneginf(z), top, z) - top)  # removed tokens (-inf) cost nothing
    per_term = U * d + 2 * EXP_ULPS * U
    n = z.shape[-1]
    return per_term + per_term.max(axis=-1, keepdims=True) + (n - 1) * U * 1.01 + U


def shift_bound(x: np.ndarray, c: float, temperature: float) -> np.ndarray:
    """How far softmax(x / T) and softmax((x + c) / T) may be apart, each computed in float32.

    On the test's 1/8 grid x + c is exact, so each side's logits differ from the exact
    x / T (+ c / T) only by the division's rounding, at most U |x / T| and U |(x + c) / T|.
    Softmax ignores a common shift, so log-probs move by at most the spread of those errors,
    probabilities by p (e^spread - 1); each float32 softmax then adds its own rounding.
    """
    finite = ~np.isneginf(x)
    x64 = np.where(finite, x, 0.0).astype(np.float64)
    t = np.float64(temperature)
    error = U * (np.abs(x64 / t) + np.abs((x64 + c) / t))  # 0 for removed tokens
    spread = 2 * error.max(axis=-1)
    z = np.where(finite, x64 / t, -np.inf)
    exact = np.exp(z - z.max(axis=-1, keepdims=True))
    exact /= exact.sum(axis=-1, keepdims=True)
    moved = exact * np.expm1(spread)[:, None]
    zf = z.astype(np.float32)
    return (moved + exact * softmax_rounding(zf) + (exact + moved) * softmax_rounding(zf)) * 1.1


@settings(max_examples=200, deadline=None)
@given(logits_rows(), warper_calls(), st.randoms(use_true_random=False))
def test_warpers_commute_with_permuting_the_vocabulary(x, call, rnd):
    """Token ids carry no meaning to a warper: relabelling them relabels its output."""
    _, warp, param = call
    perm = np.array(rnd.sample(range(x.shape[-1]), x.shape[-1]))
    relabelled_first = np.isneginf(warp(x[:, perm], param))
    np.testing.assert_array_equal(relabelled_first, np.isneginf(warp(x, param)[:, perm]))


def kth_largest(row: np.ndarray, k: int) -> float:
    return float(np.sort(row)[::-1][min(k, row.size) - 1])


@settings(max_examples=200, deadline=None)
@given(logits_rows(), st.integers(1, 50))
def test_top_k_keeps_exactly_the_tokens_at_or_above_the_kth_value(x, k):
    """Top-k keeps every token >= the k-th largest logit (ties included), so at least k."""
    out = top_k_filter(x, k)
    for row, kept in zip(x, ~np.isneginf(out)):
        finite = int(np.isfinite(row).sum())
        np.testing.assert_array_equal(kept, (row >= kth_largest(row, k)) & np.isfinite(row))
        assert kept.sum() >= min(k, finite)


@settings(max_examples=300, deadline=None)
@given(logits_rows(), st.floats(0.01, 0.999))
def test_top_p_keeps_the_smallest_top_set_reaching_p_plus_ties(x, p):
    """Top-p keeps a top set (plus ties) with mass >= p, and the tokens above its cutoff had < p.

    Masses are summed in float64 from the float32 probabilities; float32 decides the boundary,
    so both inequalities hold to MASS_TOL.
    """
    out = top_p_filter(x, p)
    probs = softmax(x).astype(np.float64)
    for row, prob, kept in zip(x, probs, ~np.isneginf(out)):
        cutoff = row[kept].min()
        np.testing.assert_array_equal(kept, row >= cutoff)  # a top set, closed under ties
        assert prob[kept].sum() >= p - MASS_TOL
        assert prob[row > cutoff].sum() < p + MASS_TOL  # without the cutoff tie group: short


@settings(max_examples=200, deadline=None)
@given(logits_rows(), st.floats(0.0, 1.0))
def test_min_p_keeps_the_tokens_at_least_p_times_the_top(x, p):
    """Min-p keeps a token iff its probability is >= p * the top probability (to rounding)."""
    kept = ~np.isneginf(min_p_filter(x, p))
    probs = softmax(x)
    ratio = probs / probs.max(axis=-1, keepdims=True)
    clear = np.abs(ratio - p) > 1e-5  # tokens right at the threshold may go either way
    np.testing.assert_array_equal(kept[clear], (ratio >= p)[clear])


@settings(max_examples=200, deadline=None)
@given(logits_rows())
def test_top_k_of_the_vocab_size_and_top_p_of_one_change_nothing(x):
    """The no-op settings give back the logits unchanged (-inf entries included)."""
    np.testing.assert_array_equal(top_k_filter(x, x.shape[-1]), x)
    np.testing.assert_array_equal(top_p_filter(x, 1.0), x)
    np.testing.assert_array_equal(typical_filter(x, 1.0), x)
    np.testing.assert_array_equal(apply_temperature(x, 1.0), x)


# --- the pipeline --------------------------------------------------------------------------


@st.composite
def pipelines(draw) -> Warpers:
    def maybe(strategy):
        return draw(st.one_of(st.none(), strategy))

    return Warpers(
        temperature=draw(st.one_of(st.just(1.0), temperatures)),
        top_k=maybe(st.integers(0, 50)),
        top_p=maybe(fractions),
        min_p=maybe(st.floats(0.0, 1.0)),
        typical_p=maybe(fractions),
    )


@settings(max_examples=200, deadline=None)
@given(logits_rows(), pipelines())
def test_pipeline_is_the_warpers_in_hf_order_and_traces_each(x, warpers):
    """Warpers.apply = temperature, top-k, top-p, min-p, typical in turn; the trace counts match."""
    out, trace = warpers.apply(x)
    expected = x
    steps = [
        ("temperature", apply_temperature, warpers.temperature, warpers.temperature != 1.0),
        ("top_k", top_k_filter, warpers.top_k, warpers.top_k not in (None, 0)),
        ("top_p", top_p_filter, warpers.top_p, warpers.top_p not in (None, 1.0)),
        ("min_p", min_p_filter, warpers.min_p, warpers.min_p is not None),
        ("typical_p", typical_filter, warpers.typical_p, warpers.typical_p not in (None, 1.0)),
    ]
    ran = [(name, warp, param) for name, warp, param, on in steps if on]
    assert [(s.name, s.param) for s in trace] == [(name, param) for name, _, param in ran]
    for step, (_, warp, param) in zip(trace, ran):
        expected = warp(expected, param)
        assert list(step.kept) == count_kept(expected).tolist()
    np.testing.assert_array_equal(out, expected)
    assert out is not x


# --- processors ----------------------------------------------------------------------------


histories = st.lists(st.integers(0, 5), max_size=12)


@settings(max_examples=200, deadline=None)
@given(histories, st.integers(1, 4))
def test_banned_ngram_tokens_are_those_that_would_repeat_an_ngram(seq, n):
    """t is banned iff appending it makes the last n-gram occur earlier in the sequence."""
    for t in range(7):
        grown = seq + [t]
        ngrams = [tuple(grown[i : i + n]) for i in range(len(grown) - n + 1)]
        repeats = len(ngrams) > 0 and ngrams[-1] in ngrams[:-1]
        assert (t in banned_ngram_tokens(seq, n)) == repeats


@settings(max_examples=100, deadline=None)
@given(logits_rows(max_vocab=8), st.data())
def test_processors_touch_only_what_the_history_allows(x, data):
    """The penalty changes only seen tokens (toward less likely); the n-gram ban only bans."""
    sequences = [data.draw(st.lists(st.integers(0, 9), max_size=10)) for _ in x]
    penalised = repetition_penalty(x, sequences, 1.5)
    for row, seq in enumerate(sequences):
        seen = np.isin(np.arange(x.shape[1]), seq)
        np.testing.assert_array_equal(penalised[row, ~seen], x[row, ~seen])
        finite = seen & np.isfinite(x[row]) & (x[row] != 0)
        assert (penalised[row, finite] < x[row, finite]).all()
    banned = no_repeat_ngram(x, sequences, 2)
    changed = banned != x
    assert np.isneginf(banned[changed]).all()
    processors = Processors(repetition_penalty=1.5, no_repeat_ngram_size=2)
    np.testing.assert_array_equal(
        processors.apply(x, sequences), no_repeat_ngram(penalised, sequences, 2)
    )


# --- bad parameters ------------------------------------------------------------------------

BAD_CALLS = [
    (apply_temperature, 0.0),
    (apply_temperature, -1.0),
    (apply_temperature, math.nan),
    (apply_temperature, math.inf),
    (top_k_filter, 0),
    (top_k_filter, -3),
    (top_k_filter, 2.5),
    (top_k_filter, True),
    (top_p_filter, 0.0),
    (top_p_filter, -0.1),
    (top_p_filter, 1.01),
    (top_p_filter, math.nan),
    (min_p_filter, -0.01),
    (min_p_filter, 1.5),
    (min_p_filter, math.nan),
    (typical_filter, 0.0),
    (typical_filter, 1.2),
    (typical_filter, math.nan),
]


@pytest.mark.parametrize(("warp", "param"), BAD_CALLS)
def test_bad_warper_parameters_raise_a_one_line_value_error(warp, param):
    """An out-of-range parameter is refused with a one-line message naming it."""
    with pytest.raises(ValueError) as info:
        warp(np.zeros((1, 4), dtype=np.float32), param)
    assert "\n" not in str(info.value)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.floats(max_value=0.0).map(lambda v: {"temperature": v}),
        st.integers(max_value=-1).map(lambda v: {"top_k": v}),
        st.floats(allow_nan=True).filter(lambda v: not 0 < v <= 1).map(lambda v: {"top_p": v}),
        st.floats(allow_nan=True).filter(lambda v: not 0 <= v <= 1).map(lambda v: {"min_p": v}),
        st.floats(allow_nan=True).filter(lambda v: not 0 < v <= 1).map(lambda v: {"typical_p": v}),
    )
)
def test_bad_pipeline_parameters_raise_at_construction(kwargs):
    """A Warpers with any out-of-range parameter cannot even be built."""
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Warpers(**kwargs)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_or_positive_infinite_logits_raise(bad):
    """NaN or +inf logits are refused by every warper and processor, not propagated."""
    x = np.array([[0.0, bad, 1.0]], dtype=np.float32)
    calls = [
        lambda: apply_temperature(x, 0.5),
        lambda: top_k_filter(x, 1),
        lambda: top_p_filter(x, 0.5),
        lambda: min_p_filter(x, 0.1),
        lambda: typical_filter(x, 0.5),
        lambda: repetition_penalty(x, [[0]], 1.2),
        lambda: no_repeat_ngram(x, [[0]], 1),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="NaN"):
            call()


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda x: repetition_penalty(x, [[0]], 0.0), "penalty"),
        (lambda x: repetition_penalty(x, [[0]], -1.2), "penalty"),
        (lambda x: repetition_penalty(x, [[0]], math.nan), "penalty"),
        (lambda x: no_repeat_ngram(x, [[0]], 0), "no_repeat_ngram_size"),
        (lambda x: no_repeat_ngram(x, [[0]], 2.0), "no_repeat_ngram_size"),
        (lambda x: no_repeat_ngram(x, [[0], [1]], 2), "sequences"),
        (lambda x: repetition_penalty(x, [[-1]], 1.2), "token ids"),
        (lambda x: Processors(repetition_penalty=-1.0), "penalty"),
    ],
)
def test_bad_processor_parameters_raise_a_one_line_value_error(call, word):
    """Bad penalties, n-gram sizes and histories are refused in one line."""
    with pytest.raises(ValueError, match=word) as info:
        call(np.zeros((1, 4), dtype=np.float32))
    assert "\n" not in str(info.value)


# --- boundaries hit exactly (dyadic probabilities are exact in float32) ---------------------


def kept(logits: np.ndarray) -> list[bool]:
    return (~np.isneginf(logits)).tolist()


def test_top_p_stops_as_soon_as_the_mass_reaches_p():
    """Mass exactly p is enough: the token below the nucleus goes (HF removes cum <= 1 - p)."""
    assert kept(top_p_filter(np.log([0.25, 0.75]), 0.75)) == [False, True]
    assert kept(top_p_filter(np.log([0.125, 0.375, 0.5]), 0.5)) == [False, False, True]
    assert kept(top_p_filter(np.log([0.125, 0.375, 0.5]), 0.5 + 1e-6)) == [False, True, True]


def test_min_p_keeps_a_token_exactly_at_the_threshold():
    """Probability == p * top probability stays (HF removes only probs < threshold)."""
    assert kept(min_p_filter(np.log([0.25, 0.5, 0.25]), 0.5)) == [True, True, True]
    assert kept(min_p_filter(np.log([0.25, 0.5, 0.25]), 0.5 + 1e-6)) == [False, True, False]


def test_typical_stops_as_soon_as_the_mass_reaches_it():
    """The most typical token (0.75 here) alone reaches mass 0.75, so it alone stays."""
    assert kept(typical_filter(np.log([0.25, 0.75]), 0.75)) == [False, True]
    assert kept(typical_filter(np.log([0.25, 0.75]), 0.75 + 1e-6)) == [True, True]


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 4),
    st.integers(64, 4000),
    st.integers(1, 400),
    st.sampled_from([2, 16, 10**6]),  # how many distinct values: ties from few to none
    st.floats(0.0, 0.5),  # the share of -inf logits
    st.integers(0, 2**32 - 1),
)
def test_the_kth_largest_of_wide_rows_is_the_partitions(rows, vocab, k, levels, neg_inf, seed):
    """kth_largest looks at a sample of each row first (its fast path, for rows of more than
    64 k values); whatever the ties, -inf entries or order, it finds np.partition's value."""
    from decoding.probs import kth_largest

    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, (rows, vocab)).astype(np.float32) / 8
    x[rng.random((rows, vocab)) < neg_inf] = -np.inf
    x[:, 0] = 0.0  # never a whole row of -inf
    expected = np.partition(x, -min(k, vocab), axis=-1)[:, -min(k, vocab), None]
    got = kth_largest(x, k)
    assert got.dtype == x.dtype and got.shape == (rows, 1)
    assert (got == expected).all(), f"k={k}: {got.ravel()} != {expected.ravel()}"
    if rows == 1:  # a 1-D row too, as the warpers' doctests pass it
        assert kth_largest(x[0], k).tolist() == expected[0].tolist()
