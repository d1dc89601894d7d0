"""Toy next_token_logits callables for the decoder tests (see docs/design.md, "The seam").

Each returns float32 logits [len(sequences), V] and depends only on the sequences it is given:
- bigram:     a random table indexed by the last token;
- positional: a random table indexed by the sequence length;
- uniform:    all zeros, every token tied (the hardest case for tie-breaking);
- history:    random logits seeded by the whole sequence, so no two prefixes share a row.
`Counting` wraps one and records every call, to check how decoders talk to the model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

KINDS = ("bigram", "positional", "uniform", "history")


def toy_model(kind: str, vocab_size: int, seed: int, scale: float = 2.0) -> Callable:
    """A deterministic toy language model of the given kind."""
    rng = np.random.default_rng(seed)
    if kind == "bigram":
        table = rng.normal(0.0, scale, (vocab_size, vocab_size)).astype(np.float32)
        return lambda seqs: table[[s[-1] for s in seqs]]
    if kind == "positional":
        table = rng.normal(0.0, scale, (64, vocab_size)).astype(np.float32)
        return lambda seqs: table[[len(s) % 64 for s in seqs]]
    if kind == "uniform":
        return lambda seqs: np.zeros((len(seqs), vocab_size), dtype=np.float32)
    if kind == "history":

        def history(seqs):
            rows = [np.random.default_rng([seed, *s]).normal(0.0, scale, vocab_size) for s in seqs]
            return np.array(rows, dtype=np.float32).reshape(len(seqs), vocab_size)

        return history
    raise ValueError(f"unknown toy model {kind!r}")


class Counting:
    """A callable that forwards to `model` and records the batches it was asked."""

    def __init__(self, model: Callable):
        self.model = model
        self.batches: list[list[list[int]]] = []

    def __call__(self, sequences: list[list[int]]) -> np.ndarray:
        self.batches.append([list(s) for s in sequences])
        return self.model(sequences)
