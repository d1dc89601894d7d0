"""`minigpt demo`: one prompt through every strategy, each with the command that repeats it.

Each run is a `generate` command line, parsed and run exactly as `minigpt generate` would, so
the command printed under each text is the one that made it.
"""

from __future__ import annotations

import argparse
import shlex
from typing import TextIO

import minigpt
from minigpt.cli.generate import CountingLogits, build_request
from minigpt.cli.options import build_parser
from minigpt.cli.session import open_session, print_notes
from minigpt.defaults import DEMO_PROMPT

# (title, generate flags). "{sent}" in a title becomes the number of sequences the run sent to
# the model: the seed post's exhaustive tree against real beam search of the same width.
DEMO_RUNS = [
    ("greedy search", "--strategy greedy"),
    ("beam search, 3 beams", "--strategy beam --num-beams 3"),
    ("top-k sampling, k=20, seed 0", "--strategy sample --top-k 20 --seed 0"),
    ("nucleus sampling, p=0.9, seed 0", "--strategy sample --top-p 0.9 --seed 0"),
    ("beam sampling, 4 beams, T=0.8, seed 1",
     "--strategy beam-sample --num-beams 4 --temperature 0.8 --seed 1"),
    ("the seed post's exhaustive tree, 2 children per node, depth 5 ({sent} sequences sent to "
     "the model)", "--strategy tree --num-beams 2"),
    ("real beam search, 2 beams, 5 tokens ({sent} sequences sent)",
     "--strategy beam --num-beams 2 --max-new-tokens 5"),
]  # fmt: skip


def demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    session = open_session(args.model)
    print_notes(session, err)
    config = session.model.config
    random = "  -- RANDOM weights: the text is noise" if session.is_random_demo else ""
    print(
        f"model {session.model_dir} ({config.n_layer} layers, {config.n_embd} wide, "
        f"{config.vocab_size} tokens){random}",
        file=out,
    )
    print(f"prompt: {DEMO_PROMPT!r} = {session.tokenizer.encode(DEMO_PROMPT)}\n", file=out)
    model_flag = f" --model {shlex.quote(args.model)}" if args.model else ""
    parser = build_parser()
    for title, flags in DEMO_RUNS:
        run_args = parser.parse_args(["generate", DEMO_PROMPT, *shlex.split(flags)])
        request = build_request(run_args, session)
        counter = CountingLogits(minigpt.NextTokenLogits(session.model))
        hypotheses, _ = request.strategy.run(counter, request.run)
        print(f"{title.format(sent=counter.expansions)}:", file=out)
        text = DEMO_PROMPT + session.visible_text(hypotheses[0].new_ids)
        print(f"  {text}".replace("\n", "\n  "), file=out)
        command = f"python -m minigpt generate {shlex.quote(DEMO_PROMPT)}{model_flag} {flags}"
        print(f"  $ {command}\n", file=out)
    print("more: python -m minigpt generate --help, and docs/walkthrough.md", file=out)
    return 0
