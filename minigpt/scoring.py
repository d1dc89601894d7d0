"""How likely the model finds a text: each token's log-prob given the ones before it.

One forward pass over the whole text gives, at position t, the logits of the token at t + 1;
so every token but the first is scored at once. The first has no context to be predicted from
and gets no log-prob. Perplexity is exp(-mean log-prob): the number of equally likely tokens
the model was, on average, choosing between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minigpt.errors import MiniGPTError
from minigpt.gpt2 import GPT2


@dataclass
class TextScore:
    """ids: the text's tokens. logprobs[t]: log p(ids[t + 1] | ids[: t + 1]), one per token
    after the first, float64 sums of float32 log-probs."""

    ids: list[int]
    logprobs: list[float]

    @property
    def sum_logprob(self) -> float:
        return float(np.sum(self.logprobs))

    @property
    def mean_logprob(self) -> float:
        return float(np.mean(self.logprobs))

    @property
    def perplexity(self) -> float:
        return math.exp(-self.mean_logprob)


def score(model: GPT2, ids: list[int]) -> TextScore:
    """Every token's log-prob under `model`, given the tokens before it.

    >>> import minigpt
    >>> model = minigpt.load("minigpt-tiny")
    >>> result = score(model, minigpt.load_tokenizer("minigpt-tiny").encode("Once upon a time"))
    >>> len(result.logprobs) == len(result.ids) - 1, result.perplexity > 1
    (True, True)
    """
    ids = [int(t) for t in ids]
    context = model.config.n_positions
    if len(ids) < 2:
        raise MiniGPTError(f"scoring needs a text of at least 2 tokens, got {len(ids)}")
    if len(ids) > context + 1:  # the last token is only ever a target: it needs no position
        raise MiniGPTError(
            f"the text has {len(ids)} tokens; the model can score at most {context + 1} "
            f"(its context of {context}, plus the token the last position predicts)"
        )
    logits = model.forward(ids[:-1])  # [T - 1, V]: row t predicts token t + 1
    logp = log_softmax(logits)
    return TextScore(ids, [float(logp[t, ids[t + 1]]) for t in range(len(ids) - 1)])


def log_softmax(x: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, shifted by the max so exp never overflows (float32)."""
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
