"""Greedy search: at every step take the single most likely next token.

    sequence = prompt
    repeat max_new_tokens times:
        logits = model(sequence)                 # scores for every possible next token
        logits = processors(logits, sequence)    # repetition penalty, no-repeat-ngram
        token  = argmax(logits)
        sequence.append(token); stop if token is EOS

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
from decoding.probs import log_softmax
from decoding.processors import Processors
from decoding.recorder import new_trace, record_row, record_stop
from decoding.results import Decoded, Hypothesis


def greedy_search(
    next_token_logits: NextTokenLogits,
    prompts: list[int] | list[list[int]],
    *,
    max_new_tokens: int,
    eos_token_id: int | None = None,
    repetition_penalty: float | None = None,
    no_repeat_ngram_size: int | None = None,
    trace: bool = False,
    on_token: OnToken | None = None,
    output_scores: bool = False,
    output_logits: bool = False,
) -> list[Decoded]:
    """Extend each prompt by its argmax token until EOS (kept) or `max_new_tokens`.

    `prompts` is one prompt (a list of ids) or a batch of them; all live sequences of a step
    go to the model in one call. Returns one Decoded per prompt with a single Hypothesis.
    Equal to HF `generate(do_sample=False, num_beams=1)`, ties going to the lowest token id.
    `on_token(i, token)` is called as soon as prompt i's next token is chosen (for streaming).
    output_scores / output_logits keep each step's processed / raw logits in Decoded.scores /
    Decoded.logits, as HF's generate(output_scores=True, output_logits=True).

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
    processors = Processors(
        repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size
    )

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
        logits, scores, vocab_size = processed_logits(
            next_token_logits, live_seqs, processors, vocab_size, batch, eos
        )
        model_logp = log_softmax(logits)
        tokens = np.argmax(scores, axis=-1)  # the first maximum on ties, as torch.argmax

        for row, i in enumerate(live):
            token = int(tokens[row])
            record_row(traces[i], step, 0, sequences[i], scores[row], model_logp[row], [token])
            outputs.record(i, [0], scores[row : row + 1], logits[row : row + 1])
            sequences[i].append(token)
            logprobs[i] += float(model_logp[row, token])
            token_logprobs[i].append(float(model_logp[row, token]))
            transition_scores[i].append(float(scores[row, token]))
            if on_token is not None:
                on_token(i, token)
            if token == eos:
                stopped[i] = "stopped at EOS"

    results = []
    for i, prompt in enumerate(batch):
        hypothesis = Hypothesis(sequences[i], len(prompt), logprobs[i], None, token_logprobs[i],
                                transition_scores[i])  # fmt: skip
        record_stop(traces[i], stopped[i] or "reached max_new_tokens")
        results.append(Decoded(prompt, [hypothesis], traces[i], **outputs.of(i)))
    return results
