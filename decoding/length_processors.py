"""Processors that decide when EOS may come: min_length, min_new_tokens and the exponential
decay length penalty (Hugging Face's MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor
and ExponentialDecayLengthPenalty).

Each reads how long the row is, never which tokens it holds, and touches only the EOS score.
Pure functions: logits [B, V] and the B sequences in, new float32 logits out.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from decoding.batch_checks import check_batch, check_count, check_eos_token, generated_counts
from decoding.warpers import REMOVED


def _check_eos(eos_token_id: object, vocab_size: int, who: str) -> int:
    eos = check_eos_token(eos_token_id)
    if eos is None:
        raise ValueError(f"{who} needs an eos_token_id: it only ever changes the EOS score")
    if eos >= vocab_size:
        raise ValueError(f"eos_token_id {eos} is outside the vocabulary (size {vocab_size})")
    return eos


def _ban_eos_where(x: np.ndarray, rows: list[bool], eos: int) -> np.ndarray:
    out = x.copy()
    out[np.array(rows, dtype=bool), eos] = REMOVED
    return out


def min_length(
    logits: np.ndarray, sequences: Sequence[Sequence[int]], min_length: int, eos_token_id: int
) -> np.ndarray:
    """Forbid EOS while a row is shorter than min_length tokens, prompt included.

    HF counts the prompt (for a decoder-only model the sequence is prompt + generated). On a
    left-padded batch HF also counts the padding; minigpt's rows are unpadded, so a row of a
    batch counts its own prompt. min_new_tokens is usually what one means.

    >>> min_length(np.zeros((2, 3)), [[1, 1], [1, 1, 1]], 3, eos_token_id=2).tolist()
    [[0.0, 0.0, -inf], [0.0, 0.0, 0.0]]
    """
    n = check_count("min_length", min_length)
    x = check_batch(logits, sequences)
    eos = _check_eos(eos_token_id, x.shape[1], "min_length")
    return _ban_eos_where(x, [len(seq) < n for seq in sequences], eos)


def min_new_tokens(
    logits: np.ndarray,
    sequences: Sequence[Sequence[int]],
    prompt_lengths: Sequence[int],
    min_new_tokens: int,
    eos_token_id: int,
) -> np.ndarray:
    """Forbid EOS until a row has generated min_new_tokens tokens (its prompt not counted).

    >>> min_new_tokens(np.zeros((1, 3)), [[1, 1, 0]], [2], 2, eos_token_id=2).tolist()
    [[0.0, 0.0, -inf]]
    """
    n = check_count("min_new_tokens", min_new_tokens)
    x = check_batch(logits, sequences)
    eos = _check_eos(eos_token_id, x.shape[1], "min_new_tokens")
    generated = generated_counts(sequences, prompt_lengths, "min_new_tokens")
    return _ban_eos_where(x, [g < n for g in generated], eos)


def check_decay(penalty: object) -> tuple[int, float]:
    """(start_index, decay_factor): an int >= 0 and a finite number."""
    ok = isinstance(penalty, (tuple, list)) and len(penalty) == 2
    if ok:
        start, factor = penalty
        ok = isinstance(factor, numbers.Real) and not isinstance(factor, bool)
        ok = ok and math.isfinite(factor)
    if not ok:
        raise ValueError(
            "exponential_decay_length_penalty must be a pair (start_index, decay_factor), "
            f"e.g. (10, 1.5), got {penalty!r}"
        )
    return check_count("exponential_decay_length_penalty's start_index", start), float(factor)


def exponential_decay_length_penalty(
    logits: np.ndarray,
    sequences: Sequence[Sequence[int]],
    prompt_lengths: Sequence[int],
    exponential_decay_length_penalty: tuple[int, float],
    eos_token_id: int,
) -> np.ndarray:
    """Raise the EOS score more and more once a row has generated more than start_index tokens:
    after g > start_index generated tokens, EOS gains |score| * (decay_factor ** (g - start) - 1).

    Like HF: start_index counts generated tokens (HF adds the prompt length to it and compares
    with the whole length), the first step it acts on is the one after start_index tokens, and
    it adds to |score| so that a negative EOS score rises too. A -inf EOS score stays -inf.
    The factor is computed in float64, as HF's Python pow does, then rounded to float32.

    >>> exponential_decay_length_penalty(
    ...     np.array([[1.0, -2.0]]), [[0, 0, 0, 0]], [1], (1, 2.0), eos_token_id=1).tolist()
    [[1.0, 4.0]]
    """
    start, factor = check_decay(exponential_decay_length_penalty)
    x = check_batch(logits, sequences)
    eos = _check_eos(eos_token_id, x.shape[1], "exponential_decay_length_penalty")
    generated = generated_counts(sequences, prompt_lengths, "exponential_decay_length_penalty")
    out = x.copy()
    for row, g in enumerate(generated):
        if g > start:
            score = out[row, eos]
            if np.isfinite(score):
                out[row, eos] = score + np.abs(score) * np.float32(factor ** (g - start) - 1)
    return out
