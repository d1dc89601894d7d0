"""KVCache.reorder: row i becomes old row rows[i], whatever rows is (repeats, drops, growth past
the memory, rows kept in place), for every layer's keys and values and the lengths."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPT2Config
from minigpt.kv_cache import KVCache

CONFIG = GPT2Config(n_layer=2, n_head=2, n_embd=8, n_positions=6, vocab_size=5,
                    bos_token_id=None, eos_token_id=None)  # fmt: skip


def filled_cache(batch: int, seed: int) -> KVCache:
    """A cache whose rows hold distinct random keys and values, each row to its own length."""
    rng = np.random.default_rng(seed)
    cache = KVCache(CONFIG, batch)
    for layer in range(CONFIG.n_layer):
        shape = cache.k[layer].shape
        cache.k[layer][...] = rng.standard_normal(shape)
        cache.v[layer][...] = rng.standard_normal(shape)
    cache.lengths[:] = rng.integers(1, CONFIG.n_positions + 1, batch)
    return cache


@settings(max_examples=200, deadline=None)
@given(batch=st.integers(1, 4), rows=st.lists(st.integers(0, 3), min_size=1, max_size=7),
       seed=st.integers(0, 1000), twice=st.booleans())  # fmt: skip
def test_each_row_becomes_a_copy_of_its_source(batch, rows, seed, twice):
    rows = [r % batch for r in rows]
    cache = filled_cache(batch, seed)
    if twice:  # a cache that was reordered before: its memory may be larger than its batch
        cache.reorder(list(reversed(range(batch))) + [0])
    before_k = [k.copy() for k in cache.k]
    before_v = [v.copy() for v in cache.v]
    before_lengths = cache.lengths.copy()
    cache.reorder(rows)
    assert cache.batch_size == len(rows)
    assert cache.lengths.tolist() == before_lengths[rows].tolist()
    for layer in range(CONFIG.n_layer):
        for i, source in enumerate(rows):
            filled = before_lengths[source]  # only the filled positions need to be carried over
            k, v = cache.k[layer][i, :, :filled], cache.v[layer][i, :, :filled]
            assert np.array_equal(k, before_k[layer][source, :, :filled])
            assert np.array_equal(v, before_v[layer][source, :, :filled])
