"""Decoders at the context limit: a run that cannot fit is refused before any model call.

A model that can see only `context_length` positions would otherwise fail at the step that
outgrows it, after the decoder had already spent every earlier step, and the tokens generated
so far would be lost with the exception.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding import beam_search, exhaustive_tree_search, greedy_search, sample

VOCAB = 5


class Bounded:
    """A toy model with a context window: it refuses, like GPT-2, any longer sequence."""

    def __init__(self, context_length: int) -> None:
        self.context_length = context_length
        self.calls = 0
        self.longest = 0

    def __call__(self, sequences: list[list[int]]) -> np.ndarray:
        self.calls += 1
        self.longest = max(self.longest, *(len(s) for s in sequences))
        assert self.longest <= self.context_length, "the decoder overran the context"
        logits = np.zeros((len(sequences), VOCAB), dtype=np.float32)
        logits[:, 0] = -np.inf  # EOS (0) is impossible, so every run goes the full length
        logits[:, 1] = 1.0
        return logits


DECODERS = {
    "greedy": lambda f, p, n: greedy_search(f, p, max_new_tokens=n, eos_token_id=0),
    "sample": lambda f, p, n: sample(
        f, p, rng=np.random.default_rng(0), max_new_tokens=n, eos_token_id=0
    ),
    "beam": lambda f, p, n: beam_search(f, p, num_beams=2, max_new_tokens=n, eos_token_id=0),
    "tree": lambda f, p, n: exhaustive_tree_search(f, p, branching=2, depth=n, eos_token_id=0),
}


@pytest.mark.parametrize("name", DECODERS)
def test_a_run_past_the_context_is_refused_before_any_model_call(name):
    model = Bounded(context_length=8)
    with pytest.raises(ValueError, match="exceeds the model's context of 8") as info:
        DECODERS[name](model, [1, 2, 3], 6)  # 3 + 6 = 9 > 8
    assert model.calls == 0
    assert "\n" not in str(info.value) and "max_new_tokens" in str(info.value)


@pytest.mark.parametrize("name", DECODERS)
@settings(max_examples=25, deadline=None)
@given(prompt_length=st.integers(1, 6), max_new_tokens=st.integers(1, 6))
def test_a_run_that_fits_runs_to_the_end(name, prompt_length, max_new_tokens):
    """Exactly at the limit is fine: the last token is chosen, never fed back to the model."""
    context = prompt_length + max_new_tokens
    model = Bounded(context_length=context)
    out = DECODERS[name](model, [1] * prompt_length, max_new_tokens)
    best = out[0].best if isinstance(out, list) else out.best  # the tree returns one result
    assert len(best.ids) == context
    assert model.longest == context - 1


def test_a_callable_without_a_context_length_has_no_limit():
    table = lambda seqs: np.zeros((len(seqs), VOCAB), dtype=np.float32)  # noqa: E731
    out = greedy_search(table, [1], max_new_tokens=300, eos_token_id=None)
    assert len(out[0].best.ids) == 301
