"""Greedy search: at every step take the single most likely next token.

    sequence = prompt
    repeat max_new_tokens times:
        logits = model(sequence)                 # scores for every possible next token
        logits = processors(logits, sequence)    # decoding/pipeline.py: repetition penalty, ...
        token  = argmax(logits)
        sequence.append(token); stop if token is EOS (or a stop string, or max_time)

Fast and deterministic, and short-sighted: a likely token now can lead into an unlikely
sentence later, which is what beam search (beam.py) looks further ahead to avoid.
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
    processed_logits,
)
from decoding.outputs import StepOutputs
from decoding.pipeline import Pipeline
from decoding.probs import log_softmax
from decoding.recorder import new_trace, record_row, record_stop
from decoding.results import Decoded, Hypothesis
from decoding.stopping import MaxTime, Stopping, TokenStrings


def greedy_search(
    next_token_logits: NextTokenLogits,
    prompts: list[int] | list[list[int]],
    *,
    max_new_tokens: int,
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
    """Extend each prompt by its argmax token until EOS (kept) or `max_new_tokens`.

    `prompts` is one prompt (a list of ids) or a batch of them; all live sequences of a step
    go to the model in one call. Returns one Decoded per prompt with a single Hypothesis.
    Equal to HF `generate(do_sample=False, num_beams=1)`, ties going to the lowest token id.
    `on_token(i, token)` is called as soon as prompt i's next token is chosen (for streaming).
    output_scores / output_logits keep each step's processed / raw logits in Decoded.scores /
    Decoded.logits, as HF's generate(output_scores=True, output_logits=True).
    **processing: HF's logits processors by their generate() names (repetition_penalty,
    no_repeat_ngram_size, sequence_bias, bad_words_ids, min_length, min_new_tokens,
    exponential_decay_length_penalty, suppress_tokens, begin_suppress_tokens,
    renormalize_logits; decoding/pipeline.py runs them in HF's order).
    A row also stops after a token that completes one of `stop_strings` (token_strings: the
    text of every token id, as str or bytes), and every row once `max_time` seconds have
    passed (a number, or a MaxTime with its own clock); see decoding/stopping.py.

    >>> table = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]]))
    >>> bigram = lambda seqs: table[[s[-1] for s in seqs]]
    >>> greedy_search(bigram, [2], max_new_tokens=3, eos_token_id=0)[0].best.ids
    [2, 2, 2, 2]
    >>> greedy_search(bigram, [1], max_new_tokens=3, eos_token_id=0)[0].best.new_ids
    [0]
    """
    batch = as_prompts(prompts)
    max_new_tokens = check_positive_int("max_new_tokens", max_new_tokens)
    check_context(next_token_logits, batch, max_new_tokens)
    eos = check_eos(eos_token_id)
    pipeline = Pipeline.of(None, **processing)
    stopping = Stopping.of(stop_strings, token_strings, max_time)

    sequences = [list(p) for p in batch]
    logprobs = [0.0] * len(batch)  # sum of the model's log-probs of the generated tokens
    stopped = [""] * len(batch)  # why each prompt stopped ("" while it runs)
    traces = [new_trace(trace, "greedy search", p) for p in batch]  # None each, untraced
    outputs = StepOutputs(len(batch), 1, output_scores, output_logits)
    # Per generated token: the model's log-prob, and the processed logit it was chosen by
    # (HF's greedy `scores` are processed LOGITS, not log-probs: its transition scores are
    # these numbers, and only normalize_logits=True turns them into log-probs).
    token_logprobs = [[] for _ in batch]
    transition_scores = [[] for _ in batch]
    vocab_size = None

    for step in range(1, max_new_tokens + 1):
        live = [i for i in range(len(batch)) if not stopped[i]]
        if not live:
            break
        live_seqs = [sequences[i] for i in live]
        logits, scores, steps, vocab_size = processed_logits(
            next_token_logits, live_seqs, pipeline, vocab_size, batch, eos,
            [len(batch[i]) for i in live], record=bool(trace),
        )  # fmt: skip
        model_logp = log_softmax(logits)
        tokens = np.argmax(scores, axis=-1)  # the first maximum on ties, as torch.argmax
        time_is_up = stopping.time_is_up()  # once per step: HF stops every row at once

        for row, i in enumerate(live):
            token = int(tokens[row])
            record_row(traces[i], step, 0, sequences[i], scores[row], model_logp[row], [token],
                       steps, row)  # fmt: skip
            outputs.record(i, [0], scores[row : row + 1], logits[row : row + 1])
            sequences[i].append(token)
            logprobs[i] += float(model_logp[row, token])
            token_logprobs[i].append(float(model_logp[row, token]))
            transition_scores[i].append(float(scores[row, token]))
            if on_token is not None:
                on_token(i, token)
            if token == eos:
                stopped[i] = "stopped at EOS"
            else:
                stopped[i] = stopping.reason(sequences[i], time_is_up)

    results = []
    for i, prompt in enumerate(batch):
        hypothesis = Hypothesis(sequences[i], len(prompt), logprobs[i], None, token_logprobs[i],
                                transition_scores[i])  # fmt: skip
        record_stop(traces[i], stopped[i] or "reached max_new_tokens")
        results.append(Decoded(prompt, [hypothesis], traces[i], **outputs.of(i)))
    return results
