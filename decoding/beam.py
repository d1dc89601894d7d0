"""Beam search, exactly as Hugging Face `generate(num_beams=K)` does it.

Greedy search keeps one sequence; beam search keeps the K best partial sequences ("beams")
across the whole frontier and prunes the rest at every step:

    beams    = [prompt]                       (one live beam, score 0)
    finished = []                             (at most K finished hypotheses, best first)
    for step = 1, 2, ..., max_new_tokens:
        extend every live beam by every token: score = beam score + log p(token | beam)
        take the 2K best extensions over all beams, best first, and walk them:
            ends with EOS (or step == max_new_tokens)?
                among the first K: finished, scored  score / step ** length_penalty
                later:             dropped
            otherwise: a live beam for the next step, until there are K of them
        keep the K best finished hypotheses
        stop when no live beam can still beat them (see `can_still_improve`)
    return the best num_return_sequences finished hypotheses

Why 2K: even if K of the candidates end with EOS, K others remain to continue the search.
Processors (repetition penalty, no-repeat-ngram, ...) act on the log-probs, which are not
renormalised afterwards (unless renormalize_logits): a beam's score is the sum of these
processed log-probs. A candidate that completes a stop string finishes as one ending with
EOS does; once max_time has run out, every candidate of that step finishes (HF's stopping
criteria mark candidates, not beams).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from decoding.common import (
    NextTokenLogits,
    as_prompts,
    ask_model,
    check_context,
    check_eos,
    check_positive_int,
    check_vocab,
)
from decoding.outputs import StepOutputs
from decoding.pipeline import Pipeline
from decoding.probs import largest, log_softmax
from decoding.recorder import new_trace, record_beam_step, record_stop
from decoding.results import (
    FINISHED,
    LIVE,
    NOT_KEPT,
    SPARE,
    TOO_LATE,
    Beam,
    Decoded,
    Hypothesis,
    Trace,
)
from decoding.stopping import MaxTime, Stopping, TokenStrings

# HF's score for "no hypothesis here yet": while the finished pool has an empty slot, a live
# beam is compared with this number, so it can always still improve the result.
EMPTY_SLOT_SCORE = -1.0e9


@dataclass(frozen=True)
class BeamRules:
    """The checked parameters of one beam search."""

    num_beams: int
    max_new_tokens: int
    length_penalty: float
    early_stopping: bool | str
    eos_token_id: int | None


@dataclass
class BeamState:
    """One prompt's search in progress: what you look at when you stop at a breakpoint."""

    prompt: list[int]
    beams: list[Beam]  # live beams, best first, at most K
    finished: list[Hypothesis]  # the pool: best first, at most K
    stop_reason: str = ""  # "" while the search runs
    trace: Trace | None = None


def check_beam_params(
    num_beams: object, num_return_sequences: object, length_penalty: object, early_stopping: object
) -> None:
    """One-line ValueErrors for the parameters that only beam search has."""
    k = check_positive_int("num_beams", num_beams)
    n = check_positive_int("num_return_sequences", num_return_sequences)
    if n > k:
        raise ValueError(f"num_return_sequences ({n}) must be <= num_beams ({k})")
    ok = isinstance(length_penalty, (int, float, np.floating)) and not isinstance(
        length_penalty, bool
    )
    if not (ok and np.isfinite(length_penalty)):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty!r}")
    if not (early_stopping is True or early_stopping is False or early_stopping == "never"):
        raise ValueError(f'early_stopping must be True, False or "never", got {early_stopping!r}')


def check_rules(
    num_beams, num_return_sequences, length_penalty, early_stopping, max_new_tokens, eos_token_id
) -> BeamRules:
    """The checked BeamRules, or a one-line ValueError naming the first bad parameter."""
    check_beam_params(num_beams, num_return_sequences, length_penalty, early_stopping)
    return BeamRules(
        num_beams=int(num_beams),
        max_new_tokens=check_positive_int("max_new_tokens", max_new_tokens),
        length_penalty=float(length_penalty),
        early_stopping=early_stopping,
        eos_token_id=check_eos(eos_token_id),
    )


