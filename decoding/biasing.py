"""Biasing and banning token sequences: sequence_bias and bad_words_ids (Hugging Face's
SequenceBiasLogitsProcessor and NoBadWordsLogitsProcessor).

A biased sequence [t1, ..., tn] adds its bias to the score of tn whenever the row ends with
t1 .. t(n-1), i.e. when the next token would complete it; a one-token sequence is biased at
every step. A bad word is a sequence with bias -inf. Pure functions: logits [B, V] and the B
sequences in, new float32 logits out.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from decoding.batch_checks import check_batch, check_eos_token, check_token_ids, check_vocab_ids

Biases = tuple[tuple[tuple[int, ...], float], ...]  # ((token ids, bias), ...), HF's dict order


def check_sequence_bias(sequence_bias: object) -> Biases:
    """HF's two spellings, [[ids, bias], ...] or {tuple(ids): bias}, as ((ids, bias), ...).

    A sequence given twice keeps its last bias, as HF's dict does.

    >>> check_sequence_bias([[[5], -1.0], [[3, 4], 2.0], [[5], 1.5]])
    (((5,), 1.5), ((3, 4), 2.0))
    """
    if isinstance(sequence_bias, Mapping):
        pairs = list(sequence_bias.items())
    elif isinstance(sequence_bias, (list, tuple)):
        pairs = list(sequence_bias)
    else:
        pairs = None
    if not pairs or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
        raise ValueError(
            "sequence_bias must be a non-empty list of [token ids, bias] pairs, e.g. "
            f"[[[464, 3290], -2.0]], got {sequence_bias!r:.80}"
        )
    merged: dict[tuple[int, ...], float] = {}
    for ids, bias in pairs:
        ids = check_token_ids("each sequence of sequence_bias", ids)
        if not ids:
            raise ValueError("sequence_bias has an empty sequence: give at least one token id")
        real = isinstance(bias, numbers.Real) and not isinstance(bias, bool)
        if not (real and not math.isnan(bias) and bias != math.inf):
            raise ValueError(f"sequence_bias's bias for {list(ids)} must be a number, got {bias!r}")
        merged[ids] = float(bias)
    return tuple(merged.items())


def _ends_with(sequence: Sequence[int], prefix: tuple[int, ...]) -> bool:
    n = len(prefix)
    return n <= len(sequence) and tuple(sequence[len(sequence) - n :]) == prefix


def _bias_vector(row: Sequence[int], biases: Biases, vocab_size: int) -> np.ndarray:
    """The float32 bias HF adds to one row's scores, summed in HF's order.

    HF first writes the one-token biases, then adds the longer ones group by group (groups of
    equal prefix length, in the order their first member appears): a token biased by several
    sequences gets their float32 sum in that order.
    """
    bias = np.zeros(vocab_size, dtype=np.float32)
    groups: dict[int, list[tuple[tuple[int, ...], float]]] = {}
    for ids, value in biases:
        if len(ids) == 1:
            bias[ids[0]] = np.float32(value)
        else:
            groups.setdefault(len(ids) - 1, []).append((ids, value))
    for group in groups.values():
        for ids, value in group:
            if _ends_with(row, ids[:-1]):
                bias[ids[-1]] += np.float32(value)
    return bias


def sequence_bias(
    logits: np.ndarray, sequences: Sequence[Sequence[int]], sequence_bias: object
) -> np.ndarray:
    """Add each sequence's bias to its last token's score where the row ends with the rest.

    >>> biases = [[[3], -1.0], [[1, 2], 5.0]]  # always -1 on 3; +5 on 2 right after a 1
    >>> sequence_bias(np.zeros((2, 4)), [[1, 2], [2, 1]], biases).tolist()
    [[0.0, 0.0, 0.0, -1.0], [0.0, 0.0, 5.0, -1.0]]
    """
    biases = check_sequence_bias(sequence_bias)
    x = check_batch(logits, sequences)
    check_vocab_ids("sequence_bias", [t for ids, _ in biases for t in ids], x.shape[1])
    # One float32 addition per score, as HF's `scores + bias` (an unbiased score adds 0.0).
    return np.stack(
        [x[r] + _bias_vector(row, biases, x.shape[1]) for r, row in enumerate(sequences)]
    )


def check_bad_words_ids(bad_words_ids: object) -> tuple[tuple[int, ...], ...]:
    """A non-empty list of non-empty token-id lists, as a tuple of tuples."""
    if not isinstance(bad_words_ids, (list, tuple)) or not bad_words_ids:
        raise ValueError(
            f"bad_words_ids must be a non-empty list of token-id lists, got {bad_words_ids!r:.80}"
        )
    words = tuple(check_token_ids("each entry of bad_words_ids", w) for w in bad_words_ids)
    if not all(words):
        raise ValueError("bad_words_ids has an empty entry: give at least one token id")
    return words


def bad_words_ids(
    logits: np.ndarray,
    sequences: Sequence[Sequence[int]],
    bad_words_ids: object,
    eos_token_id: int | None = None,
) -> np.ndarray:
    """Ban every token that would complete a bad word: its score becomes -inf.

    Like HF, a bad word that is the EOS token alone is dropped (banning EOS would stop a row
    from ever ending; use min_new_tokens for that), but EOS inside a longer word still counts.

    >>> bad_words_ids(np.zeros((1, 4)), [[0, 1]], [[3], [1, 2], [0, 2]], eos_token_id=3).tolist()
    [[0.0, 0.0, -inf, 0.0]]
    """
    words = check_bad_words_ids(bad_words_ids)
    eos = check_eos_token(eos_token_id)
    words = tuple(w for w in words if w != (eos,))
    x = check_batch(logits, sequences)
    check_vocab_ids("bad_words_ids", [t for w in words for t in w], x.shape[1])
    if not words:
        return x.copy()
    return sequence_bias(x, sequences, [[list(w), -math.inf] for w in words])
