"""The float64 oracle for the newer cuts: epsilon, eta and top-H, and min_tokens_to_keep on
the older ones. Same method and error model as float64_oracle.py (read its docstring first):
compute in float64 the quantity each warper compares, bound how far any float32 computation
of it can stray, and call a token KEEP or REMOVE only when it lies farther from the cut than
that bound; within it, EITHER.
"""

from __future__ import annotations

import numpy as np
from float64_oracle import (
    EITHER,
    KEEP,
    REMOVE,
    SECOND_ORDER,
    TINY,
    ULPS_EXP,
    ULPS_LOG,
    Softmax64,
    U,
    Verdict,
    gamma,
    logp_error,
    typical_gaps,
)

TOP_H_CANDIDATES = 100  # HF's TopHLogitsWarper.top_n


def _verdict(name, row, low, high, threshold, bound, keep) -> Verdict:
    """A Verdict over the whole row from values over its finite entries (-inf: REMOVE)."""
    finite = np.isfinite(row)

    def full(values, fill):
        out = np.full(row.shape, fill, dtype=np.result_type(values, type(fill)))
        out[finite] = values
        return out

    return Verdict(
        name,
        full(low, np.nan),
        full(high, np.nan),
        float(threshold),
        full(bound, 0.0),
        full(np.asarray(keep, dtype=np.int8), np.int8(REMOVE)),
    )


def _decide_below(value, bound, cut_low, cut_high):
    """Verdicts for 'removed when value < cut', value known to +-bound, cut within [lo, hi]."""
    return np.where(
        value - bound >= cut_high, KEEP, np.where(value + bound < cut_low, REMOVE, EITHER)
    )


def probability_bound(s: Softmax64) -> np.ndarray:
    """How far a float32 softmax probability can be from float64's (and a flush to zero)."""
    return SECOND_ORDER * (s.rel_p * s.p + s.n * TINY)


def entropy_error(s: Softmax64) -> float:
    """A bound on any float32 H = -sum p log p, p from softmax and log p from log_softmax (as
    torch's Categorical computes it, and our _entropy): each term's error from p and log p,
    one rounding per product, gamma(n - 1) for the sum, flushed probabilities."""
    a = logp_error(s)
    entropy = float(-np.dot(s.p, s.logp))
    terms = np.dot(s.p, np.abs(s.logp) * (s.rel_p + U) + a)
    return SECOND_ORDER * (
        terms + gamma(s.n - 1) * entropy + s.n * TINY * float(np.abs(s.logp).max())
    )


def force_top_logits(verdict: Verdict, row: np.ndarray, keep: int) -> Verdict:
    """min_tokens_to_keep ranked by logit (top-p, min-p; epsilon and eta's exact rule too).

    A token with fewer than `keep` tokens at least as large (itself included) is kept by both
    sides whatever the cut says. A token tied with the keep-th largest may be kept by HF (its
    sort or topk picks some of the ties, in an undefined order) and is kept by us: EITHER,
    unless the cut keeps it anyway.
    """
    if keep <= 1:
        return verdict
    x = np.asarray(row, dtype=np.float64)
    finite = np.isfinite(x)
    ordered = np.sort(x)
    above = x.size - np.searchsorted(ordered, x, side="right")  # tokens strictly larger
    at_least = x.size - np.searchsorted(ordered, x, side="left")  # ... or tied, itself included
    k = verdict.keep.copy()
    certain = finite & (at_least <= keep)
    maybe = finite & (above < keep) & ~certain
    k[certain] = KEEP
    k[maybe & (k == REMOVE)] = EITHER
    return Verdict(verdict.quantity_name, verdict.low, verdict.high, verdict.threshold,
                   verdict.bound, k)  # fmt: skip


def force_exact_top_logits(verdict: Verdict, row: np.ndarray, keep: int) -> Verdict:
    """Epsilon and eta: HF spares every token whose logit is >= the keep-th largest logit, a
    comparison of logits with no rounding and no order: both sides keep exactly those."""
    x = np.asarray(row, dtype=np.float64)
    kth = np.sort(x)[::-1][min(keep, x.size) - 1]
    k = verdict.keep.copy()
    k[np.isfinite(x) & (x >= kth)] = KEEP
    return Verdict(verdict.quantity_name, verdict.low, verdict.high, verdict.threshold,
                   verdict.bound, k)  # fmt: skip


def epsilon_verdict(row: np.ndarray, epsilon: float, keep: int = 1) -> Verdict:
    """Epsilon removes a token when p < float32(epsilon), except the `keep` largest logits."""
    row = np.asarray(row)
    s = Softmax64.of(row[np.isfinite(row)])
    cut = float(np.float32(epsilon))
    bound = probability_bound(s)
    keep_verdict = _decide_below(s.p, bound, cut, cut)
    v = _verdict("p", row, s.p, s.p, cut, bound, keep_verdict)
    return force_exact_top_logits(v, row, keep)


