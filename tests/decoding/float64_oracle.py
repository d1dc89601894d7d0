"""The float64 oracle: which tokens at a warper's cut may go either way, from first principles.

Two float32 implementations of the same warper (ours in NumPy, Hugging Face's in torch) round
differently: exp, log and sums over 50257 terms are computed by different kernels, in different
orders, and torch picks its kernels by CPU (ATEN_CPU_CAPABILITY default / avx2 / avx512). A token
lying on a top-p, min-p or typical cut can be kept by one side and removed by the other, and no
fixed count of such flips is right on every machine.

So we compute the quantity each warper compares (a cumulative mass, a probability ratio) in
float64, and bound how far ANY float32 computation of it can be from that value, using only
IEEE 754's guarantees and the documented accuracy of the exp and log kernels in play. A token
farther from the threshold than that bound has one right answer on every machine, and both
sides must give it; only a token within the bound may go either way.

The error model (Higham, "Accuracy and Stability of Numerical Algorithms", chapters 2-4):
- one correctly rounded float32 operation (+ - * / sqrt) errs by at most U = 2**-24, relative;
- a sum of n terms of one sign, added in ANY order, errs by at most gamma(n - 1) times their
  sum, gamma(k) = k U / (1 - k U): the order-free worst case (pairwise or blocked summation is
  far better, but which order each side uses depends on the CPU, and we must not);
- exp errs by at most ULPS_EXP ulps and log by ULPS_LOG ulps, one ulp being at most 2 U relative;
- a result below the smallest normal float32 may be flushed to zero: an absolute error of TINY.
First-order terms are summed; products of two relative errors (each below 1e-2 here) add less
than 1 % of the bound, which SECOND_ORDER covers.

The float64 computation itself rounds too, by ~1e-16 per operation: a million times below every
bound here (and exact where it matters: exp(0) = 1, sums of powers of two).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

U = 2.0**-24  # float32 unit roundoff: half the gap between 1 and the next float32
TINY = 2.0**-126  # the smallest normal float32; below it a kernel may flush to zero
# torch's vectorised softmax uses its own polynomial exp, `exp_u20`, documented in its source as
# accurate to 20 ulps; Sleef's exp (torch's other paths) to 1 ulp, NumPy's SIMD float32 exp to
# below 3 ulps. The logs: Sleef 1 ulp, NumPy's SIMD float32 log below 4 ulps.
ULPS_EXP = 20.0
ULPS_LOG = 4.0
SECOND_ORDER = 1.01

KEEP, EITHER, REMOVE = 1, 0, -1  # the float64 verdict for one token
VERDICT_WORDS = {KEEP: "kept", EITHER: "either", REMOVE: "removed"}


def gamma(n: int | np.ndarray) -> float | np.ndarray:
    """Higham's gamma_n = nU / (1 - nU): the relative error bound of n roundings in a row."""
    n = np.maximum(n, 0)
    return n * U / (1.0 - n * U)


# ---------------------------------------------------------------------------------------------
# Softmax in float64, with the error any float32 softmax can have.


