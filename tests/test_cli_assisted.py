"""`minigpt generate` with assistance: --assistant-model, --num-assistant-tokens(-schedule),
--prompt-lookup-num-tokens, --max-matching-ngram-size, for greedy search and sampling.

Greedy output is the unassisted output, character for character; --json gains the stats; a
bad value is one line on stderr naming the flag."""

from __future__ import annotations

import json

import pytest
from checkpoints import build
from cli_runner import assert_one_line_error, run_minigpt
from cli_runner import run_in_process as main

from minigpt.config import GPT2Config

PROMPT = "I have a dream"
TARGET = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64)  # GPT-2's vocabulary
DRAFT = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=64)
OTHER_VOCAB = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=64, vocab_size=300,
                         bos_token_id=299, eos_token_id=299)  # fmt: skip
ASSIST_FLAGS = ["--assistant-model", "--num-assistant-tokens", "--num-assistant-tokens-schedule",
                "--assistant-confidence-threshold", "--prompt-lookup-num-tokens",
                "--max-matching-ngram-size"]  # fmt: skip


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("assisted")
    return {
        "target": build(root / "target", TARGET, std=0.3, seed=1),
        "draft": build(root / "draft", DRAFT, std=0.3, seed=2),
        "other": build(root / "other", OTHER_VOCAB, std=0.3, seed=3),
    }


def generate(capsys, dirs, *argv: str) -> tuple[str, str]:
    status, out, err = main(capsys, "generate", PROMPT, "--model", str(dirs["target"]), *argv)
    assert status == 0, err
    return out, err


ASSISTED = {
    "draft model": lambda d: ["--assistant-model", str(d["draft"]), "--num-assistant-tokens", "3"],
    "itself, heuristic": lambda d: ["--assistant-model", str(d["target"]),
                                    "--num-assistant-tokens-schedule", "heuristic"],
    "itself, never doubting": lambda d: ["--assistant-model", str(d["target"]),
                                         "--assistant-confidence-threshold", "0"],
    "prompt lookup": lambda d: ["--prompt-lookup-num-tokens", "4",
                                "--max-matching-ngram-size", "1"],
}  # fmt: skip


@pytest.mark.parametrize("how", list(ASSISTED))
def test_assisted_greedy_prints_what_greedy_prints(capsys, dirs, how):
    args = ["--max-new-tokens", "25", "--eos-token-id", "none"]
    plain, plain_err = generate(capsys, dirs, *args)
    out, err = generate(capsys, dirs, *args, *ASSISTED[how](dirs))
    assert out == plain and err == plain_err  # streamed, token by token, the same text


@pytest.mark.parametrize("how", list(ASSISTED))
def test_json_gains_the_assistant_stats(capsys, dirs, how):
    args = ["--max-new-tokens", "25", "--eos-token-id", "none", "--json"]
    plain = json.loads(generate(capsys, dirs, *args)[0])
    assisted = json.loads(generate(capsys, dirs, *args, *ASSISTED[how](dirs))[0])
    assert "assistant" not in plain
    stats = assisted.pop("assistant")
    assert set(stats) == {"rounds", "drafted", "accepted"}
    assert 1 <= stats["rounds"] <= 25 and 0 <= stats["accepted"] <= stats["drafted"]
    assert [s["ids"] for s in assisted["sequences"]] == [s["ids"] for s in plain["sequences"]]
    if how == "itself, heuristic":
        assert stats["accepted"] == stats["drafted"]


def test_assisted_sampling_same_seed_same_text(capsys, dirs):
    args = ["--strategy", "sample", "--seed", "3", "--top-k", "20", "--max-new-tokens", "15",
            "--assistant-model", str(dirs["draft"]), "--json"]  # fmt: skip
    first, second = (json.loads(generate(capsys, dirs, *args)[0]) for _ in range(2))
    assert first == second and "assistant" in first
    lookup = ["--strategy", "sample", "--seed", "3", "--prompt-lookup-num-tokens", "2",
              "--num-return-sequences", "2", "--json"]  # fmt: skip
    assert len(json.loads(generate(capsys, dirs, *lookup)[0])["sequences"]) == 2


