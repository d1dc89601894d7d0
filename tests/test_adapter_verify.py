"""NextTokenLogits.logits_at_positions: assisted decoding's verify pass, one forward per call,
the same logits as an uncached forward pass, and a cache that rolls back rejected tokens."""

from __future__ import annotations

import numpy as np
import pytest
from checkpoints import TINY, build
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding import assisted_greedy_search, greedy_search
from minigpt import NextTokenLogits
from minigpt.errors import MiniGPTError
from minigpt.gpt2 import load_model_dir

# As in test_model_properties.py: the cached and uncached passes add the same float32 products
# in another blocking (one position at a time or T at once), which moves a logit of this tiny
# model (|logit| < 10) by a few float32 ulps; 1e-5 is about 100 ulps of 1.0 and catches any
# misplaced position or stale cache entry, which moves logits by O(1).
ATOL = 1e-5
TOKENS = st.integers(0, TINY.vocab_size - 1)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_model_dir(build(tmp_path_factory.mktemp("tiny"), std=0.2))


@pytest.fixture(scope="module")
def draft_model(tmp_path_factory):
    return load_model_dir(build(tmp_path_factory.mktemp("draft"), std=0.2, seed=7))


def expected(model, seq: list[int], n: int) -> np.ndarray:
    return model.forward(seq)[-(n + 1) :]  # no cache: every position from scratch


@settings(max_examples=30, deadline=None)
@given(prompt=st.lists(TOKENS, min_size=1, max_size=10), data=st.data())
def test_rounds_of_draft_and_verify_match_an_uncached_forward(model, prompt, data):
    """Round after round, as assisted decoding asks: the sequence so far (its last tokens
    possibly rejected and replaced) plus a fresh draft; one forward each, exact logits."""
    adapter = NextTokenLogits(model)
    seq = list(prompt)
    for _ in range(6):
        draft = data.draw(st.lists(TOKENS, max_size=5))
        n = len(draft)
        before = adapter.calls
        got = adapter.logits_at_positions(seq + draft, n)
        assert adapter.calls == before + 1  # the verify pass is ONE forward
        assert got.shape == (n + 1, TINY.vocab_size) and got.dtype == np.float32
        assert np.abs(got - expected(model, seq + draft, n)).max() < ATOL
        kept = data.draw(st.integers(0, n))  # keep a prefix of the draft, then a new token
        seq = seq + draft[:kept] + [data.draw(TOKENS)]
        if len(seq) > 50:
            break


@settings(max_examples=20, deadline=None)
@given(seq=st.lists(TOKENS, min_size=3, max_size=20), data=st.data())
def test_calls_and_positions_mix(model, seq, data):
    """The same adapter asked both ways (a step, a verify, a shorter prefix) stays exact."""
    adapter = NextTokenLogits(model)
    for _ in range(5):
        length = data.draw(st.integers(1, len(seq)))
        if data.draw(st.booleans()):
            n = data.draw(st.integers(0, length - 1))
            got = adapter.logits_at_positions(seq[:length], n)
            assert np.abs(got - expected(model, seq[:length], n)).max() < ATOL
        else:
            (row,) = adapter([seq[:length]])
            assert np.abs(row - model.forward(seq[:length])[-1]).max() < ATOL


def test_a_rejected_draft_is_forgotten(model):
    adapter = NextTokenLogits(model)
    adapter.logits_at_positions([5, 6, 7, 8, 9, 10], 3)
    assert adapter.cache.lengths.tolist() == [6]
    got = adapter.logits_at_positions([5, 6, 7, 8, 20, 21], 1)  # 9, 10 were rejected
    assert adapter.cache.lengths.tolist() == [6]  # rolled back to 4, then 20 and 21 ran
    assert np.abs(got - expected(model, [5, 6, 7, 8, 20, 21], 1)).max() < ATOL


def test_n_must_leave_a_prefix(model):
    adapter = NextTokenLogits(model)
    for n in (-1, 3, True, 1.0):
        with pytest.raises(MiniGPTError, match="0 <= n < len"):
            adapter.logits_at_positions([1, 2, 3], n)


def test_assisted_greedy_with_two_cached_models_is_greedy(model, draft_model):
    """Target and draft both behind adapters: rejected draft tokens roll back both caches,
    and the text is greedy search's. One target forward per round."""
    prompt = [3, 14, 15, 92, 65]
    target, draft = NextTokenLogits(model), NextTokenLogits(draft_model)
    (plain,) = greedy_search(NextTokenLogits(model), prompt, max_new_tokens=30)
    for assist in ({"assistant_model": draft, "num_assistant_tokens": 4},
                   {"assistant_model": NextTokenLogits(model)},
                   {"prompt_lookup_num_tokens": 3}):  # fmt: skip
        target = NextTokenLogits(model)
        (out,) = assisted_greedy_search(target, prompt, max_new_tokens=30, **assist)
        assert out.best.ids == plain.best.ids
        # Each token's log-prob is off by at most float32 rounding of its logits (ATOL per
        # logit moves a log-softmax by at most 2 ATOL), summed over 30 tokens.
        assert abs(out.best.logprob - plain.best.logprob) < 30 * 2 * ATOL
        assert target.calls == out.assistant.rounds
    (out,) = assisted_greedy_search(NextTokenLogits(model), prompt, max_new_tokens=30,
                                    assistant_model=draft, num_assistant_tokens=4)  # fmt: skip
    assert draft.cache.lengths[0] <= len(out.best.ids)


def test_the_adapter_says_its_vocabulary_size(model):
    assert NextTokenLogits(model).vocab_size == TINY.vocab_size