def length_penalised(score: float, generated_length: int, length_penalty: float) -> float:
    """score / generated_length ** length_penalty, computed in float32 as HF does.

    HF divides a float32 tensor by a Python float, which torch rounds to float32 first.
    length_penalty 1 gives the mean log-prob, 0 the raw sum; > 0 favours longer sequences.

    >>> length_penalised(-6.0, 3, 1.0), length_penalised(-6.0, 3, 0.0)
    (-2.0, -6.0)
    """
    return float(np.float32(score) / np.float32(generated_length**length_penalty))


def top_candidates(beams: list[Beam], scores: np.ndarray, n: int) -> list[tuple[int, int, float]]:
    """The n best (beam index, token, cumulative score) extensions over all beams, best first.

    scores [len(beams), V] are this step's processed log-probs. Ties go to the lower beam
    index, then the lower token id. Banned tokens (-inf) are never candidates: their whole
    subtree is -inf, which HF's pool would never take either.
    """
    running = np.array([b.score for b in beams], dtype=np.float32)
    totals = (running[:, None] + scores).ravel()  # float32, as HF accumulates
    best = largest(totals, min(n, int(np.sum(totals > -np.inf))))
    vocab_size = scores.shape[1]
    return [(int(i // vocab_size), int(i % vocab_size), float(totals[i])) for i in best]


def keep_best(finished: list[Hypothesis], new: list[Hypothesis], k: int) -> list[Hypothesis]:
    """The k best of the pool and the newcomers by score; on a tie the older one stays ahead."""
    merged = sorted(finished + new, key=lambda h: -h.score)  # sorted() is stable
    return merged[:k]


def can_still_improve(state: BeamState, step: int, rules: BeamRules) -> bool:
    """HF's test of whether the best live beam could still beat the worst finished hypothesis.

    The best live beam's score is divided by a length to the power length_penalty:
    - early_stopping False (the default), or "never" with length_penalty <= 0: the CURRENT
      generated length. A heuristic: with length_penalty > 0 a beam that grows longer can
      still improve its penalised score, so the search may stop before the true optimum.
    - "never" with length_penalty > 0: max_new_tokens, the best the beam could ever reach.
    HF keeps this heuristic for backward compatibility; we match it.
    """
    if rules.early_stopping == "never" and rules.length_penalty > 0:
        length = rules.max_new_tokens
    else:
        length = step
    best_possible = length_penalised(state.beams[0].score, length, rules.length_penalty)
    if len(state.finished) < rules.num_beams:
        worst_finished = EMPTY_SLOT_SCORE
    else:
        worst_finished = state.finished[-1].score
    return best_possible > worst_finished


def why_stop(state: BeamState, step: int, rules: BeamRules, time_is_up: bool = False) -> str:
    """The reason this search is over after `step`, or "" if it goes on."""
    if step == rules.max_new_tokens:
        return "reached max_new_tokens"
    if time_is_up:
        return "reached max_time"
    if not state.beams:
        return "no live beam left (every continuation was banned)"
    if rules.early_stopping is True and len(state.finished) == rules.num_beams:
        return "early_stopping=True and num_beams hypotheses are finished"
    if not can_still_improve(state, step, rules):
        return "no live beam can beat the finished hypotheses"
    return ""


def extend(parent: Beam, b: int, token: int, total: float, scores, model_logp) -> Beam:
    """Beam b of this step extended by `token`, its cumulative score now `total`; the
    per-token lists grow by the model's log-prob, the score it was ranked by and b."""
    return Beam(
        parent.ids + [token],
        total,
        parent.logprob + float(model_logp[b, token]),
        parent.token_logprobs + [float(model_logp[b, token])],
        parent.transition_scores + [float(scores[b, token])],
        parent.beam_indices + [b],
    )


def finish(beam: Beam, prompt_length: int, step: int, rules: BeamRules) -> Hypothesis:
    """A finished hypothesis, scored sum of its log-probs / generated_length ** penalty."""
    score = length_penalised(beam.score, step, rules.length_penalty)
    return Hypothesis(beam.ids, prompt_length, beam.logprob, score, beam.token_logprobs,
                      beam.transition_scores, beam.beam_indices)  # fmt: skip


def advance(
    state: BeamState,
    scores: np.ndarray,
    model_logp: np.ndarray,
    step: int,
    rules: BeamRules,
    candidates: list[tuple[int, int, float]],
    stopping: Stopping | None = None,
    time_is_up: bool = False,
    steps: tuple[list, int] = ([], 0),
) -> None:
    """One step of one prompt's search; `scores` and `model_logp` have one row per live beam,
    `candidates` are the 2K (beam, token, cumulative score) it ranked, best first. A candidate
    that meets a stopping criterion (a stop string; max_time: all of them) ends as EOS does."""
    k = rules.num_beams
    live: list[Beam] = []
    offered: list[tuple[int, Hypothesis]] = []  # (rank among the candidates, hypothesis)
    fates = []
    for rank, (b, token, total) in enumerate(candidates):
        child = extend(state.beams[b], b, token, total, scores, model_logp)
        ends = token == rules.eos_token_id or step == rules.max_new_tokens or time_is_up
        if ends or (stopping is not None and stopping.ends_with_stop_string(child.ids)):
            # At the last step every candidate finishes, EOS or not. Only the first K may:
            # the others were kept as spares for the live beams, and HF never lets a spare
            # become a hypothesis.
            if rank < k:
                offered.append((rank, finish(child, len(state.prompt), step, rules)))
                fates.append(FINISHED)
            else:
                fates.append(TOO_LATE)
        elif len(live) < k:
            live.append(child)
            fates.append(LIVE)
        else:
            fates.append(SPARE)

    state.finished = keep_best(state.finished, [h for _, h in offered], k)
    for rank, hypothesis in offered:
        if not any(h is hypothesis for h in state.finished):
            fates[rank] = NOT_KEPT
    record_beam_step(state.trace, step, state.beams, scores, model_logp, candidates, fates, live,
                     state.finished, *steps)  # fmt: skip
    state.beams = live
    state.stop_reason = why_stop(state, step, rules, time_is_up)


# How a step's candidates are chosen: (live beams, their scores [beams, V], how many) -> the
# (beam, token, cumulative score) list, best first. Beam search takes the best; beam sampling
# (beam_sampling.py) draws them.
PickCandidates = Callable[[list[Beam], np.ndarray, int], list[tuple[int, int, float]]]


def run_search(
    next_token_logits: NextTokenLogits,
    batch: list[list[int]],
    rules: BeamRules,
    pipeline: Pipeline,
    pick: PickCandidates,
    decoder: str,
    trace: bool,
    outputs: StepOutputs,
    stopping: Stopping,
) -> list[BeamState]:
    """The loop both beam decoders share: ask the model for every live beam of every prompt
    in one call, turn the logits into log-probs, run the pipeline on them (processors, and
    for beam sampling the warpers), pick candidates, advance each prompt. Returns each
    prompt's final state."""
    # The search starts from ONE live beam, the prompt. (HF starts from K copies of it, all but
    # the first scored -1e9 so they never win; they only differ from us when the vocabulary is
    # too small to fill 2K candidates, and then they return as placeholder hypotheses.)
    states = [
        BeamState(p, [Beam(list(p), 0.0, 0.0)], [], trace=new_trace(trace, decoder, p))
        for p in batch
    ]
    vocab_size = None

    for step in range(1, rules.max_new_tokens + 1):
        running = [(i, s) for i, s in enumerate(states) if not s.stop_reason]
        if not running:
            break
        sequences = [beam.ids for _, s in running for beam in s.beams]
        logits = ask_model(next_token_logits, sequences, vocab_size)
        if vocab_size is None:
            vocab_size = logits.shape[1]
            check_vocab(vocab_size, batch, rules.eos_token_id)
        model_logp = log_softmax(logits)
        # Beam search processes (and beam sampling warps) LOG-PROBS, not logits, as HF does.
        prompt_lengths = [len(s.prompt) for _, s in running for _ in s.beams]
        # A beam whose every continuation is banned keeps a row of -inf: it has no candidate.
        scores, steps = pipeline.apply(
            model_logp, sequences, prompt_lengths=prompt_lengths, eos_token_id=rules.eos_token_id,
            dead_rows_ok=True, record=bool(trace),
        )  # fmt: skip
        time_is_up = stopping.time_is_up()  # once per step, for every candidate
        start = 0
        for i, s in running:
            rows = slice(start, start + len(s.beams))
            outputs.record(i, list(range(len(s.beams))), scores[rows], logits[rows])
            candidates = pick(s.beams, scores[rows], 2 * rules.num_beams)
            advance(s, scores[rows], model_logp[rows], step, rules, candidates, stopping,
                    time_is_up, (steps, start))  # fmt: skip
            start = rows.stop
    return states


def results_of(
    states: list[BeamState], num_return_sequences: int, outputs: StepOutputs
) -> list[Decoded]:
    """Each prompt's best num_return_sequences hypotheses, with its trace and outputs."""
    results = []
    for i, s in enumerate(states):
        record_stop(s.trace, s.stop_reason)
        hypotheses = s.finished[:num_return_sequences]
        results.append(Decoded(s.prompt, hypotheses, s.trace, **outputs.of(i)))
    return results


def beam_search(
    next_token_logits: NextTokenLogits,
    prompts: list[int] | list[list[int]],
    *,
    num_beams: int,
    max_new_tokens: int,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    num_return_sequences: int = 1,
    eos_token_id: int | None = None,
    stop_strings: str | list[str] | None = None,
    token_strings: TokenStrings | None = None,
    max_time: float | MaxTime | None = None,
    trace: bool = False,
    output_scores: bool = False,
    output_logits: bool = False,
    **processing,
) -> list[Decoded]:
    """The `num_return_sequences` best hypotheses of each prompt, best score first.

    Equal to HF `generate(num_beams=..., do_sample=False)` with the same parameters: each
    Hypothesis.score is HF's `sequences_scores` entry, its beam_indices HF's row of
    `beam_indices`. The live beams of every prompt go to the model in one call per step.
    Fewer than num_return_sequences come back only when the vocabulary is too small to fill
    the pool (HF would pad with placeholder sequences). output_scores / output_logits keep each
    step's processed log-probs / raw logits, K rows (beam slots) per step, in Decoded.scores /
    Decoded.logits. **processing, stop_strings, token_strings and max_time: as in
    greedy_search; a candidate completing a stop string finishes as an EOS one does.

    >>> table = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]]))
    >>> bigram = lambda seqs: table[[s[-1] for s in seqs]]
    >>> [h.ids for h in beam_search(bigram, [1], num_beams=2, max_new_tokens=3, eos_token_id=0,
    ...                              num_return_sequences=2)[0].hypotheses]
    [[1, 0], [1, 2, 2, 2]]
    """
    batch = as_prompts(prompts)
    rules = check_rules(num_beams, num_return_sequences, length_penalty, early_stopping,
                        max_new_tokens, eos_token_id)  # fmt: skip
    check_context(next_token_logits, batch, rules.max_new_tokens)
    pipeline = Pipeline.of(None, **processing)
    stopping = Stopping.of(stop_strings, token_strings, max_time)
    outputs = StepOutputs(len(batch), rules.num_beams, output_scores, output_logits)
    states = run_search(next_token_logits, batch, rules, pipeline, top_candidates,
                        "beam search", trace, outputs, stopping)  # fmt: skip
    return results_of(states, num_return_sequences, outputs)
