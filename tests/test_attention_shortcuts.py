"""The forward pass's two shortcuts for long prompts change the work done, never the logits:
causal_attention skips keys a block of queries cannot see, and last_only runs the last block
for the last position alone."""

from __future__ import annotations

import numpy as np
import pytest
from checkpoints import TINY, build
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import forward_fast
from minigpt.forward_fast import attention, causal_attention
from minigpt.gpt2 import load_model_dir

ATOL = 1e-5


def causal_mask(past: np.ndarray, T: int) -> np.ndarray:
    """The mask gpt2_forward builds: row b's query t sits at position past[b] + t."""
    positions = past[:, None] + np.arange(T)  # [B, T]
    keys = np.arange(positions.max() + 1)
    return np.where(keys <= positions[:, None, :, None], np.float32(0), np.float32(-np.inf))


@settings(max_examples=40, deadline=None)
@given(
    T=st.integers(1, 300),
    past=st.lists(st.integers(0, 40), min_size=1, max_size=3),
    seed=st.integers(0, 2**32 - 1),
)
def test_causal_attention_equals_full_attention(T, past, seed):
    """Rows may hold different numbers of earlier keys, as in a batch of cached sequences."""
    rng = np.random.default_rng(seed)
    past = np.array(past)
    B, H, hs, Tk = len(past), 2, 8, int(past.max()) + T
    q = rng.standard_normal((B, H, T, hs), dtype=np.float32)
    k, v = (rng.standard_normal((B, H, Tk, hs), dtype=np.float32) for _ in range(2))
    mask = causal_mask(past, T)
    ours, full = causal_attention(q, k, v, mask), attention(q, k, v, mask.copy())
    diff = float(np.abs(ours - full).max())
    print(f"T={T} past={past.tolist()}: max |diff| = {diff:.2e}")
    assert ours.dtype == np.float32 and diff < ATOL


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_model_dir(build(tmp_path_factory.mktemp("tiny"), std=0.2))


@settings(max_examples=30, deadline=None)
@given(
    ids=st.lists(st.integers(0, TINY.vocab_size - 1), min_size=2, max_size=TINY.n_positions),
    data=st.data(),
)
def test_blocks_and_last_only_keep_the_logits(model, ids, data):
    """Through the whole model, cached or not: the last logits of a prompt are the same."""
    with pytest.MonkeyPatch.context() as patch:
        # Blocks of 5 queries, so the tiny model's 64-token context spans many blocks.
        patch.setattr(forward_fast, "QUERY_BLOCK", 5)
        check_last_logits(model, np.array([ids]), data)


def check_last_logits(model, ids, data):
    full = model.forward(ids)  # [1, T, V]
    assert np.abs(model.forward(ids, last_only=True) - full[:, -1:]).max() < ATOL
    cut = data.draw(st.integers(1, ids.shape[1] - 1))
    cache = model.new_cache(1)
    model.forward(ids[:, :cut], cache, last_only=True)
    rest = model.forward(ids[:, cut:], cache, last_only=True)
    assert rest.shape == (1, 1, TINY.vocab_size)
    assert np.abs(rest - full[:, -1:]).max() < ATOL
    assert cache.lengths.tolist() == [ids.shape[1]]  # every position's keys were stored