def test_temperature_zero_keeps_the_assistance(capsys, dirs):
    args = ["--max-new-tokens", "10", "--json", "--prompt-lookup-num-tokens", "3"]
    out, err = generate(capsys, dirs, "--strategy", "sample", "--temperature", "0", *args)
    assert "running it" in err and "assistant" in json.loads(out)
    assert json.loads(out)["sequences"] == json.loads(generate(capsys, dirs, *args)[0])["sequences"]


BAD = {
    "tokens 0": (["--assistant-model", "DRAFT", "--num-assistant-tokens", "0"],
                 "--num-assistant-tokens must be an int >= 1"),
    "lookup 0": (["--prompt-lookup-num-tokens", "0"], "--prompt-lookup-num-tokens must be"),
    "ngram 0": (["--prompt-lookup-num-tokens", "2", "--max-matching-ngram-size", "0"],
                "--max-matching-ngram-size must be"),
    "no drafter": (["--num-assistant-tokens", "3"],
                   "give --assistant-model or --prompt-lookup-num-tokens"),
    "both": (["--assistant-model", "DRAFT", "--prompt-lookup-num-tokens", "3"], "not both"),
    "ngram for a model": (["--assistant-model", "DRAFT", "--max-matching-ngram-size", "2"],
                          "--max-matching-ngram-size is for --prompt-lookup-num-tokens"),
    "tokens for lookup": (["--prompt-lookup-num-tokens", "2", "--num-assistant-tokens", "2"],
                          "--num-assistant-tokens is for --assistant-model"),
    "threshold 1.5": (["--assistant-model", "DRAFT", "--assistant-confidence-threshold", "1.5"],
                      "--assistant-confidence-threshold must be a number in [0, 1]"),
    "threshold for lookup": (["--prompt-lookup-num-tokens", "2",
                              "--assistant-confidence-threshold", "0.5"],
                             "--assistant-confidence-threshold is for --assistant-model"),
    "other vocabulary": (["--assistant-model", "OTHER"], "--assistant-model"),
    "no such model": (["--assistant-model", "/no/such/dir"], "--assistant-model: no such"),
    "beam": (["--strategy", "beam", "--prompt-lookup-num-tokens", "3"],
             "--prompt-lookup-num-tokens does not apply to --strategy beam"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_value_is_one_line_naming_the_flag(capsys, dirs, case):
    args, words = BAD[case]
    args = [{"DRAFT": str(dirs["draft"]), "OTHER": str(dirs["other"])}.get(a, a) for a in args]
    status, out, err = main(capsys, "generate", PROMPT, "--model", str(dirs["target"]), *args)
    assert status == 1 and not out and len(err.splitlines()) == 1, err
    assert words in err
    if case == "other vocabulary":
        assert "300 tokens" in err and "50257" in err


def test_a_bad_schedule_is_one_line_from_the_parser(capsys, dirs):
    status, out, err = main(capsys, "generate", PROMPT, "--prompt-lookup-num-tokens", "2",
                            "--num-assistant-tokens-schedule", "fast")  # fmt: skip
    assert status == 2 and not out and len(err.splitlines()) == 1
    assert "--num-assistant-tokens-schedule" in err


def test_the_command_refuses_as_a_user_sees_it(tmp_path, dirs):
    done = run_minigpt(["generate", PROMPT, "--model", str(dirs["target"]),
                        "--assistant-model", str(dirs["other"])], cwd=tmp_path)  # fmt: skip
    assert_one_line_error(done, tmp_path, "--assistant-model", "share the model's vocabulary")


def test_help_gives_each_flag_one_line(capsys):
    status, out, _ = main(capsys, "generate", "--help")
    lines = out.splitlines()
    for flag in ASSIST_FLAGS:
        (at,) = [i for i, line in enumerate(lines) if line.strip().startswith(flag + " ")]
        text = lines[at].strip()[len(flag) :].split("  ")[-1].strip()
        if not text.startswith("greedy/sample:"):  # a long flag: its help on the next line
            text = lines[at + 1].strip()
        assert text.startswith("greedy/sample: "), flag
        following = lines[at + 1].strip() if text != lines[at + 1].strip() else lines[at + 2]
        assert following.strip().startswith("--"), f"{flag}'s help takes more than one line"