@dataclass(frozen=True)
class Softmax64:
    """One row's softmax in float64 over its finite logits, and float32 error bounds for it.

    z = x - max, p = exp(z) / Z, logp = z - log Z; -inf logits are left out (their probability
    is exactly 0 on both sides). `rel_exp[j]` bounds the relative error of a float32 exp(z_j),
    `rel_sum` that of the float32 sum Z, `rel_p` that of every float32 probability.
    """

    x: np.ndarray  # float64 finite logits of the row
    z: np.ndarray
    p: np.ndarray
    logp: np.ndarray
    log_z: float
    rel_exp: np.ndarray
    rel_sum: float
    rel_p: np.ndarray

    @property
    def n(self) -> int:
        return int(self.x.size)

    @classmethod
    def of(cls, finite_logits: np.ndarray) -> Softmax64:
        x = np.asarray(finite_logits, dtype=np.float64)
        z = x - x.max()  # exact: two float32 values differ by a float64 without rounding
        e = np.exp(z)
        log_z = float(np.log(e.sum()))
        p = e / e.sum()
        # exp(z_j): the kernel's own error, plus the rounding of z_j = x_j - max (|dz| <= U|z|)
        # passed through exp (relative U|z|). exp(0) = 1 is exact in every kernel.
        rel_exp = np.where(z == 0.0, 0.0, 2 * ULPS_EXP * U + U * np.abs(z))
        # Z = sum of n exps: each term's own error, plus gamma(n - 1) for adding them.
        rel_sum = float(np.dot(p, rel_exp)) + float(gamma(x.size - 1))
        # p_j = e_j / Z, or e_j * (1 / Z) as torch does it: two more roundings.
        rel_p = rel_exp + rel_sum + 2 * U
        return cls(x, z, p, z - log_z, log_z, rel_exp, rel_sum, rel_p)

    def mass_bound(self, mass: np.ndarray, terms: np.ndarray | int) -> np.ndarray:
        """How far a float32 sum of `terms` float32 probabilities can be from its float64 `mass`.

        Every probability is off by at most max(rel_p) relative; adding `terms` of them (in any
        order, or in a float64 accumulator rounded once, as torch's cumsum does) by gamma(terms);
        each may also have flushed to zero (TINY).
        """
        rel = float(self.rel_p.max()) + gamma(terms)
        return SECOND_ORDER * (rel * np.asarray(mass) + self.n * TINY)


# ---------------------------------------------------------------------------------------------
# Verdicts: for every token of a row, the float64 quantity, the cut, the bound and the decision.


@dataclass(frozen=True)
class Verdict:
    """The float64 decision for each token of one row (in vocabulary order).

    keep[t] is KEEP or REMOVE when |quantity - threshold| exceeds the float32 rounding bound,
    EITHER when the token lies within rounding of the cut. Tokens with logit -inf are REMOVE.
    """

    quantity_name: str
    low: np.ndarray  # float64 quantity (its lowest value, when ties or near-ties give a range)
    high: np.ndarray  # and its highest; nan where the logit is -inf
    threshold: float
    bound: np.ndarray
    keep: np.ndarray


def _full(finite: np.ndarray, values: np.ndarray, fill: float) -> np.ndarray:
    out = np.full(finite.shape, fill, dtype=np.result_type(values, type(fill)))
    out[finite] = values
    return out


def _verdict(name, finite, low, high, threshold, bound, keep) -> Verdict:
    return Verdict(
        name,
        _full(finite, low, np.nan),
        _full(finite, high, np.nan),
        float(threshold),
        _full(finite, bound, 0.0),
        _full(finite, keep.astype(np.int8), np.int8(REMOVE)),
    )


def top_p_verdict(logits_row: np.ndarray, top_p: float) -> Verdict:
    """Top-p removes a token when the mass of the tokens ranked up to it, least likely first,
    is <= 1 - p (float32-rounded on both sides).

    Tokens with equal logits may be ranked in any order (torch's sort is not stable), so a
    token's mass runs from `lo` (first of its ties) to `hi` (last of its ties).
    """
    row = np.asarray(logits_row)
    finite = np.isfinite(row)
    s = Softmax64.of(row[finite])
    cut = float(np.float32(1.0 - top_p))
    order = np.argsort(s.x, kind="stable")
    x_sorted, running = s.x[order], np.cumsum(s.p[order])
    first = np.searchsorted(x_sorted, s.x, side="left")  # where each token's ties begin
    last = np.searchsorted(x_sorted, s.x, side="right")  # and end
    below = np.where(first > 0, running[np.maximum(first - 1, 0)], 0.0)
    lo, hi = below + s.p, running[last - 1]
    bound = s.mass_bound(hi, last)
    keep = np.where(hi + bound <= cut, REMOVE, np.where(lo - bound > cut, KEEP, EITHER))
    return _verdict("mass up to the token", finite, lo, hi, cut, bound, keep)


def _is_power_of_two(value: float) -> bool:
    mantissa, _ = np.frexp(value)
    return value > 0 and mantissa == 0.5


