"""The seam between the model and the decoders: next-token logits for any token sequences.

Decoders call `next_token_logits(sequences)` with plain lists of ids and get [len(sequences), V]
float32 logits back; they never see a cache. This adapter hides the caching: it remembers, for
every sequence it answered last time, the KV cache of that sequence (one row of a `KVCache`).
Asked about `seq + [t]`, it finds the cached row sharing the longest prefix, runs the model on
the missing token(s) only, and keeps the new rows. Rows nobody extended are dropped, so memory
stays at one row per live sequence. One call runs as one batch; duplicates are computed once.
"""

from __future__ import annotations

import numpy as np

from minigpt.errors import MiniGPTError
from minigpt.gpt2 import GPT2
from minigpt.kv_cache import KVCache


class NextTokenLogits:
    """`adapter(sequences) -> [len(sequences), V]`, reusing cached prefixes.

    >>> import minigpt
    >>> adapter = NextTokenLogits(minigpt.load("minigpt-tiny"))  # the bundled model
    >>> adapter([[41, 511, 259, 527], [41, 511]]).shape
    (2, 1478)
    """

    def __init__(self, model: GPT2) -> None:
        self.model = model
        # The decoders read this to refuse, before any work, a run longer than the context.
        self.context_length = model.config.n_positions
        self.vocab_size = model.config.vocab_size  # assisted decoding compares a draft's with it
        self.rows: list[tuple[int, ...]] = []  # the sequence held by each cache row
        self.cache: KVCache = model.new_cache(0)
        self.calls = 0  # forward passes run: a figure for learners and tests

    def __repr__(self) -> str:
        return f"NextTokenLogits({self.model!r}, cache={self.cache!r}, calls={self.calls})"

    def __call__(self, sequences: list[list[int]]) -> np.ndarray:
        wanted = [tuple(int(t) for t in s) for s in sequences]
        if not wanted:
            raise MiniGPTError("next_token_logits needs at least one sequence")
        unique = list(dict.fromkeys(wanted))  # identical sequences are computed once
        for seq in unique:
            self.model.check_ids(np.array(seq, dtype=np.int64))
        sources = [self._best_source(seq) for seq in unique]
        self._reuse(sources)
        self.rows = unique
        logits = self._run_missing_tokens(unique)  # [len(unique), V]
        if len(unique) == len(wanted):  # no repeats: the rows are already in the order asked
            return logits  # Speed: no copy of [B, V] (8 rows of gpt2: 0.07-0.2 ms a step)
        index = {seq: i for i, seq in enumerate(unique)}
        return logits[[index[seq] for seq in wanted]]

    def logits_at_positions(self, sequence: list[int], n: int) -> np.ndarray:
        """The logits after each of the last n + 1 prefixes of ONE sequence: [n + 1, V].

        Row i is what follows sequence[: len(sequence) - n + i]: assisted decoding checks n
        drafted tokens with it (decoding.common.ask_model_at_positions). The tokens the cache
        does not hold yet run as one forward pass, every position kept (a step keeps only
        the last), and the cache then holds the whole sequence. When the next call is about a
        sequence that leaves it (drafted tokens were rejected), the cache keeps the common
        prefix and forgets the rest, exactly as __call__ does.

        >>> import minigpt
        >>> adapter = NextTokenLogits(minigpt.load("minigpt-tiny"))
        >>> adapter.logits_at_positions([41, 511, 259, 527], 2).shape, adapter.calls
        ((3, 1478), 1)
        """
        seq = tuple(int(t) for t in sequence)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < len(seq):
            raise MiniGPTError(
                f"logits_at_positions needs 0 <= n < len(sequence) = {len(seq)}, got n = {n!r}"
            )
        self.model.check_ids(np.array(seq, dtype=np.int64))
        row, held = self._best_source(seq)
        # The rows we return are the outputs at positions len - n - 1 .. len - 1: run them all.
        held = min(held, len(seq) - 1 - int(n))
        self._reuse([(row, held)])
        self.rows = [seq]
        tokens = np.array([seq[held:]])  # [1, T]
        self.calls += 1
        return self.model.forward(tokens, self.cache)[0, -(int(n) + 1) :]  # [1, T, V] -> [n+1, V]

    def _best_source(self, seq: tuple[int, ...]) -> tuple[int, int]:
        """(cache row, tokens of seq it already holds) sharing the longest prefix, or (-1, 0)."""
        best = (-1, 0)
        for row, held in enumerate(self.rows):
            n = _common_prefix(held, seq)
            # Keep at least the last token to run: its output gives the logits we return.
            n = min(n, len(seq) - 1)
            if n > best[1]:
                best = (row, n)
        return best

    def _reuse(self, sources: list[tuple[int, int]]) -> None:
        """Rearrange the cache so row i starts as a (possibly truncated) copy of its source."""
        rows = [row if row >= 0 else 0 for row, _ in sources]
        if self.cache.batch_size == 0:
            self.cache = self.model.new_cache(len(sources))
        else:
            self.cache.reorder(rows)  # no copy when every row extends itself in order
        # Keeping a shorter prefix just means forgetting the positions after it.
        self.cache.lengths[:] = [n for _, n in sources]

    def _run_missing_tokens(self, seqs: list[tuple[int, ...]]) -> np.ndarray:
        """Run each row's uncached tokens, as one batch when every row misses the same number
        (a decoding step misses one; prompts of equal length miss all theirs)."""
        lengths = self.cache.lengths
        missing = {len(seq) - int(lengths[b]) for b, seq in enumerate(seqs)}
        if len(missing) > 1:  # ragged: first bring every row to one token short, row by row
            for b, seq in enumerate(seqs):
                if len(seq) - 1 > lengths[b]:
                    tokens = np.array([seq[lengths[b] : -1]])  # [1, T]
                    self.model.forward(tokens, self.cache.row(b), last_only=True)
                    self.calls += 1
        tokens = np.array([seq[lengths[b] :] for b, seq in enumerate(seqs)])  # [B, T]
        self.calls += 1
        return self.model.forward(tokens, self.cache, last_only=True)[:, -1]  # [B, 1, V] -> [B, V]


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    if a == b[: len(a)]:  # the usual case, one tuple comparison: b extends a
        return len(a)
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
