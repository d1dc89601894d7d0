"""A dropped KVCache's memory goes to the next cache of the same shape (kv_cache.spare_memory):
all zeros again, never while the old cache or a row view of it is alive, and the model's
logits through it are the same as through new memory."""

import gc

import numpy as np
import pytest

import minigpt
from minigpt import GPT2Config, kv_cache
from minigpt.kv_cache import KVCache

CONFIG = GPT2Config(n_layer=2, n_head=2, n_embd=8, n_positions=16, vocab_size=5,
                    bos_token_id=None, eos_token_id=None)  # fmt: skip


@pytest.fixture(autouse=True)
def no_spares(monkeypatch):
    """Each test starts with no spare memory, and leaves none to the other tests. Room for
    many shapes: caches other tests left in reference cycles may be collected (and their
    memory kept) at any moment, and must not push out the memory a test looks for."""
    gc.collect()
    monkeypatch.setattr(kv_cache, "_SPARE", {})
    monkeypatch.setattr(kv_cache, "SPARE_SHAPES", 1000)


def spare_ids() -> set[int]:
    return {id(memory) for entries in kv_cache._SPARE.values() for memory, _ in entries}


def memory_of(cache: KVCache) -> list[np.ndarray]:
    return cache._k_memory + cache._v_memory


def filled(cache: KVCache, T: int, seed: int = 0) -> KVCache:
    """Write T positions of random keys and values into every layer, as a forward pass does."""
    rng = np.random.default_rng(seed)
    shape = (cache.batch_size, CONFIG.n_head, T, CONFIG.head_size)
    for layer in range(CONFIG.n_layer):
        cache.store(layer, rng.standard_normal(shape), rng.standard_normal(shape))
    cache.advance(T)
    return cache


def test_the_next_cache_gets_the_dropped_memory_all_zeros():
    old = filled(KVCache(CONFIG, 3), T=5)
    before = {id(m) for m in memory_of(old)}
    del old
    gc.collect()
    new = KVCache(CONFIG, 3)
    reused = {id(m) for m in memory_of(new)}
    print(f"{len(reused & before)} of {len(reused)} arrays reused")
    assert reused == before
    assert all(np.count_nonzero(m) == 0 for m in memory_of(new))


def test_a_cache_of_another_shape_gets_new_memory():
    old = filled(KVCache(CONFIG, 3), T=5)
    before = {id(m) for m in memory_of(old)}
    del old
    gc.collect()
    assert not {id(m) for m in memory_of(KVCache(CONFIG, 2))} & before


def test_a_cache_that_wrote_more_than_spare_bytes_is_not_kept(monkeypatch):
    cache = filled(KVCache(CONFIG, 3), T=5)
    written = sum(m[:, :, :5].nbytes for m in memory_of(cache))
    monkeypatch.setattr(kv_cache, "SPARE_BYTES", written - 1)
    before = {id(m) for m in memory_of(cache)}
    del cache
    gc.collect()
    assert not spare_ids() & before


def test_memory_is_not_reused_while_a_row_view_is_alive():
    parent = filled(KVCache(CONFIG, 2), T=4)
    view = parent.row(1)
    before = {id(m) for m in memory_of(parent)}
    del parent
    gc.collect()
    other = KVCache(CONFIG, 2)
    assert not {id(m) for m in memory_of(other)} & before
    filled(view, T=3, seed=1)  # still its own memory: the other cache stays zeros
    assert all(np.count_nonzero(m) == 0 for m in memory_of(other))


def test_logits_through_reused_memory_equal_new_memory():
    """The same prompt and steps on a cache in new memory, then on one in the memory a longer
    run left behind: the same logits, bit for bit (the bundled model)."""
    model = minigpt.load("minigpt-tiny")
    rng = np.random.default_rng(0)
    ids = rng.integers(0, model.config.vocab_size, (2, 12))

    def run() -> np.ndarray:
        cache = model.new_cache(2)
        out = [model.forward(ids[:, :8], cache, last_only=True)]
        out += [model.forward(ids[:, t : t + 1], cache, last_only=True) for t in range(8, 12)]
        return np.concatenate(out, axis=1)

    first = run()  # new memory
    longer = model.new_cache(2)  # leaves 30 positions of other keys behind
    model.forward(rng.integers(0, model.config.vocab_size, (2, 30)), longer)
    del longer
    gc.collect()
    again = run()  # in that memory
    print("max abs diff:", float(np.abs(again - first).max()))
    assert np.array_equal(again, first)