def eta_verdict(row: np.ndarray, epsilon: float, keep: int = 1) -> Verdict:
    """Eta removes a token when p < eta = min(eps, sqrt(eps) exp(-H)), eps = float32(epsilon).

    The float32 eta is within [min(eps, e (1 - r)), min(eps, e (1 + r))], e the float64
    sqrt(eps) exp(-H): r sums H's error (through exp: an absolute error of H is a relative one
    of exp(-H)), exp's kernel, sqrt's and the product's roundings.
    """
    row = np.asarray(row)
    s = Softmax64.of(row[np.isfinite(row)])
    eps = float(np.float32(epsilon))
    entropy = float(-np.dot(s.p, s.logp))
    e = float(np.sqrt(eps) * np.exp(-entropy))
    r = SECOND_ORDER * (entropy_error(s) + 2 * ULPS_EXP * U + 2 * U + U)
    low, high = min(eps, e * (1 - r)), min(eps, e * (1 + r))
    bound = probability_bound(s)
    v = _verdict("p", row, s.p, s.p, min(eps, e), bound, _decide_below(s.p, bound, low, high))
    return force_exact_top_logits(v, row, keep)


def top_h_verdict(row: np.ndarray, top_h: float) -> Verdict:
    """Top-H keeps the most likely of the 100 largest logits while the running sum of -p log p
    (p: their softmax among themselves) is <= top_h * H (H: the entropy of that p).

    Ties: torch.topk orders equal logits in no defined way, so a token's running sum lies
    between `lo` (first of its tie group) and `hi` (last of it), and a tie group cut by the
    100th place may be in or out. The most likely token is always kept (one of them, if tied).
    A probability that may flush to zero in float32 (HF's NaN rule removes it) is EITHER.
    """
    row = np.asarray(row)
    x = np.asarray(row, dtype=np.float64)
    n = min(TOP_H_CANDIDATES, x.size)
    values = np.sort(x)[::-1][:n]  # the candidates' logits, largest first (a multiset)
    finite = np.isfinite(values)
    s = Softmax64.of(values[finite])
    p, logp = s.p, s.logp  # over the finite candidates, largest first
    terms = -p * logp
    running = np.cumsum(terms)
    # each term: p's error, log(p)'s (log of an erring p: its relative error, plus the
    # kernel's), one product; the running sum: the terms' errors so far plus gamma(j) * sum
    term_error = p * np.abs(logp) * (s.rel_p + U) + p * (s.rel_p + 2 * ULPS_LOG * U * np.abs(logp))
    run_error = SECOND_ORDER * (np.cumsum(term_error) + gamma(np.arange(1, p.size + 1)) * running)
    entropy = float(running[-1])
    tau = float(np.float32(top_h)) * entropy
    tau_error = SECOND_ORDER * (float(np.float32(top_h)) * entropy_error(s) + U * tau)
    last_place = p.size  # candidates beyond the finite ones are -inf: never kept
    cut_value = values[n - 1]  # the 100th largest: its ties may fall on either side of the cut

    keep = np.full(x.shape, REMOVE, dtype=np.int8)
    low = np.full(x.shape, np.nan)
    high = np.full(x.shape, np.nan)
    bound = np.zeros(x.shape)
    for t in np.flatnonzero(np.isfinite(x) & (x >= cut_value)):
        first = int(np.sum(values[:last_place] > x[t]))  # its tie group's places
        last = min(int(np.sum(values[:last_place] >= x[t])), last_place) - 1
        lo = (running[first - 1] if first else 0.0) + terms[first]
        hi = running[last]
        err = max(run_error[first], run_error[last])
        low[t], high[t], bound[t] = lo, hi, err + tau_error
        if hi + err <= tau - tau_error:
            verdict = KEEP
        elif lo - err > tau + tau_error:
            verdict = REMOVE
        else:
            verdict = EITHER
        if first == 0:  # the most likely token: kept outright (one of them, if tied)
            verdict = KEEP if last == 0 else max(verdict, EITHER)
        flushed = p[last] * (1 + s.rel_p[last]) < 2 * TINY
        ambiguous_place = x[t] == cut_value and int(np.sum(x >= cut_value)) > n
        if (flushed or ambiguous_place) and verdict == KEEP:
            verdict = EITHER
        keep[t] = verdict
    return Verdict("running -p log p", low, high, tau, bound, keep)


def force_typical_head(verdict: Verdict, row: np.ndarray, keep: int) -> Verdict:
    """min_tokens_to_keep for typical: HF spares the first `keep` tokens of its order by
    surprise gap. A token that at most keep - 1 others can possibly precede (gaps known to
    +-error) is spared on both sides; one that fewer than `keep` others certainly precede may
    be spared by HF's order and is by ours (which keeps every token tied with the keep-th gap):
    EITHER, unless the cut keeps it anyway."""
    if keep <= 1:
        return verdict
    row = np.asarray(row)
    finite = np.isfinite(row)
    gaps, error = typical_gaps(Softmax64.of(row[finite]))
    top, bottom = gaps + error, gaps - error
    possibly_before = np.searchsorted(np.sort(bottom), top, side="right") - 1  # not itself
    certainly_before = np.searchsorted(np.sort(top), bottom, side="left")
    k = verdict.keep.copy()
    sub = k[finite]
    sub[possibly_before < keep] = KEEP
    sub[(certainly_before < keep) & (sub == REMOVE)] = EITHER
    k[finite] = sub
    return Verdict(verdict.quantity_name, verdict.low, verdict.high, verdict.threshold,
                   verdict.bound, k)  # fmt: skip
