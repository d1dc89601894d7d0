"""What every command shares: the loaded model, the notes for stderr, errors in the user's words.

A mistake the user can fix ends the program with ONE line on stderr. So notes (which model is
random, which seed was drawn) wait until the input is known to be good, and a decoder's error,
which names its Python keyword (top_p), is rewritten with the flag the user typed (--top-p).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

import minigpt
from minigpt.cli.options import flag
from minigpt.cli.strategies import STRATEGIES
from minigpt.defaults import RANDOM_NOTE, default_model_dir, is_random_demo
from minigpt.errors import MiniGPTError


@dataclass
class Session:
    """A loaded model, its tokenizer, and where they came from."""

    model_dir: Path
    model: minigpt.GPT2
    tokenizer: object  # minigpt.tokenizer.Tokenizer
    notes: list[str] = dataclasses.field(default_factory=list)  # for stderr, once input is OK

    @property
    def is_random_demo(self) -> bool:
        return is_random_demo(self.model_dir)

    def visible_text(self, ids: list[int]) -> str:
        """The text of `ids` without the end-of-text token, as HF's decode(...,
        skip_special_tokens=True) shows it: a sequence that stopped at EOS ends there."""
        eos = self.tokenizer.eos_token_id
        return self.tokenizer.decode([t for t in ids if t != eos])


def open_session(model: str | None) -> Session:
    """Load --model, or the default model (with a note when it is the random stand-in)."""
    from minigpt.hub import resolve_model_dir

    model_dir = default_model_dir() if model is None else resolve_model_dir(model)
    session = Session(model_dir, minigpt.load(model_dir), minigpt.load_tokenizer(model_dir))
    if session.is_random_demo:
        session.notes.append(RANDOM_NOTE.format(path=model_dir))
    return session


def print_notes(session: Session, err: TextIO) -> None:
    """The notes gathered so far. Printed only once the input is known to be good, so that a
    bad command still gets exactly one line on stderr."""
    for note in session.notes:
        print(note, file=err)
    session.notes.clear()


# ------------------------------------------------------------------- errors in the user's words


def decoder_keywords() -> dict[str, str]:
    """Every keyword a decoder's message may name, and the option it is: the table's options,
    what every decoder takes, and the keywords an entry renames (the tree's branching)."""
    names = {name: name for s in STRATEGIES.values() for name in s.options}
    names |= {"max_new_tokens": "max_new_tokens", "eos_token_id": "eos_token_id"}
    for s in STRATEGIES.values():
        names |= s.keywords
    return names


def flag_names(message: str) -> str:
    """A decoder's error message with its keyword names replaced by the CLI's flags.

    >>> flag_names("top_p must be a number in (0, 1], got 2.0")
    '--top-p must be a number in (0, 1], got 2.0'
    """
    names = decoder_keywords()
    pattern = r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b"
    return re.sub(pattern, lambda m: flag(names[m[1]]), message)


@contextlib.contextmanager
def named_as_flags():
    """Turn a decoder's ValueError into a MiniGPTError that names the CLI's flags."""
    try:
        yield
    except MiniGPTError:
        raise  # minigpt's own messages already speak the user's language
    except ValueError as e:
        raise MiniGPTError(flag_names(one_line(e))) from None


def one_line(text: object) -> str:
    return " ".join(str(text).split())


# ------------------------------------------------------------------------------ output helpers


def check_writable(path: str | None, what: str) -> None:
    """Fail before any work if an output file could not be written."""
    if path is None:
        return
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise MiniGPTError(f"{what} {path} is a directory; give a file name")
    if not parent.is_dir():
        raise MiniGPTError(f"{what} {path}: directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise MiniGPTError(f"{what} {path} is not writable; choose another path")


def jsonable(value):
    """Dataclasses, tuples and floats made JSON-safe (a -inf log-prob becomes null)."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


class LineTracker:
    """Wraps stdout and remembers whether the last thing written ended a line, so that a
    Ctrl-C or an error in the middle of streamed text can start a fresh line first."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner
        self.mid_line = False

    def write(self, text: str) -> int:
        if text:
            self.mid_line = not text.endswith("\n")
        return self.inner.write(text)

    def flush(self) -> None:
        self.inner.flush()

    def end_line(self) -> None:
        if self.mid_line:
            with contextlib.suppress(OSError, ValueError):
                self.write("\n")
                self.flush()
