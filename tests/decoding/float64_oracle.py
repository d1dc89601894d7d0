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


def logp_error(s: Softmax64) -> np.ndarray:
    """A bound on the error of each float32 log p = z - log Z (log_softmax), per token.

    The rounding of z and of the subtraction (in either grouping of x, max and log Z: U times
    their magnitudes), log's kernel error on log Z (2 ULPS_LOG U |log Z|), and Z's own relative
    error passed through log (an absolute rel_sum).
    """
    magnitudes = np.abs(s.z) + abs(s.x.max()) + abs(s.log_z) + np.abs(s.logp)
    return s.rel_sum + 2 * ULPS_LOG * U * abs(s.log_z) + U * magnitudes


def typical_gaps(s: Softmax64) -> tuple[np.ndarray, np.ndarray]:
    """The surprise gaps g = |-log p - H| in float64, and a bound on any float32 gap's error.

    H = -sum p log p over n terms of one sign: each term's error from p (exp of an erring
    log p) and log p, one rounding per product, and gamma(n - 1) for the sum.
    """
    a = logp_error(s)
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


# ---------------------------------------------------------------------------------------------
# Beam search scores: HF's rule, restated, and how far two sides' scores may differ.
#
# HF (generation/utils.py, _beam_search) adds each step's processed log-prob to a float32
# running score, and divides a finished hypothesis' running score by
# (generated length) ** length_penalty, a Python float that torch rounds to float32 before a
# float32 division. Restated here so a test can check each side against it bit for bit: HF's
# recorded numbers (is this really HF's rule?) and our decoder's (do we apply it?).


def running_scores(step_logprobs) -> np.ndarray:
    """The float32 running score after each step: one float32 addition per step."""
    running, out = np.float32(0.0), []
    for value in step_logprobs:
        running = np.float32(running + np.float32(value))
        out.append(running)
    return np.array(out, dtype=np.float32)


def penalised(total: float, length: int, length_penalty: float) -> float:
    """A finished hypothesis' score: float32 total / float32(length ** length_penalty)."""
    return float(np.float32(total) / np.float32(length**length_penalty))


def lse64(logits_row: np.ndarray) -> float:
    """log sum exp of a row of float32 logits, in float64 (-inf entries left out)."""
    x = np.asarray(logits_row, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.max() + np.log(np.exp(x - x.max()).sum()))


def step_bound(our_logits: np.ndarray, token: int, hf_logit: float, hf_lse: float,
               penalty: float = 1.0, sides: int = 2) -> tuple[float, float]:  # fmt: skip
    """(gap, bound) for one step of one hypothesis.

    gap: |exact log p of `token` under our logits - exact log p under HF's|, in float64: what
    the two sides' models disagree on (their forward passes round differently).
    bound: how far the two float32 processed log-probs may then differ: the gap, plus each
    side's log_softmax rounding (logp_error of our row; HF's row equals ours to ~1e-6, so the
    same bound holds for it), times the repetition penalty if it multiplied this log-prob
    (one more rounding on each side). sides=1 when HF's value is the exact one.
    """
    finite = np.isfinite(our_logits)
    s = Softmax64.of(our_logits[finite])
    index = int(np.sum(finite[:token]))  # the token's place among the finite logits
    ours_exact = float(our_logits[token]) - lse64(our_logits)
    gap = abs(ours_exact - (float(hf_logit) - hf_lse))
    error = sides * float(logp_error(s)[index])
    bound = penalty * (gap + error) + (2 * U * penalty * abs(ours_exact) if penalty != 1 else 0)
    return gap, SECOND_ORDER * bound


def score_bound(ours_steps, hf_steps, length: int, length_penalty: float) -> float:
    """How far our finished score may be from HF's, given both sides' step log-probs.

    Each running sum adds the step values' differences, plus one rounding per addition on
    each side (U times the running scores); the division adds one rounding on each side.
    Zero when both sides' step values are identical: the same float32 operations then give
    the same bits.
    """
    ours, theirs = np.asarray(ours_steps, np.float64), np.asarray(hf_steps, np.float64)
    if np.array_equal(ours, theirs):
        return 0.0
    a, b = running_scores(ours).astype(np.float64), running_scores(theirs).astype(np.float64)
    total_gap = np.abs(ours - theirs).sum() + U * (np.abs(a).sum() + np.abs(b).sum())
    d = float(np.float32(length**length_penalty))
    return SECOND_ORDER * (total_gap / d + U * (abs(a[-1]) + abs(b[-1])) / d)


