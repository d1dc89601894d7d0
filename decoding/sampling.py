"""Sampling: draw each next token at random from the (reshaped) model distribution.

    sequence = prompt
    repeat max_new_tokens times:
        logits = model(sequence)
        logits = processors(logits, sequence)    # decoding/pipeline.py: repetition penalty, ...
        logits = warpers(logits)                 # temperature, top-h, top-k, top-p, ...
        token  = draw from softmax(logits)
        sequence.append(token); stop if token is EOS (or a stop string, or max_time)

The randomness comes only from the `np.random.Generator` you pass in, so the same seed gives
the same text. HF draws with torch.multinomial; we draw with the inverse CDF of NumPy's
uniform numbers: a different random stream, the same distribution.
"""

from __future__ import annotations

import numpy as np

from decoding.common import (
    NextTokenLogits,
    OnToken,
    as_prompts,
    check_context,
    check_eos,
    check_positive_int,
    check_rng,
    processed_logits,
)
from decoding.outputs import StepOutputs
from decoding.pipeline import Pipeline
from decoding.probs import log_softmax
from decoding.recorder import new_trace, record_row, record_stop
from decoding.results import Decoded, Hypothesis
from decoding.stopping import MAX_TIME, STOP_STRING, MaxTime, Stopping, TokenStrings
from decoding.warpers import Warpers


def draw(probs: np.ndarray, u: float) -> int:
    """Inverse-CDF draw: the first token whose cumulative probability exceeds u * total.

    u is uniform in [0, 1). A token of probability 0 adds nothing to the running sum, so it
    can never be the first to exceed it: removed tokens are never drawn.

    >>> draw(np.array([0.25, 0.0, 0.75]), 0.1), draw(np.array([0.25, 0.0, 0.75]), 0.3)
    (0, 2)
    """
    # After top-k or top-p, a few dozen of 50257. Speed: `probs > 0` (a bool array) finds them
    # 12x faster than np.flatnonzero(probs) on float32 (120 -> 10 us a row of gpt2's vocab).
    possible = np.nonzero(probs > 0)[0]
    # Summing only them gives the same running sums: adding a 0.0 changes no float.
    return int(possible[_first_exceeding(probs[possible], u)])


def draw_from_scores(scores: np.ndarray, u: float) -> int:
    """draw(softmax(scores), u), taking the exp of the tokens left (score > -inf) only.

    The same token as draw(softmax(scores), u), up to float rounding at a boundary: the draw
    compares running sums with u * their total, so the weights need no normalising, and a
    removed token has weight 0 either way. Speed: after top-k 50 that is 50 exps a row, not
    50257 (the decoder's own work on a step of 8 rows of gpt2's vocabulary: 2.7 -> 1.9 ms).

    >>> draw_from_scores(np.array([np.log(0.25), -np.inf, np.log(0.75)]), 0.3)
    2
    """
    possible = np.nonzero(scores > -np.inf)[0]
    kept = scores[possible]
    weights = np.exp(kept - kept.max())  # the top token's weight is exp(0): no overflow
    return int(possible[_first_exceeding(weights, u)])


def _first_exceeding(weights: np.ndarray, u: float) -> int:
    """The index of the first weight whose running sum exceeds u * the total (float64 sums)."""
    cdf = np.cumsum(weights, dtype=np.float64)
    i = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    # u * total can round up to total itself; then the answer is the last weight.
    return min(i, len(weights) - 1)


