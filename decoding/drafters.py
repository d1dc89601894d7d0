"""Drafters: cheap guesses of the next few tokens, for assisted decoding (assisted.py) to check.

A drafter has two methods:

    propose(sequence, limit) -> Draft    # at most `limit` guessed tokens after `sequence`
    update(drafted, accepted)            # how the last guess went (the schedule listens)

Two kinds, as in Hugging Face `generate`:
- `DraftModel`: a second, smaller model (any next_token_logits callable with the target's
  vocabulary) runs a few steps on its own: greedily for greedy search, by sampling from its
  warped distribution q for sampling (`assistant_model=`).
- `PromptLookup`: no model at all. The last few tokens of the text often occurred earlier in it
  (names, repeated phrases, code); guess that what followed them then follows them again
  (`prompt_lookup_num_tokens=`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from decoding.common import NextTokenLogits, ask_model, check_positive_int
from decoding.processors import Processors, banned_ngram_tokens

# A draft model's choice at one step: (raw logits [V], the sequence so far) -> (token, q,
# confidence), where q is the distribution the token was drawn from (sampling), or None
# (greedy: the argmax), and confidence the draft's own probability of the token: softmax of
# its processed (and, when sampling, warped) scores at the token.
Pick = Callable[[np.ndarray, list[int]], tuple[int, np.ndarray | None, float]]

DEFAULT_NUM_ASSISTANT_TOKENS = 20  # HF's num_assistant_tokens
DEFAULT_CONFIDENCE_THRESHOLD = 0.4  # HF's assistant_confidence_threshold
SCHEDULES = ("constant", "heuristic")


@dataclass
class Draft:
    """Guessed tokens, and for a sampling draft model the distribution q each was drawn from.

    q is None when the tokens were chosen deterministically (greedy drafting, prompt lookup):
    to the sampling rule each is then a certain guess, q = 1 on it and 0 elsewhere.
    """

    tokens: list[int]
    q: list[np.ndarray] | None = None


class DraftModel:
    """Drafter (a): run a second model for up to `num_tokens` steps and propose what it chose.

    The schedule sets how many tokens the next round drafts (HF's num_assistant_tokens_schedule):
    "constant" keeps `num_tokens`; "heuristic" adds 2 after a round in which every drafted token
    was accepted and takes 1 away otherwise, never going below 1. (HF's "heuristic" also carries
    the number over to the next `generate` call on the same assistant; here every decoder call
    starts again from `num_tokens`, which is what HF calls "heuristic_transient".)

    A round also ends early after a token the draft model itself doubts: one whose confidence
    (its own probability of the token) is below `confidence_threshold`, HF's
    assistant_confidence_threshold, 0.4 by default; 0 turns this off. The doubted token is
    still proposed: HF checks its stopping criteria after appending a token. (HF also re-tunes
    the threshold after every round, from a ROC curve of past confidences and acceptances,
    but only when scikit-learn is installed; without it, as here, the threshold stays fixed.)
    """

    def __init__(
        self,
        model: NextTokenLogits,
        pick: Pick,
        eos_token_id: int | None,
        num_tokens: int = DEFAULT_NUM_ASSISTANT_TOKENS,
        schedule: str = "constant",
        confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
    ) -> None:
        self.num_tokens = check_positive_int("num_assistant_tokens", num_tokens)
        self.threshold = check_threshold(confidence_threshold)
        if schedule not in SCHEDULES:
            raise ValueError(
                f"num_assistant_tokens_schedule must be one of {', '.join(SCHEDULES)}, "
                f"got {schedule!r}"
            )
        self.model, self.pick, self.eos, self.schedule = model, pick, eos_token_id, schedule
        self.vocab_size: int | None = None  # the draft model's, known after its first call

    def propose(self, sequence: list[int], limit: int) -> Draft:
        """Up to min(num_tokens, limit) tokens, one draft-model call each; stops after EOS, after
        a token whose confidence is below the threshold, or before a position where the
        processors banned every token."""
        tokens: list[int] = []
        dists: list[np.ndarray] = []
        while len(tokens) < min(self.num_tokens, limit):
            so_far = sequence + tokens
            logits = ask_model(self.model, [so_far], self.vocab_size)[0]
            self.vocab_size = len(logits)
            token, q, confidence = self.pick(logits, so_far)
            if token < 0:  # nothing left to choose: let the target decide from here
                break
            tokens.append(token)
            if q is not None:
                dists.append(q)
            if token == self.eos or confidence < self.threshold:
                break
        return Draft(tokens, dists if dists else None)

    def update(self, drafted: int, accepted: int) -> None:
        if self.schedule == "heuristic":
            if accepted == drafted:
                self.num_tokens += 2
            else:
                self.num_tokens = max(1, self.num_tokens - 1)


def check_threshold(threshold: object) -> float:
    """assistant_confidence_threshold: a number in [0, 1] (0: never stop a draft early)."""
    ok = isinstance(threshold, (int, float, np.floating)) and not isinstance(threshold, bool)
    if not (ok and 0 <= threshold <= 1):
        raise ValueError(
            f"assistant_confidence_threshold must be a number in [0, 1], got {threshold!r}"
        )
    return float(threshold)


class PromptLookup:
    """Drafter (b): propose what followed the last n-gram the previous time it occurred."""

    def __init__(
        self,
        num_tokens: int,
        max_ngram_size: int | None,
        processors: Processors,
        eos_token_id: int | None,
    ) -> None:
        self.num_tokens = check_positive_int("prompt_lookup_num_tokens", num_tokens)
        # HF: max_matching_ngram_size None means 2.
        self.max_ngram_size = check_positive_int(
            "max_matching_ngram_size", 2 if max_ngram_size is None else max_ngram_size
        )
        self.processors, self.eos = processors, eos_token_id

    def propose(self, sequence: list[int], limit: int) -> Draft:
        if limit < 1:
            return Draft([])
        found = lookup(sequence, self.num_tokens, self.max_ngram_size, self.banned, self.eos)
        return Draft(found[:limit])

    def banned(self, sequence: list[int]) -> set[int]:
        """Tokens the processors would remove after `sequence` (only no-repeat-ngram removes;
        a repetition penalty makes tokens less likely, never impossible)."""
        n = dict(self.processors.active()).get("no_repeat_ngram_size")
        return banned_ngram_tokens(sequence, n) if n else set()

    def update(self, drafted: int, accepted: int) -> None:
        pass  # HF keeps prompt_lookup_num_tokens fixed


def lookup(
    sequence: list[int],
    num_tokens: int,
    max_ngram_size: int = 2,
    banned: Callable[[list[int]], set[int]] = lambda seq: set(),
    eos_token_id: int | None = None,
) -> list[int]:
    """Prompt lookup, with HF's rules (PromptLookupCandidateGenerator):

    - n runs from max_ngram_size (at most len(sequence) - 1) down to 1: longer n-grams first;
    - for one n, the occurrences of the sequence's last n tokens are tried left to right, the
      EARLIEST first (not the most recent), skipping one with nothing after it (the n-gram at
      the very end is always an occurrence of itself);
    - the guess is the up to `num_tokens` tokens that followed it, cut before the first token
      the processors would ban (`banned(sequence so far)`); a guess cut to nothing moves on to
      the next occurrence;
    - the first guess that survives is cut before its first EOS, and that is the answer, even
      when the cut leaves nothing (no other occurrence is tried then).

    >>> lookup([1, 2, 3, 4, 1, 2], num_tokens=3)    # "1 2" occurred before, "3 4 1" followed
    [3, 4, 1]
    >>> lookup([5, 1, 7, 6, 1, 9, 2, 1], num_tokens=2)  # only "1" matches: its first occurrence
    [7, 6]
    >>> lookup([1, 2, 3], num_tokens=3)  # nothing repeats
    []
    """
    size = len(sequence)
    for n in range(min(max_ngram_size, size - 1), 0, -1):
        tail = sequence[size - n :]
        for start in range(size - n + 1):
            if sequence[start : start + n] != tail:
                continue
            guess = sequence[start + n : start + n + num_tokens]
            for i, token in enumerate(guess):
                if token in banned(sequence + guess[:i]):
                    guess = guess[:i]
                    break
            if not guess:
                continue
            if eos_token_id is not None and eos_token_id in guess:
                guess = guess[: guess.index(eos_token_id)]
            return guess
    return []
