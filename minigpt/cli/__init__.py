"""The `minigpt` command: generate text with any decoder, score a text, run the demo.

    python -m minigpt generate "Once upon a time" --strategy beam --num-beams 4
    python -m minigpt score "Once upon a time, there was a girl."
    python -m minigpt demo

This package is the one place that imports both minigpt's model and the decoders: it loads a
model, wraps it in the next-token-logits adapter, and hands that to a decoder. Where to look:

    strategies.py   the strategy table: one entry per decoder (start here to add one)
    options.py      the flags and their one-line help, named after HF generate()'s arguments
    session.py      what the commands share: the model, the notes, errors in the user's words
    generate.py  score.py  demo.py     the commands

A mistake the user can fix ends the program with ONE line on stderr and exit status 1 (2 for a
malformed command line), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TextIO

from minigpt.cli.demo import demo
from minigpt.cli.explore import explore
from minigpt.cli.generate import generate
from minigpt.cli.options import build_parser, early_stopping_arg, eos_arg, prompt_ids_arg
from minigpt.cli.score import score
from minigpt.cli.session import LineTracker, jsonable, one_line
from minigpt.errors import MiniGPTError

__all__ = ["build_parser", "early_stopping_arg", "eos_arg", "jsonable", "main", "prompt_ids_arg"]


def download(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`minigpt download NAME`: the code of weights/scripts/download.py, in minigpt/download.py."""
    from minigpt import download as downloader

    return downloader.command(args, out, err)


COMMANDS = {"generate": generate, "score": score, "demo": demo, "download": download,
            "explore": explore}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a MiniGPTError, ValueError or OSError becomes one stderr line."""
    args = build_parser().parse_args(argv)
    out = LineTracker(sys.stdout)
    try:
        return COMMANDS[args.command](args, out, sys.stderr)
    except (MiniGPTError, ValueError) as e:
        out.end_line()  # an error in the middle of streamed text starts on a line of its own
        print(f"minigpt: error: {one_line(e)}", file=sys.stderr)
    except BrokenPipeError:  # the reader went away (`minigpt generate ... | head`): fine
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        print(f"minigpt: error: {one_line(e.strerror or e)}{where}", file=sys.stderr)
    except KeyboardInterrupt:
        out.end_line()  # Ctrl-C in the middle of streamed text: end its line first
        print("minigpt: interrupted", file=sys.stderr)
        return 130
    return 1
