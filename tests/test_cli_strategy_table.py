"""The strategy table drives the command line: a decoder is one entry in minigpt/cli/strategies.py.

The first test adds a decoder the project does not have (the LEAST likely token every time)
as one entry, and checks that --strategy, --help, the option checks and --json all know it.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from checkpoints import build
from cli_runner import run_in_process as main

import minigpt
from decoding.results import Hypothesis
from minigpt.cli.options import STRATEGY_OPTIONS, build_parser, dest
from minigpt.cli.strategies import STRATEGIES, Strategy, strategies_taking
from minigpt.config import GPT2Config

SMALL = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=64)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build(tmp_path_factory.mktemp("table") / "small", SMALL, std=0.3)


def run_least_likely(next_token_logits, run):
    """A decoder written for this test: append the least likely token, max_new_tokens times."""
    ids = list(run.prompt)
    for _ in range(run.max_new_tokens):
        ids.append(int(np.argmin(next_token_logits([ids])[0])))
    return [Hypothesis(ids, len(run.prompt), 0.0)], None


def test_a_new_decoder_is_one_table_entry(monkeypatch, capsys, model_dir):
    entry = Strategy("least", "the least likely token", run_least_likely, {"seed": None})
    monkeypatch.setitem(STRATEGIES, "least", entry)

    status, out, _ = main(capsys, "generate", "--help")
    words = " ".join(out.split())  # argparse wraps long help lines
    assert status == 0 and "| least (the least likely token)" in words
    assert "sample/beam-sample/least: the random seed" in words

    status, out, err = main(
        capsys, "generate", "I have a dream", "--model", str(model_dir), "--strategy", "least",
        "--max-new-tokens", "3", "--json",
    )  # fmt: skip
    assert status == 0, err
    (seq,) = json.loads(out)["sequences"]
    ids = [40, 423, 257, 4320]
    model = minigpt.NextTokenLogits(minigpt.load(model_dir))
    for _ in range(3):
        ids.append(int(np.argmin(model([ids])[0])))
    assert seq["ids"] == ids and seq["score"] is None

    status, _, err = main(capsys, "generate", "x", "--model", str(model_dir),
                          "--strategy", "least", "--top-k", "5")  # fmt: skip
    assert status == 1
    assert err.startswith("minigpt: error: --top-k does not apply to --strategy least; ")
    assert err.endswith("it is for --strategy sample or beam-sample\n")


def test_every_option_of_the_table_is_a_flag_and_every_strategy_flag_is_used():
    generate = build_parser()._subparsers._group_actions[0].choices["generate"]
    flags = {action.dest for action in generate._actions}
    table_options = {name for s in STRATEGIES.values() for name in s.options}
    assert table_options <= flags
    assert {dest(flag) for flag, _, _ in STRATEGY_OPTIONS} == table_options


def test_the_help_names_the_strategies_the_table_gives_each_option():
    generate = build_parser()._subparsers._group_actions[0].choices["generate"]
    for action in generate._actions:
        takers = strategies_taking(action.dest)
        if takers:
            prefixes = re.findall(r"(?:^|; )([a-z/-]+):", action.help)  # "beam/tree:", "sample:"
            named = {name for prefix in prefixes for name in prefix.split("/")}
            assert sorted(named) == sorted(takers), action.dest
