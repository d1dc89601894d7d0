"""The CLI's pieces, run in this process through `minigpt.cli.main(argv)` (fast).

tests/test_cli.py runs the command as a subprocess for every option; here are the many more
bad inputs, the remaining option values, the streaming wrapper and the default model.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from checkpoints import build
from cli_runner import run_in_process as main

import minigpt
import minigpt.defaults as defaults
from decoding.beam import beam_search
from decoding.greedy import greedy_search
from decoding.sampling import sample
from minigpt import cli
from minigpt.cli.generate import TokenPrinter
from minigpt.config import GPT2Config
from minigpt.tokenizer import BUNDLED_GPT2_DIR, load_tokenizer

PROMPT = "I have a dream"
PROMPT_IDS = [40, 423, 257, 4320]
SMALL = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=64)
EOS = SMALL.eos_token_id


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build(tmp_path_factory.mktemp("cli-inprocess") / "small", SMALL, std=0.3)


@pytest.fixture(scope="module")
def logits(model_dir):
    return minigpt.NextTokenLogits(minigpt.load(model_dir))


def generate_json(capsys, model_dir, *argv: str) -> dict:
    status, out, err = main(capsys, "generate", *argv, "--model", str(model_dir), "--json")
    assert status == 0, err
    return json.loads(out)


# ------------------------------------------------------------------------------------ parsing


def test_every_generate_option_has_one_line_of_help():
    parser = cli.build_parser()
    generate = parser._subparsers._group_actions[0].choices["generate"]
    for action in generate._actions:
        if action.dest == "help":
            continue
        assert action.help and "\n" not in action.help, action.dest
        assert len(action.help) <= 80, f"{action.dest}: help too long for one line"


def test_prompt_ids_parse_only_comma_separated_ids():
    assert cli.prompt_ids_arg("40,423, 257") == [40, 423, 257]
    for bad in ("", "40,", "4.0", "-1", "40;423", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.prompt_ids_arg(bad)


def test_eos_and_early_stopping_values():
    assert cli.eos_arg("none") is None and cli.eos_arg("None") is None and cli.eos_arg("7") == 7
    assert [cli.early_stopping_arg(v) for v in ("true", "False", "never")] == [True, False, "never"]
    for parse, bad in ((cli.eos_arg, "-1"), (cli.early_stopping_arg, "maybe")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(bad)


def test_jsonable_turns_infinities_into_null():
    record = {"a": (1, float("-inf")), "b": np.float32(0.5)}
    assert cli.jsonable(record) == {"a": [1, None], "b": 0.5}


# ---------------------------------------------------------------------------------- bad input


G, SAMPLE, BEAM, TREE = ["generate", "x"], "--strategy=sample", "--strategy=beam", "--strategy=tree"
BAD_INPUT = {
    "missing model dir": [*G, "--model", "/no/such/dir"],
    "num-beams with sample": [*G, SAMPLE, "--num-beams", "2"],
    "num-beams with greedy": [*G, "--num-beams", "2"],
    "seed with beam": [*G, BEAM, "--seed", "1"],
    "seed with greedy": [*G, "--seed", "1"],
    "length-penalty with tree": [*G, TREE, "--length-penalty", "1"],
    "early-stopping with sample": [*G, SAMPLE, "--early-stopping", "true"],
    "top-p with beam": [*G, BEAM, "--top-p", "0.5"],
    "temperature with tree": [*G, TREE, "--temperature", "0.5"],
    "repetition-penalty with tree": [*G, TREE, "--repetition-penalty", "2"],
    "num-return-sequences with greedy": [*G, "--num-return-sequences", "2"],
    "zero new tokens": [*G, "--max-new-tokens", "0"],
    "prompt ids empty item": ["generate", "--prompt-ids", "40,,423"],
    "prompt ids negative": ["generate", "--prompt-ids", "-3"],
    "prompt id outside vocab": ["generate", "--prompt-ids", "40,99999"],
    "no prompt": ["generate"],
    "empty prompt": ["generate", ""],
    "two prompts": [*G, "--prompt-ids", "40"],
    "eos outside vocab": [*G, "--eos-token-id", "60000"],
    "eos malformed": [*G, "--eos-token-id", "eos"],
    "early stopping malformed": [*G, BEAM, "--early-stopping", "yes"],
    "max-new-tokens not a number": [*G, "--max-new-tokens", "many"],
    "top-p above 1": [*G, SAMPLE, "--top-p", "1.5"],
    "top-k zero or less": [*G, SAMPLE, "--top-k", "-2"],
    "negative temperature": [*G, SAMPLE, "--temperature", "-1"],
    "temperature 0 with samples": [*G, SAMPLE, "--temperature", "0", "--num-return-sequences", "2"],
    "zero repetition penalty": [*G, "--repetition-penalty", "0"],
    "more sequences than beams": [*G, BEAM, "--num-beams", "2", "--num-return-sequences", "3"],
    "more sequences than leaves": [*G, TREE, "--max-new-tokens=2", "--num-return-sequences=5"],
    "zero beams": [*G, BEAM, "--num-beams", "0"],
    "zero tree children": [*G, TREE, "--num-beams", "0"],
    "zero samples": [*G, SAMPLE, "--num-return-sequences", "0"],
    "tree too big": [*G, TREE, "--num-beams", "9", "--max-new-tokens", "9"],
    "unwritable tree": [*G, "--tree", "/no/such/dir/tree.svg"],
    "trace is a directory": [*G, "--trace", "."],
    "unknown picture type": [*G, "--tree", "tree.jpg"],
    "unknown command": ["fly"],
    "score empty": ["score", ""],
    "score too long": ["score", "a " * 100],
}  # fmt: skip


@pytest.mark.parametrize("argv", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_and_a_nonzero_status(capsys, model_dir, tmp_path, monkeypatch, argv):
    """Run from an empty directory, so that any file a refused command wrote would be seen."""
    monkeypatch.chdir(tmp_path)
    if argv[0] in ("generate", "score") and "--model" not in argv:
        argv = [*argv, "--model", str(model_dir)]
    status, out, err = main(capsys, *argv)
    assert status not in (0, None)
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("minigpt") and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [], "a refused command left a file behind"


def test_the_left_behind_check_sees_files(capsys, model_dir, tmp_path, monkeypatch):
    """The check above can fail: a command that does write, run the same way, leaves its file."""
    monkeypatch.chdir(tmp_path)
    status, _, _ = main(capsys, "generate", "x", "--model", str(model_dir), "--max-new-tokens",
                        "2", "--tree", "tree.dot")  # fmt: skip
    assert status == 0 and [p.name for p in tmp_path.iterdir()] == ["tree.dot"]


def test_options_of_other_strategies_are_named(capsys, model_dir):
    _, _, err = main(capsys, "generate", "x", "--model", str(model_dir), BEAM, "--seed", "1")
    assert "--seed" in err and "--strategy beam" in err and "sample" in err


# ---------------------------------------------------------------- the rest of the option values


@pytest.mark.parametrize(
    "flag, name, value",
    [("--top-k", "top_k", 3), ("--top-p", "top_p", 0.3), ("--min-p", "min_p", 0.5),
     ("--typical-p", "typical_p", 0.3), ("--temperature", "temperature", 0.3)],
)  # fmt: skip
def test_each_warper_alone_matches_the_sampler(capsys, model_dir, logits, flag, name, value):
    result = generate_json(
        capsys, model_dir, PROMPT, "--strategy", "sample", "--seed", "9", "--max-new-tokens", "8",
        flag, str(value),
    )  # fmt: skip
    direct = sample(
        logits, PROMPT_IDS, rng=np.random.default_rng(9), max_new_tokens=8, eos_token_id=EOS,
        **{name: value},
    )  # fmt: skip
    assert [s["ids"] for s in result["sequences"]] == [h.ids for h in direct[0].hypotheses]


def test_a_warper_changes_the_sample(capsys, model_dir):
    """Guards against options parsed but dropped: top-k 1 makes sampling greedy."""
    args = (PROMPT, "--strategy", "sample", "--seed", "4", "--max-new-tokens", "8")
    free = generate_json(capsys, model_dir, *args)
    top1 = generate_json(capsys, model_dir, *args, "--top-k", "1")
    greedy = generate_json(capsys, model_dir, PROMPT, "--max-new-tokens", "8")
    assert top1["sequences"][0]["ids"] == greedy["sequences"][0]["ids"]
    assert free["sequences"][0]["ids"] != greedy["sequences"][0]["ids"]


@pytest.mark.parametrize("value, parsed", [("true", True), ("false", False)])
def test_early_stopping_values_reach_beam_search(capsys, model_dir, logits, value, parsed):
    result = generate_json(
        capsys, model_dir, PROMPT, "--strategy", "beam", "--num-beams", "3", "--max-new-tokens",
        "6", "--early-stopping", value, "--eos-token-id", "13", "--num-return-sequences", "2",
    )  # fmt: skip
    direct = beam_search(
        logits, PROMPT_IDS, num_beams=3, max_new_tokens=6, early_stopping=parsed,
        eos_token_id=13, num_return_sequences=2,
    )  # fmt: skip
    assert [s["ids"] for s in result["sequences"]] == [h.ids for h in direct[0].hypotheses]


def test_beam_defaults_are_hf_defaults_with_four_beams(capsys, model_dir, logits):
    result = generate_json(capsys, model_dir, PROMPT, "--strategy", "beam", "--max-new-tokens", "4")
    direct = beam_search(logits, PROMPT_IDS, num_beams=4, max_new_tokens=4, eos_token_id=EOS)
    assert result["sequences"][0]["ids"] == direct[0].best.ids


def test_tree_defaults_are_the_seed_posts(capsys, model_dir, tmp_path):
    trace = tmp_path / "t.json"
    generate_json(capsys, model_dir, PROMPT, "--strategy", "tree", "--trace", str(trace))
    tree = json.loads(trace.read_text())["trace"]
    assert tree["expansions"] <= 31 and max(n["depth"] for n in tree["nodes"]) <= 5
    assert all(len(n["children"]) in (0, 2) for n in tree["nodes"])


# --------------------------------------------------------------------------------- streaming


def scripted(tokens: list[int], vocab: int = 50257):
    """A next_token_logits that always makes tokens[len(seen) - prompt] the argmax."""
    calls = []

    def next_token_logits(sequences):
        calls.append([list(s) for s in sequences])
        out = np.zeros((len(sequences), vocab), np.float32)
        for row, seq in enumerate(sequences):
            out[row, tokens[min(len(seq) - 1, len(tokens) - 1)]] = 10.0
        return out

    return next_token_logits, calls


class Recorder:
    def __init__(self):
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


def test_streaming_prints_each_token_before_the_next_step_and_never_half_a_character():
    tok = load_tokenizer(BUNDLED_GPT2_DIR)
    wanted = tok.encode("你好 a")  # each Chinese character spans two tokens
    prompt = [40]  # "I"
    script = prompt + wanted  # the token at position n is what follows n + 1 tokens
    model, _ = scripted(script[1:])
    out, err = Recorder(), Recorder()
    printed_at_call = []

    def watched_model(sequences):  # what is on screen when the model is asked for a step
        printed_at_call.append("".join(out.writes))
        return model(sequences)

    session = cli.session.Session(BUNDLED_GPT2_DIR, None, tok, notes=["note: hello"])
    printer = TokenPrinter(session, prompt, out, err, eos=None)
    result = greedy_search(watched_model, prompt, max_new_tokens=len(wanted), on_token=printer)
    assert result[0].best.new_ids == wanted
    printer.finish("length")
    assert "".join(out.writes) == "I你好 a\n"
    # Before the call of step n + 1, the tokens of steps 1..n are on screen, whole characters
    # only; the prompt appears with the first token, once the decoder has accepted its options.
    assert printed_at_call[:4] == ["", "I", "I你", "I你"]
    assert "\ufffd" not in "".join(out.writes)
    assert "".join(err.writes) == "note: hello\n"  # the notes come out with the first token


def test_streaming_ends_the_text_at_eos_and_says_so():
    tok = load_tokenizer(BUNDLED_GPT2_DIR)
    model, _ = scripted([tok.encode(" dog")[0], EOS])
    out, err = Recorder(), Recorder()
    session = cli.session.Session(BUNDLED_GPT2_DIR, None, tok)
    printer = TokenPrinter(session, [464], out, err, eos=EOS)  # "The"
    greedy_search(model, [464], max_new_tokens=5, eos_token_id=EOS, on_token=printer)
    printer.finish("eos")
    assert "".join(out.writes) == "The dog\n"
    assert "ended the text" in "".join(err.writes)


# ----------------------------------------------------------------------------- default model


@pytest.fixture
def no_bundled_model(tmp_path, monkeypatch):
    """Pretend weights/minigpt-tiny is missing and put the random stand-in in tmp_path."""
    monkeypatch.setattr(defaults, "BUNDLED_DIR", tmp_path / "minigpt-tiny")
    monkeypatch.setattr(defaults, "RANDOM_DEMO_DIR", tmp_path / "random-demo")
    return tmp_path


def test_default_model_is_a_random_stand_in_until_the_bundled_one_exists(no_bundled_model):
    first = defaults.default_model_dir()
    assert first == no_bundled_model / "random-demo" and defaults.is_random_demo(first)
    config = minigpt.load(first).config
    assert config.vocab_size == 50257  # GPT-2's vocabulary, so the bundled tokenizer applies
    build(no_bundled_model / "minigpt-tiny", SMALL)
    assert defaults.default_model_dir() == no_bundled_model / "minigpt-tiny"


def test_demo_says_when_its_model_is_random(capsys, no_bundled_model):
    status, out, err = main(capsys, "demo")
    assert status == 0
    assert "RANDOM" in err and "RANDOM" in out
    for title in ("greedy search", "beam search", "top-k", "nucleus", "exhaustive tree"):
        assert title in out


def test_generate_without_model_uses_the_default_and_warns_if_random(capsys, no_bundled_model):
    status, out, err = main(capsys, "generate", PROMPT, "--max-new-tokens", "3")
    assert status == 0 and out.startswith(PROMPT) and "RANDOM" in err


@pytest.mark.parametrize(
    "argv",
    [["--max-new-tokens", "1000"], ["--strategy", "sample", "--num-return-sequences", "0"],
     ["--strategy", "tree", "--num-return-sequences", "99"]],
)  # fmt: skip
def test_the_random_model_note_never_makes_an_error_two_lines(capsys, no_bundled_model, argv):
    status, _, err = main(capsys, "generate", PROMPT, *argv)
    assert status == 1 and len(err.strip().splitlines()) == 1 and "RANDOM" not in err
