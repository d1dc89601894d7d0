"""Stopping criteria besides EOS and max_new_tokens: stop_strings and max_time (Hugging Face's
StopStringCriteria and MaxTimeCriteria), without a tokenizer and without reading a clock
unless given one.

A decoder asks after every generated token whether a row should stop; the token that
triggered the stop stays in the output, as in HF.

Stop strings. HF decides, after each new token, whether the text ENDS in a stop string in a
way that involves the new token: the final token must hold the end of the stop string (it may
run past that end: "st" + "opera" ends "stop"), and the tokens before it, read backwards, must
spell out the rest (the earliest may start before the stop string: "las" + "topper"). A stop
string lying wholly inside earlier tokens does not count; it would have stopped generation
when it was made. HF matches bytes, not characters, for byte-level vocabularies such as
GPT-2's, so a stop string can end in the middle of a token that is part of a UTF-8 character.
It looks back at most as many tokens as the longest stop string has bytes, and it looks at
the whole sequence, prompt included: a stop string begun in the prompt and finished by the
first new token stops generation.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

TokenStrings = Sequence[str | bytes]  # the text of every token id, as str or raw bytes


def check_stop_strings(stop_strings: object) -> tuple[bytes, ...]:
    """One stop string or a list of them, as UTF-8 bytes; an empty string is refused.

    >>> check_stop_strings("end")
    (b'end',)
    """
    if isinstance(stop_strings, str):
        stop_strings = [stop_strings]
    if not isinstance(stop_strings, (list, tuple)) or not stop_strings:
        raise ValueError(
            f"stop_strings must be a string or a list of strings, got {stop_strings!r}"
        )
    if not all(isinstance(s, str) for s in stop_strings):
        raise ValueError(f"stop_strings must all be strings, got {stop_strings!r}")
    if not all(stop_strings):
        # HF would stop after every token (its empty match is always "complete"); say so instead
        raise ValueError("stop_strings contains an empty string, which would stop at once")
    return tuple(s.encode("utf-8") for s in stop_strings)


def _token_bytes(token_strings: TokenStrings, token: int) -> bytes | None:
    """Token `token`'s bytes, or None for an id the table does not cover (HF: never matches)."""
    if not 0 <= token < len(token_strings):
        return None
    text = token_strings[token]
    return text if isinstance(text, bytes) else text.encode("utf-8")


def end_overlaps(final: bytes, stop: bytes) -> list[int]:
    """How many bytes of the END of `stop` the final token can hold: every n such that the
    token, somewhere, contains stop's last n bytes, starting at the token's first byte unless
    n is the whole stop string. Each place the token holds stop's last byte gives one
    candidate, so a token can give several.

    >>> end_overlaps(b"opera", b"stop"), end_overlaps(b"xstopx", b"stop"), end_overlaps(b"a", b"b")
    ([2], [4], [])
    """
    found = []
    for i in range(len(final)):  # i: where stop's last byte sits in the token
        n = min(i + 1, len(stop))
        if final[i + 1 - n : i + 1] == stop[len(stop) - n :]:
            found.append(n)
    return found


def continues(token: bytes, stop: bytes, matched: int) -> bool:
    """Does `token`, placed just before the last `matched` bytes of `stop`, agree with stop?
    It must end with the bytes of stop just before those; if it is longer than what is left of
    stop, its extra bytes hang off the start and are free ("las" before "top" in "stop").

    >>> continues(b"las", b"stop", 3), continues(b"to", b"stop", 1), continues(b"x", b"stop", 1)
    (True, True, False)
    """
    left = len(stop) - matched  # bytes of stop not yet matched: stop[:left]
    if not 0 < left < len(stop):
        return False
    return token.endswith(stop[max(0, left - len(token)) : left])


def ends_with_stop_string(
    sequence: Sequence[int], stop: bytes, token_strings: TokenStrings, window: int
) -> bool:
    """HF's rule for one row and one stop string, looking back at most `window` tokens."""
    tail = list(sequence[len(sequence) - min(window, len(sequence)) :])
    if not tail:
        return False
    strings = [_token_bytes(token_strings, t) for t in reversed(tail)]
    if strings[0] is None:
        return False
    for matched in end_overlaps(strings[0], stop):
        for token in strings[1:]:
            if matched >= len(stop) or token is None or not continues(token, stop, matched):
                break
            matched += len(token)
        if matched >= len(stop):
            return True
    return False