class RecordingSeam:
    """Wraps a next_token_logits callable and keeps every row it answered, by prefix: the
    exact float32 logits our decoder saw at each step (its cache and batching included)."""

    def __init__(self, next_token_logits):
        self.next_token_logits = next_token_logits
        self.rows: dict[tuple[int, ...], np.ndarray] = {}

    def __call__(self, sequences):
        out = np.asarray(self.next_token_logits(sequences), dtype=np.float32)
        for seq, row in zip(sequences, out):
            self.rows[tuple(seq)] = row.copy()
        return out


@dataclass(frozen=True)
class HFStep:
    """What HF's generate said at one step of one returned hypothesis: the processed float32
    log-prob it added to the score, the raw logit of the token, and the float64 log-sum-exp of
    that step's raw logits (together: the exact log-prob under HF's logits)."""

    logprob: float
    logit: float
    lse: float


def our_step_logprob(row: np.ndarray, prefix: list[int], token: int, processors) -> float:
    """The processed log-prob our beam search added for `token`: log_softmax, then processors,
    on the row exactly as the decoder does it (row by row gives the same float32 values)."""
    from decoding import log_softmax  # here: the oracle itself needs no decoder

    return float(processors.apply(log_softmax(row[None]), [list(prefix)])[0, token])


def compare_beam_hypothesis(
    where: str,
    ids: list[int],
    prompt_length: int,
    our_score: float,
    seam: RecordingSeam,
    processors,
    hf_steps: list[HFStep],
    hf_score: float,
    length_penalty: float,
) -> list[str]:
    """Check one finished hypothesis (ids already equal on both sides); return the problems.

    1. HF's recorded score is HF's rule applied to HF's recorded step log-probs, bit for bit.
    2. Our score is the same rule applied to our decoder's step log-probs, bit for bit.
    3. Each step's log-probs differ by no more than step_bound allows.
    4. The scores differ by no more than score_bound allows (0 when the steps agree).
    """
    problems, ours_steps = [], []
    new = ids[prompt_length:]
    penalty = processors.repetition_penalty
    for t, (token, hf) in enumerate(zip(new, hf_steps)):
        prefix = ids[: prompt_length + t]
        row = seam.rows[tuple(prefix)]
        a = our_step_logprob(row, prefix, token, processors)
        ours_steps.append(a)
        factor = penalty if penalty not in (None, 1.0) and token in prefix else 1.0
        gap, bound = step_bound(row, token, hf.logit, hf.lse, factor)
        line = (
            f"{where} step {t + 1} token {token}: ours {a:.9g}, HF {hf.logprob:.9g}, "
            f"|diff| {abs(a - hf.logprob):.2e} <= bound {bound:.2e} (logit gap {gap:.2e})"
        )
        print(line)
        if abs(a - hf.logprob) > bound:
            problems.append("NOT OK " + line)
    length = len(new)
    hf_rule = penalised(running_scores([h.logprob for h in hf_steps])[-1], length, length_penalty)
    our_rule = penalised(running_scores(ours_steps)[-1], length, length_penalty)
    if hf_rule != hf_score:
        problems.append(f"{where}: HF's score {hf_score!r} is not its rule's {hf_rule!r}")
    if our_rule != our_score:
        problems.append(f"{where}: our score {our_score!r} is not the rule's {our_rule!r}")
    bound = score_bound(ours_steps, [h.logprob for h in hf_steps], length, length_penalty)
    line = (
        f"{where} score: ours {our_score:.9g}, HF {hf_score:.9g}, "
        f"|diff| {abs(our_score - hf_score):.2e} <= bound {bound:.2e}"
    )
    print(line)
    if abs(our_score - hf_score) > bound:
        problems.append("NOT OK " + line)
    return problems


def compare_greedy_logprob(
    where: str, ids: list[int], prompt_length: int, our_logprob: float, seam: RecordingSeam,
    hf_steps: list[HFStep],
) -> list[str]:  # fmt: skip
    """Our greedy Hypothesis.logprob (a float64 sum of our float32 model log-probs) against the
    exact log-prob of the same tokens under HF's logits: within the logit gaps plus our
    log_softmax rounding, step by step (float64's own sum is a million times finer)."""
    bound = 0.0
    exact = 0.0
    for t, (token, hf) in enumerate(zip(ids[prompt_length:], hf_steps)):
        row = seam.rows[tuple(ids[: prompt_length + t])]
        bound += step_bound(row, token, hf.logit, hf.lse, sides=1)[1]
        exact += float(hf.logit) - hf.lse
    line = (
        f"{where} logprob: ours {our_logprob:.9g}, exact under HF's logits {exact:.9g}, "
        f"|diff| {abs(our_logprob - exact):.2e} <= bound {bound:.2e}"
    )
    print(line)
    return [] if abs(our_logprob - exact) <= bound else ["NOT OK " + line]
