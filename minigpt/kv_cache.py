"""The KV cache: the keys and values every layer already computed, so a step runs only new tokens.

Attention at position t needs the keys and values of positions 0..t. They never change once
computed (the model is causal), so we keep them. Each row of the batch may hold a sequence of a
different length: `lengths[b]` says how many positions of row b are filled.

Memory is allocated once, for the whole context, and a step writes its new keys in place. Speed:
concatenating the new keys to the old ones instead would copy the whole cache every step (with
100 positions held, 0.2 ms per layer and row against 3 us for the write). The memory's pages are
only touched when written (see `lazy_zeros`), so a short sequence costs only what it fills.
When a cache is dropped, its memory is kept for the next cache of the same shape (see
`spare_memory`), since writing to memory the process already has is faster than to new.
"""

from __future__ import annotations

import mmap
import weakref

import numpy as np

from minigpt.config import GPT2Config


class KVCache:
    """Per layer, keys and values of shape [B, n_head, n_positions, head_size]."""

    def __init__(self, config: GPT2Config, batch_size: int) -> None:
        shape = (batch_size, config.n_head, config.n_positions, config.head_size)
        self.config = config
        self._k_memory = [spare_memory(shape) for _ in range(config.n_layer)]
        self._v_memory = [spare_memory(shape) for _ in range(config.n_layer)]
        self.k = list(self._k_memory)  # the rows in use: views of the memory
        self.v = list(self._v_memory)
        self.lengths = np.zeros(batch_size, dtype=np.int64)  # filled positions per row
        self._written = [0]  # positions store() has written to, in any row (shared with views)
        # Once this cache is gone (and its row views, which keep it alive), its memory is
        # kept for the next cache: the lists as they are then (reorder may replace arrays).
        keep = weakref.finalize(self, keep_spare, self._k_memory, self._v_memory, self._written)
        keep.atexit = False  # nothing to keep for when the interpreter exits

    @property
    def batch_size(self) -> int:
        return len(self.lengths)

    def __repr__(self) -> str:
        filled = self.lengths.tolist()
        shown = str(filled) if len(filled) <= 8 else str(filled[:8])[:-1] + ", ...]"
        return (
            f"KVCache(rows={self.batch_size}, layers={len(self.k)}, "
            f"filled={shown} of {self.config.n_positions})"
        )

    def store(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write this step's k, v [B, n_head, T, head_size] after each row's filled positions.

        Returns the keys and values to attend over: [B, n_head, max filled + T, head_size]
        (a view, no copy). Rows shorter than the longest hold stale entries at the end, which
        the attention mask hides.
        """
        B, _, T, _ = k.shape
        start = int(self.lengths[0])
        if (self.lengths == start).all():  # the usual case: every row at one length, a slice
            self.k[layer][:, :, start : start + T] = k
            self.v[layer][:, :, start : start + T] = v
            end = start + T
        else:  # rows at different lengths: each writes at its own positions
            rows = np.arange(B)[:, None]  # [B, 1]
            positions = self.lengths[:, None] + np.arange(T)  # [B, T]
            # Fancy indexing puts the [B, T] index axes first: move T before the head axis.
            self.k[layer][rows, :, positions] = k.transpose(0, 2, 1, 3)
            self.v[layer][rows, :, positions] = v.transpose(0, 2, 1, 3)
            end = int(positions.max()) + 1
        self._written[0] = max(self._written[0], end)
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, T: int) -> None:
        """Every row now holds T more positions (called once per forward, after all layers)."""
        self.lengths += T

    def reorder(self, rows: list[int]) -> None:
        """Make row i a copy of old row rows[i] (beam search: children take their parent's keys).

        Done in the memory already allocated, copying only the filled positions; a batch that
        grows past it gets new memory. Speed: a row that stays where it was (rows[i] == i) is
        not copied at all: a 4-beam gpt2 step, 28.3 -> 28.1 ms (the copies took about 0.9).
        """
        if list(rows) == list(range(self.batch_size)):
            return
        n = len(rows)
        end = int(self.lengths[rows].max()) if n else 0
        capacity = self._k_memory[0].shape[0]
        grows = n > capacity  # new memory: every row is copied into it
        moved = [i for i, r in enumerate(rows) if grows or i >= self.batch_size or r != i]
        sources = [rows[i] for i in moved]
        for layer in range(self.config.n_layer):
            # Fancy indexing reads a copy first, so overwriting the rows it came from is safe.
            k, v = self.k[layer][sources, :, :end], self.v[layer][sources, :, :end]
            if grows:
                shape = (n, *self._k_memory[layer].shape[1:])
                self._k_memory[layer] = spare_memory(shape)
                self._v_memory[layer] = spare_memory(shape)
            self.k[layer] = self._k_memory[layer][:n]  # views: the first n rows of the memory
            self.v[layer] = self._v_memory[layer][:n]
            self.k[layer][moved, :, :end] = k
            self.v[layer][moved, :, :end] = v
        self.lengths = self.lengths[rows]

    def row(self, b: int) -> KVCache:
        """Row b alone, as a batch-1 cache sharing memory with this one (a view)."""
        view = KVCache.__new__(KVCache)
        view._parent = self  # the memory is this cache's: keep it from being reused meanwhile
        view._written = self._written
        view.config = self.config
        view._k_memory, view._v_memory = self._k_memory, self._v_memory
        view.k = [k[b : b + 1] for k in self.k]
        view.v = [v[b : b + 1] for v in self.v]
        view.lengths = self.lengths[b : b + 1]  # a view too: advancing it advances row b
        return view


def lazy_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of zeros whose memory the OS provides page by page, on first write.

    np.zeros would do the same, except that for large arrays NumPy asks Linux for 2 MB "huge"
    pages. The first step writes position t of every (row, head) slab, so it would touch every
    huge page and the OS would zero the whole cache at once: 1.3 s for 8 rows of gpt2, more
    than 20 decoding steps. An anonymous mmap gets ordinary 4 KB pages, zeroed as positions fill.
    """
    n = int(np.prod(shape))
    memory = mmap.mmap(-1, max(4 * n, 1))  # anonymous (no file): the OS hands out zeroed pages
    return np.frombuffer(memory, np.float32, count=n).reshape(shape)


# Memory of dropped caches, for the next cache that asks for the same shape: per shape, a list
# of (array, positions written). Kept for the SPARE_SHAPES shapes released last, and only for
# a cache that wrote at most SPARE_BYTES (what a process keeps resident after generating).
_SPARE: dict[tuple[int, ...], list[tuple[np.ndarray, int]]] = {}
SPARE_SHAPES = 2
SPARE_BYTES = 256 * 2**20


def spare_memory(shape: tuple[int, ...]) -> np.ndarray:
    """Zeros of `shape` [B, n_head, positions, head_size]: a dropped cache's memory, zeroed where
    it was written, or else new memory (lazy_zeros).

    Speed: on the 2-vCPU VMs of the README's Speed table, the first write to each page of
    new memory runs at 1.4-1.6 GB/s (the OS's page fault is slow there), a write to memory
    the process has written before at 24 GB/s. A 512-token gpt2 prompt writes 38 MB of keys
    and values: the cache's writes took 30.5 ms into new memory, 4.1 into a dropped cache's
    (zeroing included). The first generation in a process still pays for new memory.
    """
    spares = _SPARE.get(shape)
    if not spares:
        return lazy_zeros(shape)
    memory, written = spares.pop()
    memory[:, :, :written] = 0  # what the last cache left there (zero everywhere past it)
    return memory


def keep_spare(k_memory: list[np.ndarray], v_memory: list[np.ndarray], written: list[int]) -> None:
    """Keep a dropped cache's memory (its finalizer calls this) for spare_memory."""
    if sum(m[:, :, : written[0]].nbytes for m in k_memory + v_memory) > SPARE_BYTES:
        return  # too much to hold on to: give it back to the OS
    for memory in k_memory + v_memory:
        if memory.size:
            _SPARE.setdefault(memory.shape, []).append((memory, written[0]))
            _SPARE[memory.shape] = _SPARE.pop(memory.shape)  # now the last released shape
    while len(_SPARE) > SPARE_SHAPES:
        del _SPARE[next(iter(_SPARE))]  # the shape released longest ago
