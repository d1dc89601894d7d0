"""Input checks for the processors: a batch of scores with each row's token history, and the
token ids a processor is given. A mistake fails here in one line, naming the argument.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from decoding.warpers import as_logits


def is_int(value: object) -> bool:
    """An integer, and not a bool (True is not a token id or a count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_batch(logits: np.ndarray, sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """Logits as float32 [B, V] with one token list per row, or a one-line ValueError.

    >>> check_batch([[0.0, 1.0]], [[1]]).shape
    (1, 2)
    """
    x = as_logits(logits)
    if x.ndim != 2:
        raise ValueError(f"logits must have shape [batch, vocab], got shape {x.shape}")
    if len(sequences) != x.shape[0]:
        raise ValueError(
            f"got {len(sequences)} sequences for {x.shape[0]} rows of logits: pass one per row"
        )
    for seq in sequences:
        if any(t < 0 for t in seq):
            raise ValueError(f"token ids must be >= 0, got {min(seq)}")
    return x


def in_vocab(tokens: set[int] | Sequence[int], vocab_size: int) -> list[int]:
    """The distinct ids of `tokens` the head can produce (< vocab_size), sorted."""
    return sorted({int(t) for t in tokens if t < vocab_size})


def check_count(name: str, value: object) -> int:
    """An int >= 0: a length or a number of tokens."""
    if not (is_int(value) and value >= 0):
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def check_token_ids(name: str, ids: object) -> tuple[int, ...]:
    """A list of token ids (ints >= 0) as a tuple, or a one-line ValueError naming `name`."""
    if isinstance(ids, np.ndarray):
        ids = ids.tolist()
    if not isinstance(ids, (list, tuple)) or not all(is_int(t) and t >= 0 for t in ids):
        raise ValueError(f"{name} must be a list of token ids (ints >= 0), got {ids!r:.80}")
    return tuple(int(t) for t in ids)


def check_eos_token(eos_token_id: object) -> int | None:
    """None or a token id >= 0."""
    if eos_token_id is None:
        return None
    if not (is_int(eos_token_id) and eos_token_id >= 0):
        raise ValueError(f"eos_token_id must be None or a token id >= 0, got {eos_token_id!r}")
    return int(eos_token_id)


def check_vocab_ids(name: str, ids: Sequence[int], vocab_size: int) -> None:
    """Every id in `ids` must be a token the head can produce, as HF insists for biased ids."""
    outside = sorted({t for t in ids if t >= vocab_size})
    if outside:
        raise ValueError(
            f"{name} has token ids {outside} outside the vocabulary (size {vocab_size})"
        )


def generated_counts(
    sequences: Sequence[Sequence[int]], prompt_lengths: Sequence[int] | None, needed_by: str
) -> list[int]:
    """How many tokens each row has generated: its length minus its prompt's length.

    HF counts `input_ids.shape[-1] - prompt length` on a left-padded batch, which is the same
    number for every row; minigpt's rows are not padded, so each row subtracts its own prompt.

    >>> generated_counts([[5, 6, 7], [8]], [2, 1], "min_new_tokens")
    [1, 0]
    """
    if prompt_lengths is None:
        raise ValueError(
            f"{needed_by} counts the generated tokens: pass prompt_lengths (one per row)"
        )
    if len(prompt_lengths) != len(sequences):
        raise ValueError(
            f"got {len(prompt_lengths)} prompt_lengths for {len(sequences)} rows: pass one per row"
        )
    counts = []
    for seq, n in zip(sequences, prompt_lengths):
        if not (is_int(n) and 0 <= n <= len(seq)):
            raise ValueError(
                f"prompt length {n!r} does not fit a row of {len(seq)} tokens: pass each row's "
                "prompt length"
            )
        counts.append(len(seq) - int(n))
    return counts
