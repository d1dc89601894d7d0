"""Logits warpers: reshape or cut the next-token distribution before sampling.

Every warper is a pure function: logits [..., V] in, new float32 logits out, the input left
untouched. A removed token gets the logit -inf, so softmax gives it probability 0, and every
warper keeps at least one token per row. The semantics are those of Hugging Face transformers'
Temperature/TopK/TopP/MinP/Typical warpers, down to the float32 rounding that decides the top-p
boundary. Each filter takes HF's `min_tokens_to_keep` (default 1): however hard it cuts, the
`min_tokens_to_keep` most likely tokens of a row stay (HF's generate() passes 2 when it samples
with several beams, so that a beam always has a token besides EOS to go on with).

`Warpers` chains them in the order `generate()` uses:
temperature -> top-k -> top-p -> min-p -> typical.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from decoding.probs import log_softmax, softmax

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
    if np.isnan(x).any() or np.isposinf(x).any():
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


def _kth_largest(x: np.ndarray, k: int) -> np.ndarray:
    """The k-th largest value of each row, shape [..., 1]; k >= V gives the smallest."""
    k = min(k, x.shape[-1])
    return np.partition(x, -k, axis=-1)[..., -k, None]


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
    return np.where(x < _kth_largest(x, k), REMOVED, x)  # k >= V keeps everything


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
    return np.where(x < cutoff, REMOVED, x)


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
        below &= x < _kth_largest(x, keep)
    return np.where(below, REMOVED, x)


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
    return np.where(gap > limit, REMOVED, x)


# ---------------------------------------------------------------------------------------------
# The pipeline.


@dataclass(frozen=True)
class WarpStep:
    """One warper that ran: its name, its parameter, and how many tokens each row kept.

    `kept` has one count per row, leading axes flattened (a [V] input gives one count).
    """

    name: str
    param: float | int
    kept: tuple[int, ...]


# The filters that take min_tokens_to_keep, by the name of their generate() argument.
_FILTERS: dict[str, Callable[[np.ndarray, float, int], np.ndarray]] = {
    "top_k": top_k_filter,
    "top_p": top_p_filter,
    "min_p": min_p_filter,
    "typical_p": typical_filter,
}


def _run_warper(name: str, x: np.ndarray, param: float | int, min_tokens_to_keep: int):
    if name == "temperature":
        return apply_temperature(x, param)
    return _FILTERS[name](x, param, min_tokens_to_keep)


@dataclass(frozen=True)
class Warpers:
    """The sampling warpers of `generate()`, applied in its order.

    A warper that cannot change anything is skipped, as HF skips it: temperature 1.0,
    top_k None or 0 (HF's "off"), top_p None or 1.0, min_p None, typical_p None or 1.0.
    min_tokens_to_keep goes to every filter that takes it (HF: 1, or 2 for beam sampling).

    >>> logits, steps = Warpers(top_k=2).apply(np.array([1.0, 3.0, 2.0]))
    >>> logits.tolist(), [(s.name, s.param, s.kept) for s in steps]
    ([-inf, 3.0, 2.0], [('top_k', 2, (2,))])
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    min_tokens_to_keep: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise a one-line ValueError naming the first bad parameter."""
        _check_temperature(self.temperature)
        _check_min_tokens_to_keep(self.min_tokens_to_keep)
        if self.top_k is not None and self.top_k != 0:
            _check_top_k(self.top_k)
        if self.top_p is not None:
            _check_fraction("top_p", self.top_p)
        if self.min_p is not None:
            _check_fraction("min_p", self.min_p, zero_ok=True)
        if self.typical_p is not None:
            _check_fraction("typical_p", self.typical_p)

    def active(self) -> list[tuple[str, float | int]]:
        """(name, parameter) of the warpers that will run, in order."""
        steps: list[tuple[str, float | int]] = []
        if self.temperature != 1.0:
            steps.append(("temperature", self.temperature))
        if self.top_k is not None and self.top_k != 0:
            steps.append(("top_k", self.top_k))
        if self.top_p is not None and self.top_p < 1.0:
            steps.append(("top_p", self.top_p))
        if self.min_p is not None:
            steps.append(("min_p", self.min_p))
        if self.typical_p is not None and self.typical_p < 1.0:
            steps.append(("typical_p", self.typical_p))
        return steps

    def apply(self, logits: np.ndarray) -> tuple[np.ndarray, list[WarpStep]]:
        """Warped logits [..., V] and one WarpStep per warper that ran."""
        x = as_logits(logits).copy()  # a copy even when no warper runs: never hand back the input
        trace = []
        for name, param in self.active():
            x = _run_warper(name, x, param, self.min_tokens_to_keep)
            kept = tuple(int(n) for n in count_kept(x).reshape(-1))
            trace.append(WarpStep(name, param, kept))
        return x, trace
