"""The KV cache and the adapter change how much is computed, never the logits."""

from __future__ import annotations

import numpy as np
import pytest
from checkpoints import TINY, build
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import NextTokenLogits
from minigpt.gpt2 import load_model_dir

ATOL = 1e-5


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_model_dir(build(tmp_path_factory.mktemp("tiny"), std=0.2))


def report(name: str, ours: np.ndarray, ref: np.ndarray) -> float:
    """llm.c style: say what is compared and by how much it differs."""
    diff = float(np.abs(ours - ref).max())
    print(f"{name}: max |diff| = {diff:.2e}, first values {ours.ravel()[:3]} vs {ref.ravel()[:3]}")
    return diff


ids_batches = st.integers(1, 3).flatmap(
    lambda B: st.integers(2, 40).flatmap(
        lambda T: st.lists(
            st.lists(st.integers(0, TINY.vocab_size - 1), min_size=T, max_size=T),
            min_size=B,
            max_size=B,
        )
    )
)


@settings(max_examples=40, deadline=None)
@given(ids=ids_batches, data=st.data())
def test_cached_equals_uncached(model, ids, data):
    """Feeding a prompt in random chunks through the cache gives the uncached logits."""
    ids = np.array(ids)
    T = ids.shape[1]
    cuts = sorted(data.draw(st.sets(st.integers(1, T - 1), max_size=4)))
    cache = model.new_cache(ids.shape[0])
    pieces = [model.forward(ids[:, a:b], cache) for a, b in zip([0, *cuts], [*cuts, T])]
    assert report("cached vs uncached", np.concatenate(pieces, axis=1), model.forward(ids)) < ATOL
    assert cache.lengths.tolist() == [T] * ids.shape[0]


@settings(max_examples=25, deadline=None)
@given(
    seqs=st.lists(st.lists(st.integers(0, 100), min_size=1, max_size=12), min_size=1, max_size=5),
    rounds=st.integers(1, 4),
    data=st.data(),
)
def test_adapter_matches_fresh_forward(model, seqs, rounds, data):
    """Whatever sequences are asked, in any order and repetition, the adapter returns the
    logits a fresh uncached forward gives."""
    adapter = NextTokenLogits(model)
    for _ in range(rounds):
        order = data.draw(st.permutations(seqs))
        got = adapter(order)
        assert got.shape == (len(order), TINY.vocab_size) and got.dtype == np.float32
        for seq, row in zip(order, got):
            assert np.abs(row - model.forward(seq)[-1]).max() < ATOL
        # Next round: extend some sequences by one token, as a decoder would.
        seqs = [s + [data.draw(st.integers(0, 100))] for s in seqs if len(s) < 60]


@settings(max_examples=30, deadline=None)
@given(ids=st.lists(st.integers(0, 100), min_size=2, max_size=30), data=st.data())
def test_causality(model, ids, data):
    """Changing token t never changes the logits at positions before t."""
    t = data.draw(st.integers(1, len(ids) - 1))
    changed = list(ids)
    changed[t] = (changed[t] + data.draw(st.integers(1, 100))) % 101
    a, b = model.forward(ids), model.forward(changed)
    assert np.array_equal(a[:t], b[:t])


def test_forward_shapes_and_dtype(model):
    """[T] gives [T, V]; [B, T] gives [B, T, V]; always float32 (NEP 50 promotion guarded)."""
    assert model.forward([1, 2, 3]).shape == (3, 101)
    out = model.forward([[1, 2, 3], [4, 5, 6]])
    assert out.shape == (2, 3, 101) and out.dtype == np.float32


def test_adapter_batches_and_reuses_the_cache(model):
    """One decoding step of 3 live sequences costs one forward call, not three."""
    adapter = NextTokenLogits(model)
    adapter([[1, 2, 3], [1, 2, 3], [4, 5, 6]])
    before = adapter.calls
    adapter([[1, 2, 3, 7], [1, 2, 3, 8], [4, 5, 6, 9]])
    assert adapter.calls == before + 1
    assert len(adapter.rows) == 3  # rows nobody extended were dropped


@settings(max_examples=30, deadline=None)
@given(prompt=st.lists(st.integers(0, 100), min_size=1, max_size=8), data=st.data())
def test_adapter_follows_branching_beams(model, prompt, data):
    """Like beam search: each step's sequences are children of random earlier ones (a parent
    may get several children or none, the batch grows and shrinks); logits stay exact."""
    adapter = NextTokenLogits(model)
    live = [prompt]
    for _ in range(6):
        got = adapter(live)
        for seq, row in zip(live, got):
            assert np.abs(row - model.forward(seq)[-1]).max() < ATOL
        n = data.draw(st.integers(1, 6))
        parents = data.draw(st.lists(st.sampled_from(live), min_size=n, max_size=n))
        live = [p + [data.draw(st.integers(0, 100))] for p in parents]