def min_p_verdict(logits_row: np.ndarray, min_p: float) -> Verdict:
    """Min-p removes a token when p < min_p * p_max, i.e. when exp(x - max) < min_p.

    Both sides divide every exp by the same float32 Z, so Z's error cancels in the ratio: what
    is left is the token's exp, its division and the max's (4U), and the product min_p * p_max
    (U, none when min_p is a power of two). A token tied with the max has exactly the max's
    float32 probability on both sides: its ratio is exactly 1.
    """
    row = np.asarray(logits_row)
    finite = np.isfinite(row)
    s = Softmax64.of(row[finite])
    cut = float(np.float32(min_p))
    ratio = np.exp(s.z)
    if cut == 0.0:  # p < 0 is never true: every token stays, on every machine
        return _verdict("p / p_max", finite, ratio, ratio, cut, 0 * ratio, np.full(s.n, KEEP))
    rel_ratio = np.where(s.z == 0.0, 0.0, s.rel_exp + 4 * U)
    product_rounding = 0.0 if _is_power_of_two(cut) else U
    flushed = np.where(s.z == 0.0, 0.0, s.n * TINY)  # p flushed to 0, relative to p_max >= 1/n
    bound = SECOND_ORDER * (ratio * rel_ratio + cut * product_rounding + flushed)
    keep = np.where(ratio + bound < cut, REMOVE, np.where(ratio - bound >= cut, KEEP, EITHER))
    return _verdict("p / p_max", finite, ratio, ratio, cut, bound, keep)


def typical_gaps(s: Softmax64) -> tuple[np.ndarray, np.ndarray]:
    """The surprise gaps g = |-log p - H| in float64, and a bound on any float32 gap's error.

    log p = z - log Z: the rounding of z and of the subtraction (either grouping of x, max and
    log Z: U times their magnitudes), log Z's kernel error (2 ULPS_LOG U |log Z|) and Z's own
    error passed through log (absolute rel_sum). H = -sum p log p over n terms of one sign: each
    term's error from p and log p, one rounding per product, and gamma(n - 1) for the sum.
    """
    a = (
        s.rel_sum
        + 2 * ULPS_LOG * U * abs(s.log_z)
        + U * (np.abs(s.z) + abs(s.x.max()) + abs(s.log_z) + np.abs(s.logp))
    )  # the error of each float32 log p
    entropy = float(-np.dot(s.p, s.logp))
    rel_p = a + 2 * ULPS_EXP * U  # p = exp(log p): log p's error, then exp's own
    entropy_error = (
        np.dot(s.p, np.abs(s.logp) * (rel_p + U) + a)
        + gamma(s.n - 1) * entropy
        + s.n * TINY * np.abs(s.logp).max()
    )
    gaps = np.abs(-s.logp - entropy)
    gap_error = a + entropy_error + U * (np.abs(s.logp) + entropy)
    return gaps, SECOND_ORDER * gap_error


def typical_verdict(logits_row: np.ndarray, mass: float) -> Verdict:
    """Typical keeps a token iff the mass of the tokens strictly more typical (smaller gap) is
    below `mass`: with the cut at the token whose running mass first reaches `mass`, every token
    of gap <= the cut's gap stays (HF's rule, and ours).

    Rounding moves both things: gaps (so a token within gap_error of t may rank on either side
    of it) and masses. `lo` is the mass of tokens certainly more typical than t, `hi` that of
    tokens possibly so; t is certainly kept if hi + bound < mass, certainly removed if
    lo - bound >= mass.
    """
    row = np.asarray(logits_row)
    finite = np.isfinite(row)
    s = Softmax64.of(row[finite])
    cut = float(np.float32(mass))
    gaps, error = typical_gaps(s)
    top, bottom = gaps + error, gaps - error  # the range of each float32 gap
    # lo: tokens whose highest float32 gap is below t's lowest (never t itself)
    by_top = np.argsort(top, kind="stable")
    before = np.searchsorted(top[by_top], bottom, side="left")
    mass_by_top = np.concatenate([[0.0], np.cumsum(s.p[by_top])])
    lo = mass_by_top[before]
    # hi: tokens whose lowest float32 gap is at most t's highest, minus t itself
    by_bottom = np.argsort(bottom, kind="stable")
    upto = np.searchsorted(bottom[by_bottom], top, side="right")
    mass_by_bottom = np.concatenate([[0.0], np.cumsum(s.p[by_bottom])])
    hi = np.maximum(mass_by_bottom[upto] - s.p, 0.0)
    bound = s.mass_bound(hi, np.maximum(upto, 1))
    keep = np.where(hi + bound < cut, KEEP, np.where(lo - bound >= cut, REMOVE, EITHER))
    # (lo = 0 for the most typical token: always kept, HF's min_tokens_to_keep included)
    return _verdict("mass more typical", finite, lo, hi, cut, bound, keep)


