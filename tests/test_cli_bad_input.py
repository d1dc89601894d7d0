"""Every bad input to the command line: exactly one line on stderr, no traceback, nothing
written, and a message that names the flag the user typed (--top-p, not top_p).

Also the behaviours around the edges of a run that a user meets: the end-of-text token is not
printed as text, `--num-beams 1` is greedy search as in HF, and Ctrl-C mid-line or while the
program is still importing NumPy exits 130 with one line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from checkpoints import build
from cli_runner import assert_one_line_error, run_minigpt

import minigpt
from decoding import greedy_search
from minigpt.config import GPT2Config

REPO = Path(__file__).resolve().parents[1]
SMALL = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=64)  # GPT-2's vocabulary


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("bad-input") / "small", SMALL, std=0.3)


# --------------------------------------------------------------------------------- bad input


def test_a_prompt_that_is_not_utf8_is_one_line(tmp_path, model_dir):
    args = [b"generate", b"bad \xff", b"--model", str(model_dir).encode()]
    done = run_minigpt(args, tmp_path, text=False)
    assert_one_line_error(done, tmp_path, "not valid UTF-8", "0xff")


def test_a_text_to_score_that_is_not_utf8_is_one_line(tmp_path, model_dir):
    args = [b"score", b"caf\xe9 au lait", b"--model", str(model_dir).encode()]
    done = run_minigpt(args, tmp_path, text=False)
    assert_one_line_error(done, tmp_path, "not valid UTF-8", "0xe9")


def test_encode_refuses_a_lone_surrogate_in_one_line():
    tok = minigpt.load_tokenizer("gpt2")
    with pytest.raises(minigpt.MiniGPTError, match="lone surrogate U[+]D83D") as info:
        tok.encode("half an emoji: \ud83d")
    assert "\n" not in str(info.value)
    with pytest.raises(minigpt.MiniGPTError, match="byte 0xff"):
        tok.encode("bad \udcff")


# Each range error names the flag as typed. `sample` runs print text as they go, so an error
# found late would come after some text: stdout must be empty.
RANGE_ERRORS = [
    (["--strategy", "sample", "--seed", "-1"], "--seed"),
    (["--strategy", "sample", "--top-p", "2"], "--top-p"),
    (["--strategy", "sample", "--top-p", "0"], "--top-p"),
    (["--strategy", "sample", "--top-k", "-3"], "--top-k"),
    (["--strategy", "sample", "--min-p", "1.5"], "--min-p"),
    (["--strategy", "sample", "--typical-p", "0"], "--typical-p"),
    (["--strategy", "sample", "--temperature", "-1"], "--temperature"),
    (["--strategy", "sample", "--temperature", "nan"], "--temperature"),
    (["--repetition-penalty", "0"], "--repetition-penalty"),
    (["--no-repeat-ngram-size", "-1"], "--no-repeat-ngram-size"),
    (["--strategy", "beam", "--length-penalty", "nan"], "--length-penalty"),
    (["--strategy", "beam", "--early-stopping", "maybe"], "--early-stopping"),
    (["--strategy", "beam", "--num-beams", "2", "--num-return-sequences", "3"],
     "--num-return-sequences"),
    (["--strategy", "beam", "--num-beams", "1", "--num-return-sequences", "2"],
     "--num-return-sequences"),
    (["--strategy", "beam", "--num-beams", "1", "--length-penalty", "inf"], "--length-penalty"),
    (["--strategy", "beam", "--num-beams", "0"], "--num-beams"),
    (["--max-new-tokens", "0"], "--max-new-tokens"),
    (["--max-new-tokens", "61"], "--max-new-tokens"),  # 4 + 61 > the context of 64
    (["--eos-token-id", "50257"], "--eos-token-id"),
    (["--prompt-ids", "40,99999", "--max-new-tokens", "2"], "--prompt-ids"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "flag"), RANGE_ERRORS, ids=[" ".join(f) for f, _ in RANGE_ERRORS]
)
def test_range_errors_name_the_flag(tmp_path, model_dir, flags, flag):
    prompt = [] if "--prompt-ids" in flags else ["I have a dream"]
    exit_2 = flag == "--early-stopping"  # a value argparse itself refuses: exit status 2
    done = run_minigpt(["generate", *prompt, "--model", str(model_dir), *flags], tmp_path)
    if exit_2:
        err = done.stderr
        assert done.returncode == 2 and len(err.splitlines()) == 1 and flag in err, err
        return
    err = assert_one_line_error(done, tmp_path, flag)
    python_name = flag[2:].replace("-", "_")
    assert f" {python_name} " not in err, "the message speaks Python, not the CLI"


def test_an_unwritable_trace_writes_nothing(tmp_path, model_dir):
    done = run_minigpt(
        ["generate", "hi", "--model", str(model_dir), "--trace", "no/such/dir/trace.json"],
        tmp_path,
    )
    assert_one_line_error(done, tmp_path, "--trace", "does not exist")


def test_an_unknown_picture_type_writes_nothing(tmp_path, model_dir):
    done = run_minigpt(
        ["generate", "hi", "--model", str(model_dir), "--tree", "tree.xyz"], tmp_path
    )
    assert_one_line_error(done, tmp_path, "unknown picture type")


# --------------------------------------------------------------------- the edges of a good run


def test_the_end_of_text_token_ends_the_text_and_is_not_printed(tmp_path):
    """The bundled model ends its stories with <|endoftext|>: the text stops there, a note on
    stderr says so, and --json keeps the token in "ids" but not in "text"."""
    prompt = ["generate", "Once upon a time", "--max-new-tokens", "200"]
    streamed = run_minigpt(prompt, tmp_path, text=False)
    assert streamed.returncode == 0, streamed.stderr
    as_json = json.loads(run_minigpt([*prompt, "--json"], tmp_path).stdout)
    (seq,) = as_json["sequences"]
    eos = minigpt.load("minigpt-tiny").config.eos_token_id
    assert seq["finish_reason"] == "eos" and seq["ids"][-1] == eos, "the story did not end"
    assert "<|endoftext|>" not in streamed.stdout.decode()
    assert "<|endoftext|>" not in seq["text"]
    tok = minigpt.load_tokenizer("minigpt-tiny")
    assert seq["text"] == tok.decode(seq["ids"][:-1])
    assert streamed.stdout.decode() == seq["text"] + "\n"
    assert "ended the text" in streamed.stderr.decode()
    beam = run_minigpt([*prompt, "--strategy", "beam", "--num-beams", "2"], tmp_path)
    assert "<|endoftext|>" not in beam.stdout.split("\n", 1)[1]
    assert "ended at <|endoftext|>" in beam.stdout.split("\n", 1)[0]


def test_one_beam_is_greedy_search_as_in_hf(tmp_path, model_dir):
    """HF generate(num_beams=1) never enters beam search: it is greedy search, and a length
    penalty or early stopping changes nothing. The CLI runs greedy search and says so."""
    flags = ["--strategy", "beam", "--num-beams", "1", "--length-penalty", "-3"]
    done = run_minigpt(
        ["generate", "I have a dream", "--model", str(model_dir), *flags, "--json"], tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "runs greedy search" in done.stderr
    (seq,) = json.loads(done.stdout)["sequences"]
    model = minigpt.NextTokenLogits(minigpt.load(model_dir))
    prompt = minigpt.load_tokenizer(model_dir).encode("I have a dream")
    greedy = greedy_search(model, prompt, max_new_tokens=20, eos_token_id=SMALL.eos_token_id)
    assert seq["ids"] == greedy[0].best.ids
    assert seq["score"] is None  # greedy search has no beam score (HF: no sequences_scores)


# ------------------------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_while_importing_exits_130_without_a_traceback(tmp_path):
    """A Ctrl-C that lands while NumPy is still loading: made certain here by an import hook
    that raises KeyboardInterrupt on `import numpy`, then the real entry point."""
    code = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'numpy': raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from minigpt.__main__ import main\n"
        "raise SystemExit(main(['demo']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr == "minigpt: interrupted\n"


def test_ctrl_c_mid_line_starts_a_new_line(tmp_path):
    """Interrupt a long streamed generation once its first text has arrived: the text so far
    is ended with a newline, stderr has one line, the exit status is 130."""
    config = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=4096)
    model = build(tmp_path / "long", config, std=0.3)
    flags = ["--max-new-tokens", "4000", "--eos-token-id", "none"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "minigpt", "generate", "I have a dream", "--model", str(model),
         *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env,
    )  # fmt: skip
    first = proc.stdout.read(40)  # blocks until the stream has started
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    text = (first + rest).decode("utf-8", "replace")
    assert proc.returncode == 130, err
    assert text.endswith("\n") and len(text) < 4000 * 10, "it was not interrupted mid-stream"
    assert err.decode() == "minigpt: interrupted\n"
