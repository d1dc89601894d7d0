"""Filling a Trace while a decoder runs, and doing nothing at all when it was not asked for.

Each decoder holds one trace per prompt: a `Trace` with `trace=True`, else None. Every function
here takes that trace first and returns at once when it is None, so a decoder's loop reads
`record_row(trace, ...)` and never branches on whether it is being watched.
"""

from __future__ import annotations

import numpy as np

from decoding.probs import largest, softmax
from decoding.results import Beam, BeamCandidate, Cut, Hypothesis, RowStep, Step, TokenProb, Trace

TOP_N = 20  # candidates recorded per row: enough for a bar chart, small enough to print


def new_trace(enabled: bool, decoder: str, prompt: list[int]) -> Trace | None:
    """A Trace for one prompt's run, or None when no trace was asked for."""
    return Trace(decoder, list(prompt)) if enabled else None


def record_row(
    trace: Trace | None,
    step: int,
    index: int,
    sequence: list[int],
    scores: np.ndarray,
    model_logp: np.ndarray,
    chosen: list[int],
    warp_steps: list | None = None,
    row: int = 0,
) -> None:
    """One sequence's part of step `step`: the distribution it chose from and what it chose.

    scores:     the logits it chose from (after processors, and after warpers when sampling);
                their softmax is each bar's `prob`. model_logp: the model's own log-probs.
    warp_steps: what `Warpers.apply` returned for the whole batch; `row` is this sequence's row.
    """
    if trace is None:
        return
    cuts = [Cut(s.name, s.param, s.kept[row]) for s in warp_steps or []]
    record = top_candidates(index, sequence, softmax(scores), np.exp(model_logp), chosen, cuts)
    if not trace.steps or trace.steps[-1].number != step:
        trace.steps.append(Step(step, []))
    trace.steps[-1].rows.append(record)


def record_beam_step(
    trace: Trace | None,
    step: int,
    beams: list[Beam],
    scores: np.ndarray,
    model_logp: np.ndarray,
    candidates: list[tuple[int, int, float]],
    fates: list[str],
    live: list[Beam],
    finished: list[Hypothesis],
) -> None:
    """One beam-search step: a row per beam, the 2K candidates and their fates, the new beams
    and the pool. A beam's bars are exp of its processed log-probs: beam search does not
    renormalise after the processors, so neither does the picture."""
    if trace is None:
        return
    rows = []
    for b, beam in enumerate(beams):
        chosen = [token for (cb, token, _) in candidates if cb == b]
        rows.append(top_candidates(b, beam.ids, np.exp(scores[b]), np.exp(model_logp[b]), chosen))
    ranked = [BeamCandidate(b, t, s, f) for (b, t, s), f in zip(candidates, fates)]
    trace.steps.append(Step(step, rows, ranked, list(live), list(finished)))


def record_stop(trace: Trace | None, reason: str) -> None:
    if trace is not None:
        trace.stop_reason = reason


def top_candidates(
    index: int,
    sequence: list[int],
    probs: np.ndarray,
    model_probs: np.ndarray,
    chosen: list[int],
    cuts: list[Cut] | None = None,
) -> RowStep:
    """A row's TOP_N tokens by `probs` (ties by token id), plus the chosen ones.

    When fewer than TOP_N tokens survive the warpers, the rest of the bars are the removed
    tokens the model liked best, so a chart shows where the top-k / top-p cutoff fell.
    """
    survivors = int(np.count_nonzero(probs > 0))
    tokens = largest(probs, min(TOP_N, survivors)).tolist()
    if len(tokens) < TOP_N:
        removed = np.where(probs > 0, -np.inf, model_probs)
        tokens += largest(removed, min(TOP_N, len(probs)) - len(tokens)).tolist()
    tokens += [t for t in chosen if t not in tokens]
    candidates = [TokenProb(t, float(probs[t]), float(model_probs[t])) for t in tokens]
    return RowStep(index, list(sequence), candidates, list(chosen), cuts or [])
