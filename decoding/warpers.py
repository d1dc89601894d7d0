"""Logits warpers: reshape or cut the next-token distribution before sampling.

Every warper is a pure function: logits [..., V] in, new float32 logits out, the input left
untouched. A removed token gets the logit -inf, so softmax gives it probability 0, and every
warper keeps at least one token per row. The semantics are those of Hugging Face transformers'
Temperature, TopH, TopK, TopP, MinP, Typical, Epsilon and Eta warpers, down to the float32
rounding that decides the top-p boundary. Every filter but top-H takes HF's
`min_tokens_to_keep` (default 1): however hard it cuts, that many tokens of a row stay (HF's
generate() passes 2 when it samples with several beams, so that a beam always has a token
besides EOS to go on with).

`Warpers` chains them in the order `generate()` uses:
temperature -> top-h -> top-k -> top-p -> min-p -> typical -> epsilon -> eta.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from decoding.probs import kth_largest, log_softmax, softmax

REMOVED = np.float32(-np.inf)  # the logit of a token a warper has cut


# ---------------------------------------------------------------------------------------------
# Input checks: a bad value fails here, in one line, not three functions later as NaNs.


def as_logits(logits: np.ndarray) -> np.ndarray:
    """Logits as a float32 array [..., V]; raise ValueError on NaN, +inf or no vocab axis.

    >>> as_logits([1, 2]).dtype
    dtype('float32')
    """
    x = np.asarray(logits, dtype=np.float32)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"logits must have shape [..., V] with V >= 1, got shape {x.shape}")
    top = x.max() if x.size else np.float32(0)  # NaN if any is NaN: one pass instead of two
    if np.isnan(top) or top == np.inf:
        raise ValueError("logits contain NaN or +inf: check the model output or the processors")
    return x


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_temperature(temperature: float) -> float:
    if not (_is_real(temperature) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature!r} "
            "(for greedy decoding, do not sample)"
        )
    return float(temperature)


def _check_top_k(k: int) -> int:
    if not (isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1):
        raise ValueError(f"top_k must be an integer >= 1, got {k!r}")
    return int(k)


def _check_min_tokens_to_keep(n: int) -> int:
    if not (isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"min_tokens_to_keep must be an integer >= 1, got {n!r}")
    return int(n)


def _check_fraction(name: str, value: float, *, zero_ok: bool = False) -> float:
    """`value` as a float in (0, 1], or [0, 1] when zero_ok; NaN fails every comparison."""
    low_ok = _is_real(value) and (value >= 0 if zero_ok else value > 0)
    if not (low_ok and value <= 1):
        interval = "[0, 1]" if zero_ok else "(0, 1]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------
# Shared pieces.


def removing(x: np.ndarray, remove: np.ndarray) -> np.ndarray:
    """np.where(remove, REMOVED, x) for a `remove` of x's shape: x with those tokens cut.

    Speed: start from a row of REMOVED and copy the kept logits in; on 8 rows of gpt2's
    vocabulary after top-k 50, 0.26 -> 0.09 ms (np.where reads both choices everywhere).

    >>> removing(np.array([1.0, 2.0]), np.array([True, False])).tolist()
    [-inf, 2.0]
    """
    out = np.full_like(x, REMOVED)
    np.copyto(out, x, where=~remove)
    return out


def count_kept(logits: np.ndarray) -> np.ndarray:
    """How many tokens each row still allows (logit > -inf), shape logits.shape[:-1].

    >>> count_kept(np.array([[0.0, -np.inf, 1.0]])).tolist()
    [2]
    """
    return np.sum(np.asarray(logits) > REMOVED, axis=-1)


def _cumsum_like_torch(probs: np.ndarray) -> np.ndarray:
    """Running sums of float32 probabilities, rounded to float32 the way torch's CPU cumsum is.

    torch adds float32 numbers in a float64 accumulator and rounds each partial sum to float32.
    A plain float32 cumsum drifts by an ulp now and then, and an ulp is enough to move a top-p
    boundary, so we reproduce torch's rounding.
    """
    return np.cumsum(probs, axis=-1, dtype=np.float64).astype(np.float32)


def _sort_ascending(values: np.ndarray) -> np.ndarray:
    """Indices that sort each row ascending; stable, so equal values keep their vocab order."""
    return np.argsort(values, axis=-1, kind="stable")


# ---------------------------------------------------------------------------------------------
# The warpers.


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Divide the logits by T: T < 1 sharpens the distribution, T > 1 flattens it.

    >>> apply_temperature(np.array([2.0, -4.0]), 2.0).tolist()
    [1.0, -2.0]
    """
    t = _check_temperature(temperature)
    # Dividing by a float32 scalar keeps the result float32 (a NumPy float64 would promote it).
    return as_logits(logits) / np.float32(t)