def sample(
    next_token_logits: NextTokenLogits,
    prompts: list[int] | list[list[int]],
    *,
    rng: np.random.Generator,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_h: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    typical_p: float | None = None,
    epsilon_cutoff: float | None = None,
    eta_cutoff: float | None = None,
    num_return_sequences: int = 1,
    eos_token_id: int | None = None,
    stop_strings: str | list[str] | None = None,
    token_strings: TokenStrings | None = None,
    max_time: float | MaxTime | None = None,
    trace: bool = False,
    on_token: OnToken | None = None,
    output_scores: bool = False,
    output_logits: bool = False,
    **processing,
) -> list[Decoded]:
    """Draw `num_return_sequences` independent continuations of each prompt.

    Each sample stops at EOS (kept) or after `max_new_tokens`. Parameters mean what they mean
    in HF `generate(do_sample=True)`, but nothing is on by default (HF's config turns on
    top_k=50). Each step draws one uniform number per live sample from `rng`, prompts in order
    and samples in order within a prompt, so a seeded run reproduces exactly.
    `on_token(r, token)` is called as soon as row r draws its next token, where row r is
    sample r % num_return_sequences of prompt r // num_return_sequences (for streaming).
    output_scores / output_logits keep each step's warped / raw logits, one row per sample, in
    Decoded.scores / Decoded.logits (HF's scores of sampling are after processors AND warpers).
    **processing, stop_strings, token_strings and max_time: as in greedy_search (the
    processors run before the warpers, renormalize_logits after them).

    >>> fixed = lambda seqs: np.tile(np.log([0.1, 0.2, 0.7]), (len(seqs), 1))
    >>> run = lambda seed: sample(fixed, [0], rng=np.random.default_rng(seed), max_new_tokens=4)
    >>> run(7)[0].best.new_ids == run(7)[0].best.new_ids
    True
    >>> sample(fixed, [0], rng=np.random.default_rng(7), max_new_tokens=4, top_k=1)[0].best.ids
    [0, 2, 2, 2, 2]
    """
    batch = as_prompts(prompts)
    check_rng(rng)
    max_new_tokens = check_positive_int("max_new_tokens", max_new_tokens)
    check_context(next_token_logits, batch, max_new_tokens)
    n_samples = check_positive_int("num_return_sequences", num_return_sequences)
    eos = check_eos(eos_token_id)
    warpers = Warpers(temperature=temperature, top_h=top_h, top_k=top_k, top_p=top_p,
                      min_p=min_p, typical_p=typical_p, epsilon_cutoff=epsilon_cutoff,
                      eta_cutoff=eta_cutoff)  # fmt: skip
    pipeline = Pipeline.of(warpers, **processing)
    stopping = Stopping.of(stop_strings, token_strings, max_time)

    # One row per (prompt, sample), prompt-major: rows i*n_samples .. (i+1)*n_samples - 1.
    owner = [i for i in range(len(batch)) for _ in range(n_samples)]
    sequences = [list(batch[i]) for i in owner]
    logprobs = [0.0] * len(owner)
    stopped = [""] * len(owner)
    traces = [new_trace(trace, "sampling", p) for p in batch]  # None each, untraced
    outputs = StepOutputs(len(batch), n_samples, output_scores, output_logits)
    token_logprobs = [[] for _ in owner]  # the model's log-prob of each generated token
    transition_scores = [[] for _ in owner]  # its warped logit: what HF's scores hold
    vocab_size = None

    for step in range(1, max_new_tokens + 1):
        live = [r for r in range(len(owner)) if not stopped[r]]
        if not live:
            break
        live_seqs = [sequences[r] for r in live]
        logits, warped, warp_steps, vocab_size = processed_logits(
            next_token_logits, live_seqs, pipeline, vocab_size, batch, eos,
            [len(batch[owner[r]]) for r in live], record=bool(trace),
        )  # fmt: skip
        model_logp = log_softmax(logits)
        uniforms = rng.random(len(live))
        time_is_up = stopping.time_is_up()  # once per step: HF stops every row at once
        for i in sorted(set(owner[r] for r in live)):
            rows = [row for row, r in enumerate(live) if owner[r] == i]
            slots = [live[row] - i * n_samples for row in rows]
            # Rows are prompt-major, so prompt i's live rows are consecutive. Speed: a slice is
            # a view; indexing by the list copied 16 rows of 50257 a step on 8 prompts, kept or
            # not (the decoder's own work on such a step: 1.55 -> 1.42 ms).
            span = slice(rows[0], rows[-1] + 1)
            outputs.record(i, slots, warped[span], logits[span])

        for row, r in enumerate(live):
            token = draw_from_scores(warped[row], uniforms[row])
            sample_index = r - owner[r] * n_samples
            record_row(traces[owner[r]], step, sample_index, sequences[r], warped[row],
                       model_logp[row], [token], warp_steps, row)  # fmt: skip
            sequences[r].append(token)
            logprobs[r] += float(model_logp[row, token])
            token_logprobs[r].append(float(model_logp[row, token]))
            transition_scores[r].append(float(warped[row, token]))
            if on_token is not None:
                on_token(r, token)
            if token == eos:
                stopped[r] = "EOS"
            else:
                stopped[r] = stopping.reason(sequences[r], time_is_up)

    results = []
    for i, prompt in enumerate(batch):
        rows = range(i * n_samples, (i + 1) * n_samples)
        hypotheses = [Hypothesis(sequences[r], len(prompt), logprobs[r], None, token_logprobs[r],
                                 transition_scores[r]) for r in rows]  # fmt: skip
        at_eos = sum(stopped[r] == "EOS" for r in rows)
        counts = {why: sum(stopped[r] == why for r in rows) for why in (STOP_STRING, MAX_TIME)}
        others = [f"{n} {why}" for why, n in counts.items() if n]  # "2 stopped at a stop string"
        summary = [f"{at_eos} of {n_samples} samples stopped at EOS", *others]
        record_stop(traces[i], "; ".join(summary))
        results.append(Decoded(prompt, hypotheses, traces[i], **outputs.of(i)))
    return results
