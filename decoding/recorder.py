"""Filling a Trace while a decoder runs, and doing nothing at all when it was not asked for.

Each decoder holds one trace per prompt: a `Trace` with `trace=True`, else None. Every function
here takes that trace first and returns at once when it is None, so a decoder's loop reads
`record_row(trace, ...)` and never branches on whether it is being watched.

A decoder's `trace` argument is trace=True, or a decoding.recorder.Watch to see the trace while
it is filled: the Watch is handed each Trace the moment the decoder creates it, so another
thread can read the steps recorded so far (a decoder records a step before it asks the model
for the next one). No decoder knows the difference: both are truthy, and new_trace does the rest.
"""

from __future__ import annotations

import numpy as np

from decoding.probs import largest, softmax
from decoding.results import (
    ACCEPTED,
    REJECTED,
    UNCHECKED,
    Beam,
    BeamCandidate,
    Cut,
    DraftedToken,
    Hypothesis,
    ResidualProb,
    Round,
    RowStep,
    Step,
    TokenProb,
    Trace,
)

TOP_N = 20  # candidates recorded per row: enough for a bar chart, small enough to print
RESIDUAL_TOP = 5  # a rejection's residual: its top tokens (and the model's and drafter's top 3)


class Watch:
    """trace=Watch(on_start): trace the run, and call on_start(trace) with each Trace as soon as
    the decoder creates it, before its first step (one per prompt; assisted sampling makes one
    per sample and merges them at the end, so there the decoder returns another Trace).

    >>> seen = []
    >>> new_trace(Watch(seen.append), "greedy search", [1, 2]) is seen[0], seen[0].prompt
    (True, [1, 2])
    """

    def __init__(self, on_start) -> None:
        self.on_start = on_start

    def __bool__(self) -> bool:  # a Watch asks for a trace, as trace=True does
        return True


def new_trace(enabled: bool | Watch, decoder: str, prompt: list[int]) -> Trace | None:
    """A Trace for one prompt's run (handed to `enabled` first when it is a Watch), or None
    when no trace was asked for."""
    if not enabled:
        return None
    trace = Trace(decoder, list(prompt))
    if isinstance(enabled, Watch):
        enabled.on_start(trace)
    return trace


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
    warp_steps: the ScoreSteps the pipeline (or `Warpers.apply`) returned for the whole batch;
                `row` is this sequence's row.
    """
    if trace is None:
        return
    cuts = [Cut(s.name, s.param, s.kept[row], cut_removed(s, row)) for s in warp_steps or []]
    record = top_candidates(index, sequence, softmax(scores), np.exp(model_logp), chosen, cuts)
    if not trace.steps or trace.steps[-1].number != step:
        trace.steps.append(Step(step, []))
    trace.steps[-1].rows.append(record)


def cut_removed(step, row: int) -> list[int] | None:
    """The ids a step removed from `row`, as the step listed them (None: too many to list)."""
    if not step.removed:  # a record made without the list
        return []
    ids = step.removed[row]
    return None if ids is None else list(ids)


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
    steps: list | None = None,
    first_row: int = 0,
) -> None:
    """One beam-search step: a row per beam, the 2K candidates and their fates, the new beams
    and the pool. A beam's bars are exp of its processed log-probs: beam search does not
    renormalise after the processors, so neither does the picture. steps: the pipeline's
    ScoreSteps for the whole batch, in which this prompt's beams start at row first_row."""
    if trace is None:
        return
    rows = []
    for b, beam in enumerate(beams):
        chosen = [token for (cb, token, _) in candidates if cb == b]
        row = first_row + b
        cuts = [Cut(s.name, s.param, s.kept[row], cut_removed(s, row)) for s in steps or []]
        rows.append(top_candidates(b, beam.ids, np.exp(scores[b]), np.exp(model_logp[b]), chosen,
                                   cuts))  # fmt: skip
    ranked = [BeamCandidate(b, t, s, f) for (b, t, s), f in zip(candidates, fates)]
    trace.steps.append(Step(step, rows, ranked, list(live), list(finished)))


def record_round_start(
    trace: Trace | None,
    index: int,
    sequence: list[int],
    drafted: list[int],
    draft_q: list[np.ndarray] | None,
) -> None:
    """A new round of assisted decoding for sample `index`: what the drafter guessed after
    `sequence` (draft_q: the distribution each guess was drawn from; None for certain guesses).
    Every guess starts as UNCHECKED; record_check fills in the ones the model looked at."""
    if trace is None:
        return
    number = 1 + sum(r.index == index for r in trace.rounds)
    tokens = [
        DraftedToken(t, 1.0 if draft_q is None else float(draft_q[i][t]), None, None, None,
                     UNCHECKED)
        for i, t in enumerate(drafted)
    ]  # fmt: skip
    trace.rounds.append(Round(number, index, list(sequence), tokens, None, []))


def record_check(
    trace: Trace | None,
    position: int,
    scores: np.ndarray,
    model_logp: np.ndarray,
    token: int,
    kept: bool,
    uniform: float | None = None,
    q: np.ndarray | None = None,
    residual: np.ndarray | None = None,
) -> None:
    """Position `position` of the current round (row `position` of the model's call): the
    check of the drafted token there, if any, and the token it adds to the text.

    scores:   what the model's p is the softmax of (after processors, and warpers when
              sampling). model_logp: the model's own log-probs.
    kept:     the drafted token was accepted (then `token` is it); else `token` is the bonus.
    uniform:  sampling: the uniform the check drew. q, residual: sampling, after a
              rejection: the drafter's distribution and the residual the bonus was drawn from.
    """
    if trace is None:
        return
    current = trace.rounds[-1]
    p = softmax(scores)
    if position < len(current.drafted):
        guess = current.drafted[position]
        guess.p = float(p[guess.token])
        guess.ratio = guess.p / guess.q
        guess.uniform = None if uniform is None else float(uniform)
        guess.outcome = ACCEPTED if kept else REJECTED
    current.emitted.append(token)
    if kept:
        return
    drawn_from = p if residual is None else residual
    current.bonus = TokenProb(token, float(drawn_from[token]), float(np.exp(model_logp[token])))
    if residual is not None and q is not None:
        rejected = [current.drafted[position].token] if position < len(current.drafted) else []
        current.residual_top = residual_top(p, q, residual, rejected + [token])


def residual_top(
    p: np.ndarray, q: np.ndarray, residual: np.ndarray, also: list[int]
) -> list[ResidualProb]:
    """The residual's RESIDUAL_TOP tokens, the model's and the drafter's top 3 and `also`
    (the rejected and bonus tokens), most probable under p first."""
    tokens = set(also)
    for values, n in [(residual, RESIDUAL_TOP), (p, 3), (q, 3)]:
        tokens |= {t for t in largest(values, n).tolist() if values[t] > 0}
    ranked = sorted(tokens, key=lambda t: (-float(p[t]), -float(q[t]), t))
    return [ResidualProb(t, float(p[t]), float(q[t]), float(residual[t])) for t in ranked]


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