def top_k_filter(logits: np.ndarray, k: int, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Keep every token whose logit is >= the k-th largest; ties with it all stay.

    As in HF, min_tokens_to_keep raises k: top_k=1 with min_tokens_to_keep=2 keeps 2.

    >>> top_k_filter(np.array([1.0, 3.0, 2.0, 2.0]), 2).tolist()
    [-inf, 3.0, 2.0, 2.0]
    """
    k = max(_check_top_k(k), _check_min_tokens_to_keep(min_tokens_to_keep))
    x = as_logits(logits)
    return removing(x, x < kth_largest(x, k))  # k >= V keeps everything


def top_p_filter(logits: np.ndarray, p: float, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Nucleus: keep the most likely tokens until their mass reaches p (the crossing one too).

    Like HF: sort ascending, take cumulative float32 probabilities, drop the tokens whose
    cumulative mass is <= 1 - p. Where HF's torch.sort splits tokens with equal logits at the
    boundary (in an order torch leaves undefined), we keep all of them, as top-k does. The
    min_tokens_to_keep most likely tokens stay whatever their mass.

    >>> np.isfinite(top_p_filter(np.log([0.3, 0.1, 0.1, 0.5]), 0.8)).tolist()
    [True, False, False, True]
    >>> np.isfinite(top_p_filter(np.log([0.3, 0.1, 0.1, 0.5]), 0.1, min_tokens_to_keep=2)).tolist()
    [True, False, False, True]
    """
    p = _check_fraction("top_p", p)
    keep = _check_min_tokens_to_keep(min_tokens_to_keep)
    x = as_logits(logits)
    if p == 1.0:
        return x.copy()  # generate() skips top_p=1 (softmax underflow must not cut tokens)
    order = _sort_ascending(x)
    ascending = np.take_along_axis(x, order, axis=-1)
    mass_up_to = _cumsum_like_torch(softmax(ascending))
    # The low tail whose total mass stays <= 1 - p goes. 1 - p is rounded to float32, as
    # torch compares a float32 tensor with a Python float in float32.
    dropped = mass_up_to <= np.float32(1.0 - p)
    dropped[..., -keep:] = False  # the `keep` most likely tokens always stay
    # The cumulative mass only grows, so `dropped` is a prefix: its length indexes the cutoff.
    n_dropped = np.sum(dropped, axis=-1, keepdims=True)
    cutoff = np.take_along_axis(ascending, n_dropped, axis=-1)
    return removing(x, x < cutoff)


def min_p_filter(logits: np.ndarray, p: float, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Keep tokens whose probability is >= p times the top token's probability.

    The min_tokens_to_keep most likely tokens stay too. HF picks them with torch.topk on the
    probabilities, which splits ties in an undefined order; we keep every token whose logit
    ties with the last of them, as top-k does.

    >>> np.isfinite(min_p_filter(np.log([0.5, 0.3, 0.1, 0.1]), 0.5)).tolist()
    [True, True, False, False]
    """
    p = _check_fraction("min_p", p, zero_ok=True)
    keep = _check_min_tokens_to_keep(min_tokens_to_keep)
    x = as_logits(logits)
    probs = softmax(x)
    threshold = np.float32(p) * np.max(probs, axis=-1, keepdims=True)
    # p <= 1, so the top token always passes: at least one token stays.
    below = probs < threshold
    if keep > 1:
        below &= x < kth_largest(x, keep)
    return removing(x, below)


def _surprise_gap(x: np.ndarray) -> np.ndarray:
    """|-log p - H| per token: how far its surprise is from the expected surprise (entropy)."""
    logp = log_softmax(x)
    p = np.exp(logp)
    # 0 * log 0 counts as 0: a removed token adds nothing to the entropy.
    entropy = -np.sum(p * np.where(p > 0, logp, 0), axis=-1, keepdims=True)
    return np.abs(-logp - entropy)


def typical_filter(logits: np.ndarray, mass: float, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Locally typical sampling: keep the tokens whose surprise is closest to the entropy.

    Tokens are ranked by |-log p - H|; the smallest prefix whose mass reaches `mass` stays
    (the crossing token included, and every token tied with it). So do the first
    min_tokens_to_keep tokens of that ranking, which need not be the most likely ones: HF
    keeps the head of its typicality order, not of the probability order.

    >>> np.isfinite(typical_filter(np.log([0.4, 0.3, 0.2, 0.1]), 0.4)).tolist()
    [False, True, True, False]
    >>> probs = np.log([0.4, 0.3, 0.2, 0.1])
    >>> np.isfinite(typical_filter(probs, 0.1, min_tokens_to_keep=3)).tolist()
    [True, True, True, False]
    """
    m = _check_fraction("typical_p", mass)
    keep = _check_min_tokens_to_keep(min_tokens_to_keep)
    x = as_logits(logits)
    if m == 1.0:
        return x.copy()  # generate() skips typical_p=1
    gap = _surprise_gap(x)
    order = _sort_ascending(gap)
    gap_sorted = np.take_along_axis(gap, order, axis=-1)
    mass_up_to = _cumsum_like_torch(softmax(np.take_along_axis(x, order, axis=-1)))
    # Index of the token that brings the mass to `mass` (the last one if rounding never does).
    last = np.sum(mass_up_to < np.float32(m), axis=-1, keepdims=True)
    last = np.minimum(last, x.shape[-1] - 1)
    last = np.maximum(last, min(keep, x.shape[-1]) - 1)  # the first `keep` of the order stay
    limit = np.take_along_axis(gap_sorted, last, axis=-1)
    return removing(x, gap > limit)


def _check_open_fraction(name: str, value: float) -> float:
    """`value` as a float in (0, 1): HF's epsilon and eta warpers refuse 0 and 1 themselves."""
    if not (_is_real(value) and 0 < value < 1):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _entropy(x: np.ndarray) -> np.ndarray:
    """H = -sum p log p of each row, shape [..., 1], float32; 0 log 0 counts as 0.

    Computed as torch.distributions.Categorical(logits=x).entropy() does: log-probs from
    log_softmax, probabilities from softmax, one product each, one sum.
    """
    logp = log_softmax(x)
    p = softmax(x)
    return -np.sum(p * np.where(p > 0, logp, 0), axis=-1, keepdims=True)


def _keep_top(x: np.ndarray, remove: np.ndarray, keep: int) -> np.ndarray:
    """`remove`, except for the `keep` largest logits of each row (and every logit tied with
    the last of them), which HF's epsilon and eta warpers never cut."""
    return removing(x, remove & (x < kth_largest(x, keep)))


def epsilon_cutoff(logits: np.ndarray, epsilon: float, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Epsilon sampling (Hewitt et al. 2022): remove every token with probability < epsilon.

    If that would leave fewer than min_tokens_to_keep tokens, the most likely ones stay.

    >>> np.isfinite(epsilon_cutoff(np.log([0.6, 0.3, 0.08, 0.02]), 0.1)).tolist()
    [True, True, False, False]
    """
    eps = _check_open_fraction("epsilon_cutoff", epsilon)
    keep = _check_min_tokens_to_keep(min_tokens_to_keep)
    x = as_logits(logits)
    # The probabilities are float32 and so is the cut (torch compares with a Python float in
    # float32).
    return _keep_top(x, softmax(x) < np.float32(eps), keep)


def eta_cutoff(logits: np.ndarray, epsilon: float, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Eta sampling (Hewitt et al. 2022): remove tokens with probability < eta, where
    eta = min(epsilon, sqrt(epsilon) * exp(-H)) shrinks as the entropy H of the row grows.

    A flat row (large H) keeps more of its tail than epsilon sampling would: here H = 1.55,
    so eta = 0.094, and the 0.1 token stays where epsilon_cutoff(0.2) cuts at 0.2.

    >>> flat = np.log([0.25, 0.25, 0.25, 0.15, 0.1])
    >>> np.isfinite(eta_cutoff(flat, 0.2)).tolist(), np.isfinite(epsilon_cutoff(flat, 0.2)).tolist()
    ([True, True, True, True, True], [True, True, True, False, False])
    """
    eps = np.float32(_check_open_fraction("eta_cutoff", epsilon))
    keep = _check_min_tokens_to_keep(min_tokens_to_keep)
    x = as_logits(logits)
    # HF holds epsilon as a float32 tensor: sqrt, exp and min all run in float32.
    eta = np.minimum(eps, np.sqrt(eps) * np.exp(-_entropy(x)))
    return _keep_top(x, softmax(x) < eta, keep)


TOP_H_CANDIDATES = 100  # HF's TopHLogitsWarper.top_n: only the 100 most likely tokens compete


def top_h(logits: np.ndarray, top_h: float) -> np.ndarray:
    """Top-H (Potraghloo et al. 2025): the most likely tokens, in order, while their share of
    the entropy stays within top_h times the entropy.

    HF's rule, step by step: take the 100 largest logits (all of them if V < 100) and their
    softmax p among themselves; H = the entropy of that p; keep the tokens, most likely first,
    while the running sum of -p log p is <= top_h * H; the most likely token always stays.
    Where HF's -p log p is 0 * log 0 = NaN (a probability that underflowed to 0), the NaN
    poisons the running sum and that token and all after it go; we do the same. Ties in
    the ranking go to the lower token id (torch.topk leaves their order undefined). HF gives
    this warper no min_tokens_to_keep.

    >>> np.isfinite(top_h(np.log([0.4, 0.3, 0.2, 0.1]), 0.7)).tolist()
    [True, True, False, False]
    """
    if not (_is_real(top_h) and 0 < top_h <= 1):
        raise ValueError(f"top_h must be a number in (0, 1], got {top_h!r}")
    x = as_logits(logits)
    rows = x.reshape(-1, x.shape[-1])
    n = min(TOP_H_CANDIDATES, x.shape[-1])
    order = _sort_ascending(-rows)[:, :n]  # the n largest, largest first, ties by token id
    top = np.take_along_axis(rows, order, axis=-1)
    p = softmax(top)
    with np.errstate(divide="ignore", invalid="ignore"):
        # HF takes log of the probabilities here (not log_softmax): log 0 = -inf, -0 * -inf = NaN
        terms = -p * np.log(p)
    running = _cumsum_like_torch(terms)
    tau = np.float32(top_h) * _entropy(top)  # the entropy as Categorical computes it
    chosen = running <= tau  # NaN compares False
    chosen[:, 0] = True
    keep = np.zeros(rows.shape, dtype=bool)
    np.put_along_axis(keep, order, chosen, axis=-1)
    return removing(rows, ~keep).reshape(x.shape)


# ---------------------------------------------------------------------------------------------
# The chain of warpers, and the record of one step of the scores pipeline.

REMOVED_LISTED = 20  # a step lists the tokens it removed from a row when there are this few


@dataclass(frozen=True)
class ScoreStep:
    """One processor or warper that ran on a batch of scores, for the trace.

    name, param: the generate() argument and its value. kept: how many tokens each row still
    allows after this step. removed: per row, the ids this step itself removed (set to -inf),
    or None for a row where it removed more than REMOVED_LISTED (listing 50000 ids buys a
    reader nothing). Leading axes are flattened: a [V] input is one row.
    """

    name: str
    param: object
    kept: tuple[int, ...]
    removed: tuple[tuple[int, ...] | None, ...] = ()


WarpStep = ScoreStep  # the name Warpers.apply's records had before processors had records too


def score_step(name: str, param: object, before: np.ndarray, after: np.ndarray) -> ScoreStep:
    """The record of a step that turned `before` into `after` (both [..., V]).

    >>> step = score_step("top_k", 1, np.array([1.0, 3.0, 2.0]), np.array([-np.inf, 3.0, -np.inf]))
    >>> step.kept, step.removed
    ((1,), ((0, 2),))
    """
    v = np.asarray(after).shape[-1]
    gone = (np.isneginf(after) & ~np.isneginf(before)).reshape(-1, v)
    counts = gone.sum(axis=-1)
    removed = tuple(
        tuple(np.flatnonzero(row).tolist()) if n <= REMOVED_LISTED else None
        for row, n in zip(gone, counts)
    )
    kept = tuple(int(n) for n in count_kept(after).reshape(-1))
    return ScoreStep(name, param, kept, removed)


# The filters that take min_tokens_to_keep, by the name of their generate() argument.
_FILTERS: dict[str, Callable[[np.ndarray, float, int], np.ndarray]] = {
    "top_k": top_k_filter,
    "top_p": top_p_filter,
    "min_p": min_p_filter,
    "typical_p": typical_filter,
    "epsilon_cutoff": epsilon_cutoff,
    "eta_cutoff": eta_cutoff,
}


def _run_warper(name: str, x: np.ndarray, param: float | int, min_tokens_to_keep: int):
    if name == "temperature":
        return apply_temperature(x, param)
    if name == "top_h":
        return top_h(x, param)  # HF passes top-H no min_tokens_to_keep
    return _FILTERS[name](x, param, min_tokens_to_keep)


def _is_off_cutoff(value: float | None) -> bool:
    return value is None or value == 0.0  # generate()'s default for both cutoffs is 0.0: off


@dataclass(frozen=True)
class Warpers:
    """The sampling warpers of `generate()`, applied in its order: temperature, top-h, top-k,
    top-p, min-p, typical, epsilon, eta.

    A warper that cannot change anything is skipped, as HF skips it: temperature 1.0,
    top_k None or 0 (HF's "off"), top_p None or 1.0, min_p None, typical_p None or 1.0,
    epsilon_cutoff and eta_cutoff None or 0.0, top_h None.
    min_tokens_to_keep goes to every filter that takes it (HF: 1, or 2 for beam sampling).

    >>> logits, steps = Warpers(top_k=2).apply(np.array([1.0, 3.0, 2.0]))
    >>> logits.tolist(), [(s.name, s.param, s.kept) for s in steps]
    ([-inf, 3.0, 2.0], [('top_k', 2, (2,))])
    """

    temperature: float = 1.0
    top_h: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    epsilon_cutoff: float | None = None
    eta_cutoff: float | None = None
    min_tokens_to_keep: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise a one-line ValueError naming the first bad parameter."""
        _check_temperature(self.temperature)
        _check_min_tokens_to_keep(self.min_tokens_to_keep)
        if self.top_h is not None and not (_is_real(self.top_h) and 0 < self.top_h <= 1):
            raise ValueError(f"top_h must be a number in (0, 1], got {self.top_h!r}")
        if self.top_k is not None and self.top_k != 0:
            _check_top_k(self.top_k)
        if self.top_p is not None:
            _check_fraction("top_p", self.top_p)
        if self.min_p is not None:
            _check_fraction("min_p", self.min_p, zero_ok=True)
        if self.typical_p is not None:
            _check_fraction("typical_p", self.typical_p)
        for name in ("epsilon_cutoff", "eta_cutoff"):
            value = getattr(self, name)
            if not _is_off_cutoff(value):
                _check_open_fraction(name, value)

    def active(self) -> list[tuple[str, float | int]]:
        """(name, parameter) of the warpers that will run, in order."""
        steps: list[tuple[str, float | int]] = []
        if self.temperature != 1.0:
            steps.append(("temperature", self.temperature))
        if self.top_h is not None:
            steps.append(("top_h", self.top_h))  # HF runs it even at 1.0
        if self.top_k is not None and self.top_k != 0:
            steps.append(("top_k", self.top_k))
        if self.top_p is not None and self.top_p < 1.0:
            steps.append(("top_p", self.top_p))
        if self.min_p is not None:
            steps.append(("min_p", self.min_p))
        if self.typical_p is not None and self.typical_p < 1.0:
            steps.append(("typical_p", self.typical_p))
        for name in ("epsilon_cutoff", "eta_cutoff"):
            if not _is_off_cutoff(getattr(self, name)):
                steps.append((name, getattr(self, name)))
        return steps

    def step(self, name: str, param: float | int, logits: np.ndarray) -> np.ndarray:
        """One of the active warpers, `name` with `param`, on logits [..., V]."""
        return _run_warper(name, as_logits(logits), param, self.min_tokens_to_keep)

    def apply(self, logits: np.ndarray) -> tuple[np.ndarray, list[ScoreStep]]:
        """Warped logits [..., V] and one ScoreStep per warper that ran."""
        x = as_logits(logits).copy()  # a copy even when no warper runs: never hand back the input
        trace = []
        for name, param in self.active():
            before, x = x, self.step(name, param, x)
            trace.append(score_step(name, param, before, x))
        return x, trace
