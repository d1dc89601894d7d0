"""Logits processors that look at the token history: repetition penalty and no-repeat-ngram.

They run before the warpers and see each row's whole sequence, prompt included (as Hugging
Face's RepetitionPenaltyLogitsProcessor and NoRepeatNGramLogitsProcessor do for decoder-only
models). Pure functions: logits [B, V] and B token lists in, new float32 logits out.
Token ids >= V are ignored, as HF ignores ids the head cannot produce.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from decoding.warpers import REMOVED, as_logits


def _check_batch(logits: np.ndarray, sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """Logits as float32 [B, V] with one token list per row, or a one-line ValueError."""
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


def _check_penalty(penalty: float) -> np.float32:
    ok = isinstance(penalty, numbers.Real) and not isinstance(penalty, bool)
    if not (ok and math.isfinite(penalty) and penalty > 0):
        raise ValueError(f"repetition_penalty must be a finite number > 0, got {penalty!r}")
    return np.float32(penalty)


def _check_ngram_size(n: int) -> int:
    if not (isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"no_repeat_ngram_size must be an integer >= 1, got {n!r}")
    return int(n)


def _in_vocab(tokens: set[int] | Sequence[int], vocab_size: int) -> list[int]:
    return sorted({int(t) for t in tokens if t < vocab_size})


def repetition_penalty(
    logits: np.ndarray, sequences: Sequence[Sequence[int]], penalty: float
) -> np.ndarray:
    """Make every token already in the row's sequence less likely (penalty > 1) or more (< 1).

    A negative logit is multiplied by the penalty, any other divided by it, so both move
    toward "less likely". Each distinct token is penalised once, however often it occurred.

    >>> repetition_penalty(np.array([[2.0, -2.0, 1.0]]), [[0, 1, 1]], 2.0).tolist()
    [[1.0, -4.0, 1.0]]
    """
    r = _check_penalty(penalty)
    out = _check_batch(logits, sequences).copy()
    for row, seq in enumerate(sequences):
        seen = _in_vocab(seq, out.shape[1])
        old = out[row, seen]
        out[row, seen] = np.where(old < 0, old * r, old / r)
    return out


def banned_ngram_tokens(sequence: Sequence[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in `sequence`.

    The next token completes the n-gram (last n-1 tokens, next token); it is banned if some
    earlier window starts with those same n-1 tokens. For n = 1 every seen token is banned.

    >>> sorted(banned_ngram_tokens([5, 6, 7, 5, 6, 9, 5], 2))
    [6]
    """
    n = _check_ngram_size(n)
    length = len(sequence)
    if length < n:
        return set()  # no complete n-gram yet
    suffix = tuple(sequence[length - n + 1 :])  # the last n-1 tokens (empty when n == 1)
    return {
        int(sequence[i + n - 1])
        for i in range(length - n + 1)
        if tuple(sequence[i : i + n - 1]) == suffix
    }


def no_repeat_ngram(logits: np.ndarray, sequences: Sequence[Sequence[int]], n: int) -> np.ndarray:
    """Set to -inf every token that would repeat an n-gram of the row's sequence.

    >>> no_repeat_ngram(np.zeros((1, 4)), [[1, 2, 3, 1]], 2).tolist()
    [[0.0, 0.0, -inf, 0.0]]
    """
    n = _check_ngram_size(n)
    out = _check_batch(logits, sequences).copy()
    for row, seq in enumerate(sequences):
        out[row, _in_vocab(banned_ngram_tokens(seq, n), out.shape[1])] = REMOVED
    return out


@dataclass(frozen=True)
class Processors:
    """The history processors of `generate()`, in its order: repetition penalty, no-repeat-ngram.

    Off as in HF: repetition_penalty None or 1.0, no_repeat_ngram_size None or 0.

    >>> Processors(no_repeat_ngram_size=1).apply(np.zeros((1, 3)), [[2]]).tolist()
    [[0.0, 0.0, -inf]]
    """

    repetition_penalty: float | None = None
    no_repeat_ngram_size: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise a one-line ValueError naming the first bad parameter."""
        if self.repetition_penalty is not None:
            _check_penalty(self.repetition_penalty)
        if self.no_repeat_ngram_size is not None and self.no_repeat_ngram_size != 0:
            _check_ngram_size(self.no_repeat_ngram_size)

    def active(self) -> list[tuple[str, float | int]]:
        """(name, parameter) of the processors that will run, in order."""
        steps: list[tuple[str, float | int]] = []
        if self.repetition_penalty is not None and self.repetition_penalty != 1.0:
            steps.append(("repetition_penalty", self.repetition_penalty))
        if self.no_repeat_ngram_size is not None and self.no_repeat_ngram_size != 0:
            steps.append(("no_repeat_ngram_size", self.no_repeat_ngram_size))
        return steps

    def apply(self, logits: np.ndarray, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Processed logits [B, V] (a new array even when nothing runs)."""
        x = _check_batch(logits, sequences).copy()
        for name, param in self.active():
            if name == "repetition_penalty":
                x = repetition_penalty(x, sequences, param)
            else:
                x = no_repeat_ngram(x, sequences, param)
        return x