def stop_strings(
    sequences: Sequence[Sequence[int]], stop_strings: object, token_strings: TokenStrings
) -> list[bool]:
    """For each row, whether its last token completed one of the stop strings.

    token_strings[i] is the text of token id i (str, or bytes for a byte-level vocabulary:
    minigpt's Tokenizer.token_bytes gives exactly what HF matches against).

    >>> vocab = ["st", "op", "opera", "stop", "at", "s", "to", "pped"]
    >>> ids = {"st op": [0, 1], "st opera": [0, 2], "stop at": [3, 4], "s to pped": [5, 6, 7]}
    >>> {text: stop_strings([seq], "stop", vocab)[0] for text, seq in ids.items()}
    {'st op': True, 'st opera': True, 'stop at': False, 's to pped': True}
    """
    stops = check_stop_strings(stop_strings)
    window = max(len(s) for s in stops)  # HF's maximum_token_len: one byte per token at most
    return [
        any(ends_with_stop_string(seq, stop, token_strings, window) for stop in stops)
        for seq in sequences
    ]


# ---------------------------------------------------------------------------------------------
# max_time


def check_max_time(max_time: object) -> float:
    ok = isinstance(max_time, numbers.Real) and not isinstance(max_time, bool)
    if not (ok and not math.isnan(max_time) and max_time > 0):
        raise ValueError(f"max_time must be a number of seconds > 0, got {max_time!r}")
    return float(max_time)


def max_time_reached(start: float, now: float, max_time: float) -> bool:
    """HF's MaxTimeCriteria: stop once strictly more than max_time seconds have passed.

    >>> max_time_reached(10.0, 10.5, 0.5), max_time_reached(10.0, 10.6, 0.5)
    (False, True)
    """
    return now - start > max_time


@dataclass
class MaxTime:
    """A max_time budget that starts when it is made, as HF's starts when generate() builds it.

    The clock is injected (time.monotonic by default, which never jumps back as wall time can),
    so a test can hand it a fake clock and never wait.

    >>> ticks = iter([0.0, 0.3, 0.7])
    >>> budget = MaxTime(0.5, clock=lambda: next(ticks))
    >>> budget.reached(), budget.reached()
    (False, True)
    """

    max_time: float
    clock: Callable[[], float] = time.monotonic
    start: float = field(init=False)

    def __post_init__(self) -> None:
        self.max_time = check_max_time(self.max_time)
        self.start = self.clock()

    def reached(self) -> bool:
        return max_time_reached(self.start, self.clock(), self.max_time)


# ---------------------------------------------------------------------------------------------
# Both, as a decoder uses them

STOP_STRING = "stopped at a stop string"
MAX_TIME = "reached max_time"


@dataclass
class Stopping:
    """The stopping criteria of one decoder run besides EOS and max_new_tokens.

    Built once per run by `Stopping.of` (which also starts the max_time budget), then asked
    after every step. Without stop_strings and max_time it never stops anything.

    >>> stopping = Stopping.of(stop_strings=["op"], token_strings=["st", "o", "p"])
    >>> stopping.reason([0, 1]), stopping.reason([0, 1, 2])
    ('', 'stopped at a stop string')
    """

    stop_strings: tuple[bytes, ...] = ()
    token_strings: TokenStrings = ()
    max_time: MaxTime | None = None

    @classmethod
    def of(
        cls,
        stop_strings: object = None,
        token_strings: TokenStrings | None = None,
        max_time: float | MaxTime | None = None,
    ) -> Stopping:
        """Check the arguments a decoder was given. max_time is a number of seconds (timed by
        time.monotonic from now) or a MaxTime with a clock of its own (a test's fake one)."""
        stops: tuple[bytes, ...] = ()
        if stop_strings is not None:
            stops = check_stop_strings(stop_strings)
            if token_strings is None:
                raise ValueError(
                    "stop_strings needs token_strings, the text of every token id "
                    "(minigpt: [tokenizer.token_bytes(i) for i in range(vocab_size)])"
                )
        if max_time is not None and not isinstance(max_time, MaxTime):
            max_time = MaxTime(max_time)
        return cls(stops, token_strings if stops else (), max_time)

    def time_is_up(self) -> bool:
        """Has max_time run out? Asked once per step: HF stops every row at once."""
        return self.max_time is not None and self.max_time.reached()

    def ends_with_stop_string(self, sequence: Sequence[int]) -> bool:
        if not self.stop_strings:
            return False
        window = max(len(s) for s in self.stop_strings)
        return any(
            ends_with_stop_string(sequence, s, self.token_strings, window)
            for s in self.stop_strings
        )

    def reason(self, sequence: Sequence[int], time_is_up: bool | None = None) -> str:
        """Why `sequence` stops after its newest token ("" if it goes on); time_is_up as
        this step's time_is_up() gave it (asked here when not given)."""
        if self.ends_with_stop_string(sequence):
            return STOP_STRING
        if self.time_is_up() if time_is_up is None else time_is_up:
            return MAX_TIME
        return ""
