"""Logits processors: what generate() does to the scores before any warper, and `Processors`,
which runs them in generate()'s order.

Here: repetition penalty and no-repeat-ngram, which see each row's whole sequence, prompt
included (as Hugging Face's RepetitionPenaltyLogitsProcessor and NoRepeatNGramLogitsProcessor
do for decoder-only models); suppress_tokens and begin_suppress_tokens; and renormalize_logits,
HF's LogitNormalization, which the pipeline (decoding/pipeline.py) runs last of all. The
sequence biases live in decoding/biasing.py, the EOS-timing processors in
decoding/length_processors.py. Pure functions: logits [B, V] and B token lists in, new float32
logits out. Token ids >= V in a sequence are ignored, as HF ignores ids the head cannot produce.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from decoding.batch_checks import (
    check_batch,
    check_count,
    check_eos_token,
    check_token_ids,
    generated_counts,
    in_vocab,
)
from decoding.biasing import (
    bad_words_ids,
    check_bad_words_ids,
    check_sequence_bias,
    sequence_bias,
)
from decoding.length_processors import (
    check_decay,
    exponential_decay_length_penalty,
    min_length,
    min_new_tokens,
)
from decoding.probs import log_softmax
from decoding.warpers import REMOVED, ScoreStep, as_logits, score_step


def _check_penalty(penalty: float) -> np.float32:
    ok = isinstance(penalty, numbers.Real) and not isinstance(penalty, bool)
    if not (ok and math.isfinite(penalty) and penalty > 0):
        raise ValueError(f"repetition_penalty must be a finite number > 0, got {penalty!r}")
    return np.float32(penalty)


def _check_ngram_size(n: int) -> int:
    if not (isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"no_repeat_ngram_size must be an integer >= 1, got {n!r}")
    return int(n)


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
    out = check_batch(logits, sequences).copy()
    for row, seq in enumerate(sequences):
        seen = in_vocab(seq, out.shape[1])
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
    out = check_batch(logits, sequences).copy()
    for row, seq in enumerate(sequences):
        out[row, in_vocab(banned_ngram_tokens(seq, n), out.shape[1])] = REMOVED
    return out


def suppress_tokens(logits: np.ndarray, suppress_tokens: Sequence[int]) -> np.ndarray:
    """Set the listed tokens to -inf at every step (ids >= V are ignored, as torch.isin does).

    >>> suppress_tokens(np.zeros((1, 3)), [0, 7]).tolist()
    [[-inf, 0.0, 0.0]]
    """
    ids = check_token_ids("suppress_tokens", suppress_tokens)
    out = as_logits(logits).copy()
    out[..., in_vocab(ids, out.shape[-1])] = REMOVED
    return out


def begin_suppress_tokens(
    logits: np.ndarray,
    sequences: Sequence[Sequence[int]],
    prompt_lengths: Sequence[int],
    begin_suppress_tokens: Sequence[int],
) -> np.ndarray:
    """Set the listed tokens to -inf at the first generated position only.

    HF's "begin" is the step where the sequence is exactly as long as the prompt: for a
    decoder-only model, the choice of the first new token (HF moves it one step later only
    when a one-token prompt is followed by a forced BOS, which minigpt never forces).

    >>> begin_suppress_tokens(np.zeros((2, 3)), [[5, 6], [5, 6, 1]], [2, 2], [1]).tolist()
    [[0.0, -inf, 0.0], [0.0, 0.0, 0.0]]
    """
    ids = check_token_ids("begin_suppress_tokens", begin_suppress_tokens)
    out = check_batch(logits, sequences).copy()
    first = np.array(generated_counts(sequences, prompt_lengths, "begin_suppress_tokens")) == 0
    out[np.ix_(first, in_vocab(ids, out.shape[1]))] = REMOVED
    return out


def renormalize_logits(logits: np.ndarray) -> np.ndarray:
    """Log-softmax the scores again (HF's LogitNormalization), so that what the processors and
    warpers left is a log-distribution once more. generate() runs it after everything else.

    >>> np.exp(renormalize_logits(np.array([[0.0, -np.inf, 0.0]]))).tolist()
    [[0.5, 0.0, 0.5]]
    """
    return log_softmax(as_logits(logits))


# What each processor needs, besides the scores: (scores, sequences, prompt_lengths, eos, param).
_RUN = {
    "sequence_bias": lambda x, seqs, lengths, eos, p: sequence_bias(x, seqs, p),
    "repetition_penalty": lambda x, seqs, lengths, eos, p: repetition_penalty(x, seqs, p),
    "no_repeat_ngram_size": lambda x, seqs, lengths, eos, p: no_repeat_ngram(x, seqs, p),
    "bad_words_ids": lambda x, seqs, lengths, eos, p: bad_words_ids(x, seqs, p, eos),
    "min_length": lambda x, seqs, lengths, eos, p: min_length(x, seqs, p, eos),
    "min_new_tokens": lambda x, seqs, lengths, eos, p: min_new_tokens(x, seqs, lengths, p, eos),
    "exponential_decay_length_penalty": lambda x, seqs, lengths, eos, p: (
        exponential_decay_length_penalty(x, seqs, lengths, p, eos)
    ),
    "suppress_tokens": lambda x, seqs, lengths, eos, p: suppress_tokens(x, p),
    "begin_suppress_tokens": lambda x, seqs, lengths, eos, p: begin_suppress_tokens(
        x, seqs, lengths, p
    ),
}


@dataclass(frozen=True)
class Processors:
    """The logits processors of `generate()`, in its order: sequence_bias, repetition_penalty,
    no_repeat_ngram_size, bad_words_ids, min_length, min_new_tokens,
    exponential_decay_length_penalty, suppress_tokens, begin_suppress_tokens.

    Off as in HF: repetition_penalty None or 1.0, no_repeat_ngram_size None or 0,
    min_length and min_new_tokens None or 0, the rest None (or empty). Like HF:
    - min_length, min_new_tokens and exponential_decay_length_penalty act on EOS only, so
      without an eos_token_id they do nothing (HF leaves them out then);
    - setting min_new_tokens (even to 0) overrides min_length: HF then replaces min_length
      by min_new_tokens + the prompt length, the same rule counted another way.
    Lists are stored as tuples, so two equal Processors compare equal.

    >>> Processors(no_repeat_ngram_size=1).apply(np.zeros((1, 3)), [[2]]).tolist()
    [[0.0, 0.0, -inf]]
    >>> Processors(min_new_tokens=2).apply(np.zeros((1, 3)), [[0, 1]], prompt_lengths=[1],
    ...                                    eos_token_id=2).tolist()
    [[0.0, 0.0, -inf]]
    """

    repetition_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    sequence_bias: object = None
    bad_words_ids: object = None
    min_length: int | None = None
    min_new_tokens: int | None = None
    exponential_decay_length_penalty: tuple[int, float] | None = None
    suppress_tokens: Sequence[int] | None = None
    begin_suppress_tokens: Sequence[int] | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise a one-line ValueError naming the first bad parameter; store lists as tuples."""
        if self.repetition_penalty is not None:
            _check_penalty(self.repetition_penalty)
        if self.no_repeat_ngram_size is not None and self.no_repeat_ngram_size != 0:
            _check_ngram_size(self.no_repeat_ngram_size)
        canonical = {}
        if self.sequence_bias is not None:
            canonical["sequence_bias"] = check_sequence_bias(self.sequence_bias)
        if self.bad_words_ids is not None:
            canonical["bad_words_ids"] = check_bad_words_ids(self.bad_words_ids)
        for name in ("min_length", "min_new_tokens"):
            if getattr(self, name) is not None:
                check_count(name, getattr(self, name))
        if self.exponential_decay_length_penalty is not None:
            canonical["exponential_decay_length_penalty"] = check_decay(
                self.exponential_decay_length_penalty
            )
        for name in ("suppress_tokens", "begin_suppress_tokens"):
            if getattr(self, name) is not None:
                canonical[name] = check_token_ids(name, getattr(self, name))
        for name, value in canonical.items():
            object.__setattr__(self, name, value)  # frozen: only here, before anyone reads it

    def active(self, eos_token_id: int | None = None) -> list[tuple[str, object]]:
        """(name, parameter) of the processors that will run, in generate()'s order."""
        has_eos = check_eos_token(eos_token_id) is not None
        wanted = [
            ("sequence_bias", self.sequence_bias is not None),
            ("repetition_penalty", self.repetition_penalty not in (None, 1.0)),
            ("no_repeat_ngram_size", self.no_repeat_ngram_size not in (None, 0)),
            ("bad_words_ids", self.bad_words_ids is not None),
            ("min_length", has_eos and self.min_new_tokens is None and bool(self.min_length)),
            ("min_new_tokens", has_eos and bool(self.min_new_tokens)),
            ("exponential_decay_length_penalty",
             has_eos and self.exponential_decay_length_penalty is not None),
            ("suppress_tokens", bool(self.suppress_tokens)),
            ("begin_suppress_tokens", bool(self.begin_suppress_tokens)),
        ]  # fmt: skip
        return [(name, getattr(self, name)) for name, on in wanted if on]

    def apply_traced(
        self,
        logits: np.ndarray,
        sequences: Sequence[Sequence[int]],
        *,
        prompt_lengths: Sequence[int] | None = None,
        eos_token_id: int | None = None,
        record: bool = True,
    ) -> tuple[np.ndarray, list[ScoreStep]]:
        """Processed logits [B, V] (a new array even when nothing runs) and one ScoreStep per
        processor that ran (none when not `record`: an untraced run needs no records, and
        making them costs full passes over the scores). prompt_lengths (one per row) is
        needed by min_new_tokens, exponential_decay_length_penalty and begin_suppress_tokens;
        eos_token_id by the EOS-timing processors and by bad_words_ids (which never bans EOS
        alone)."""
        x = check_batch(logits, sequences).copy()
        steps = []
        for name, param in self.active(eos_token_id):
            before, x = x, _RUN[name](x, sequences, prompt_lengths, eos_token_id, param)
            if record:
                steps.append(score_step(name, param, before, x))
        return x, steps

    def apply(
        self,
        logits: np.ndarray,
        sequences: Sequence[Sequence[int]],
        *,
        prompt_lengths: Sequence[int] | None = None,
        eos_token_id: int | None = None,
    ) -> np.ndarray:
        """Processed logits [B, V], without the records (see apply_traced)."""
        x, _ = self.apply_traced(
            logits, sequences, prompt_lengths=prompt_lengths, eos_token_id=eos_token_id,
            record=False,
        )  # fmt: skip
        return x