# ---------------------------------------------------------------------------------------------
# Judging both sides' outputs against the verdicts, with a report a human can read.


@dataclass
class Tally:
    """What one test saw: rows, tokens within rounding of a cut, flips, and broken verdicts."""

    rows: int = 0
    either: int = 0
    flips: list[str] = field(default_factory=list)  # kept by one side only, within rounding
    broken: list[str] = field(default_factory=list)  # a side contradicting float64's verdict

    def summary(self, what: str) -> str:
        return (
            f"{what}: {self.rows} rows, {self.either} tokens within float32 rounding of the cut, "
            f"{len(self.flips) + len(self.broken)} kept by one side only or against float64; "
            f"{len(self.broken)} verdicts broken"
        )


def describe(verdict: Verdict, token: int, ours: bool, theirs: bool, ok: bool) -> str:
    """One line in the style of llm.c's test_gpt2: what each side did, and what float64 says."""
    low, high = verdict.low[token], verdict.high[token]
    cut, bound = verdict.threshold, verdict.bound[token]
    value = f"{high:.10g}" if low == high else f"{low:.10g}..{high:.10g} (ties)"
    margin = min(abs(low - cut), abs(high - cut)) if not low <= cut <= high else 0.0
    return (
        f"token {token:>5}: ours {'kept' if ours else 'removed'}, HF "
        f"{'kept' if theirs else 'removed'} | float64 {verdict.quantity_name} {value} vs "
        f"cut {cut:.10g}: margin {margin:.3e}, rounding bound {bound:.3e} | "
        f"{'OK' if ok else 'NOT OK'}, float64 says {VERDICT_WORDS[int(verdict.keep[token])]}"
    )


def judge(tally: Tally, logits, ours, theirs, verdict_of, where: str) -> None:
    """Compare our and HF's outputs of one warper, row by row, with the float64 verdicts.

    Kept tokens keep their logit exactly (a cut never changes a value). A token the verdict
    decides must be kept, or removed, by both sides; a flip is allowed only within rounding.
    """
    x, ours, theirs = np.atleast_2d(logits), np.atleast_2d(ours), np.atleast_2d(theirs)
    for row in range(x.shape[0]):
        verdict = verdict_of(x[row])
        ours_kept, hf_kept = ~np.isneginf(ours[row]), ~np.isneginf(theirs[row])
        for side, kept, out in (("ours", ours_kept, ours[row]), ("HF", hf_kept, theirs[row])):
            if not np.array_equal(out[kept], x[row][kept]):
                tally.broken.append(f"{where} row {row}: {side} changed a kept logit")
        wrong = ((verdict.keep == KEEP) & ~(ours_kept & hf_kept)) | (
            (verdict.keep == REMOVE) & (ours_kept | hf_kept)
        )
        tally.rows += 1
        tally.either += int(np.sum(verdict.keep == EITHER))
        for token in np.flatnonzero(wrong | (ours_kept != hf_kept)):
            ok = not wrong[token]
            line = f"{where} row {row}: " + describe(
                verdict, token, ours_kept[token], hf_kept[token], ok
            )
            (tally.flips if ok else tally.broken).append(line)


def assert_verdicts_hold(tally: Tally, what: str, show: int = 5) -> None:
    """Print the tally (and a few allowed flips, so a reader sees what they look like); fail
    with every broken verdict listed."""
    print(tally.summary(what))
    for line in tally.flips[:show]:
        print("  allowed:", line)
    for line in tally.broken[:40]:
        print("  BROKEN: ", line)
    assert not tally.broken, tally.summary(what) + "\n" + "\n".join(tally.broken[:10])
