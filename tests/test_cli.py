"""The `minigpt` command line, run as a subprocess, the way a learner runs it.

Every option of `generate` is checked for its effect, mostly by comparing the CLI's --json
output with the decoder called directly with the matching keyword argument, on a tiny random
GPT-2 (GPT-2's vocabulary, 1 layer, 16 wide) built in a temporary directory.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from checkpoints import build

import minigpt
from decoding.beam import beam_search
from decoding.greedy import greedy_search
from decoding.probs import log_softmax
from decoding.render.output import dot_available
from decoding.sampling import sample
from minigpt.config import GPT2Config

REPO = Path(__file__).resolve().parents[1]
PROMPT = "I have a dream"
PROMPT_IDS = [40, 423, 257, 4320]
SMALL = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=64)  # GPT-2's vocabulary
EOS = SMALL.eos_token_id


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    # std 0.3 makes the random distributions peaked enough for beams and cutoffs to matter.
    return build(tmp_path_factory.mktemp("cli") / "small", SMALL, std=0.3)


@pytest.fixture(scope="module")
def logits(model_dir):
    """The same model, in process, for computing what the CLI should print."""
    return minigpt.NextTokenLogits(minigpt.load(model_dir))


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m minigpt ARGS` from the repository root, wide enough for one-line help."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "minigpt", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=full_env,
        timeout=120,
    )


def ok(*args: str, **kwargs) -> subprocess.CompletedProcess:
    done = run(*args, **kwargs)
    assert done.returncode == 0, done.stderr
    return done


def generate_json(model_dir: Path, *args: str) -> dict:
    done = ok("generate", *args, "--model", str(model_dir), "--json")
    return json.loads(done.stdout)


def ids_of(result: dict) -> list[list[int]]:
    return [s["ids"] for s in result["sequences"]]


# ------------------------------------------------------------------------------------- help


GENERATE_FLAGS = [
    "--prompt-ids", "--model", "--strategy", "--max-new-tokens", "--num-beams",
    "--length-penalty", "--early-stopping", "--num-return-sequences", "--eos-token-id",
    "--temperature", "--top-k", "--top-p", "--min-p", "--typical-p", "--repetition-penalty",
    "--no-repeat-ngram-size", "--seed", "--json", "--trace", "--tree",
]  # fmt: skip


def test_help_explains_every_option_in_one_line():
    """Each flag of issue 4 appears in --help, followed by exactly one line of explanation."""
    lines = ok("generate", "--help").stdout.splitlines()
    for flag in GENERATE_FLAGS:
        at = [i for i, line in enumerate(lines) if line.strip().startswith(flag + " ")]
        at += [i for i, line in enumerate(lines) if line.strip() == flag]
        assert len(at) == 1, flag
        line = lines[at[0]].strip()
        # argparse puts the help after the flag, or alone on the next line if the flag is long.
        parts = line.split("  ")
        help_lines = [p for p in parts[1:] if p.strip()]
        following = lines[at[0] + 1].strip() if at[0] + 1 < len(lines) else ""
        if not help_lines:
            assert following and not following.startswith("-"), flag
            help_lines = [following]
            following = lines[at[0] + 2].strip() if at[0] + 2 < len(lines) else ""
        assert len(help_lines) == 1, flag
        assert following == "" or following.startswith("-"), f"{flag}: help spans two lines"


def test_top_level_help_lists_the_commands():
    out = ok("--help").stdout
    for command in ("generate", "score", "demo"):
        assert command in out


def test_console_script_runs():
    script = Path(sys.executable).parent / "minigpt"
    if not script.exists():
        pytest.skip("the minigpt console script is not installed in this environment")
    done = subprocess.run([str(script), "generate", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--num-beams" in done.stdout


# ------------------------------------------------------------------------------ greedy search


def test_greedy_streams_exactly_the_text_json_reports(model_dir):
    streamed = ok("generate", PROMPT, "--model", str(model_dir), "--max-new-tokens", "7").stdout
    result = generate_json(model_dir, PROMPT, "--max-new-tokens", "7")
    assert streamed == result["sequences"][0]["text"] + "\n"


def test_json_has_exactly_the_documented_fields(model_dir, logits):
    result = generate_json(model_dir, PROMPT, "--max-new-tokens", "5", "--eos-token-id", "none")
    assert set(result) == {"prompt_ids", "sequences"}
    assert result["prompt_ids"] == PROMPT_IDS
    (seq,) = result["sequences"]
    assert set(seq) == {"ids", "text", "score", "logprob", "token_logprobs", "transition_scores",
                        "finish_reason"}  # fmt: skip
    assert seq["ids"][:4] == PROMPT_IDS and len(seq["ids"]) == 9
    assert seq["finish_reason"] == "length"  # EOS is off: it ran its 5 tokens
    assert seq["score"] is None  # only beam search has a score
    assert seq["text"] == minigpt.load_tokenizer(model_dir).decode(seq["ids"])
    # logprob: the model's log-probs of the generated tokens, summed.
    expected = sum(
        float(log_softmax(logits([seq["ids"][:n]]))[0, seq["ids"][n]]) for n in range(4, 9)
    )
    assert seq["logprob"] == pytest.approx(expected, abs=1e-4)
    assert seq["ids"] == greedy_search(logits, PROMPT_IDS, max_new_tokens=5)[0].best.ids


def test_prompt_ids_give_the_same_run_as_the_prompt_text(model_dir):
    by_ids = generate_json(model_dir, "--prompt-ids", "40,423,257,4320", "--max-new-tokens", "4")
    by_text = generate_json(model_dir, PROMPT, "--max-new-tokens", "4")
    assert by_ids == by_text


def test_eos_token_id_stops_generation_and_none_never_stops(model_dir):
    free = generate_json(model_dir, PROMPT, "--max-new-tokens", "8", "--eos-token-id", "none")
    ids = free["sequences"][0]["ids"]
    stop_at = ids[6]  # the third generated token becomes the "EOS"
    first = ids.index(stop_at, 4)
    stopped = generate_json(
        model_dir, PROMPT, "--max-new-tokens", "8", "--eos-token-id", str(stop_at)
    )
    assert stopped["sequences"][0]["ids"] == ids[: first + 1]


def test_processors_change_greedy_as_the_decoder_does(model_dir, logits):
    result = generate_json(
        model_dir, PROMPT, "--max-new-tokens", "12", "--no-repeat-ngram-size", "1",
        "--repetition-penalty", "1.3",
    )  # fmt: skip
    ids = result["sequences"][0]["ids"]
    assert len(set(ids)) == len(ids)  # n = 1: no token may appear twice
    direct = greedy_search(
        logits, PROMPT_IDS, max_new_tokens=12, eos_token_id=EOS, no_repeat_ngram_size=1,
        repetition_penalty=1.3,
    )  # fmt: skip
    assert ids == direct[0].best.ids
    penalty_only = generate_json(
        model_dir, PROMPT, "--max-new-tokens", "12", "--repetition-penalty", "1.3"
    )
    direct = greedy_search(
        logits, PROMPT_IDS, max_new_tokens=12, eos_token_id=EOS, repetition_penalty=1.3
    )
    assert penalty_only["sequences"][0]["ids"] == direct[0].best.ids


# -------------------------------------------------------------------------------- beam search


def test_beam_returns_the_best_hypotheses_best_first(model_dir, logits):
    result = generate_json(
        model_dir, PROMPT, "--strategy", "beam", "--num-beams", "3", "--num-return-sequences", "3",
        "--max-new-tokens", "6", "--length-penalty", "0",
    )  # fmt: skip
    scores = [s["score"] for s in result["sequences"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    for s in result["sequences"]:  # length_penalty 0: the score is the raw sum of log-probs
        assert s["score"] == pytest.approx(s["logprob"], abs=1e-3)
    direct = beam_search(
        logits, PROMPT_IDS, num_beams=3, num_return_sequences=3, max_new_tokens=6,
        length_penalty=0.0, eos_token_id=EOS,
    )  # fmt: skip
    assert ids_of(result) == [h.ids for h in direct[0].hypotheses]


def test_beam_options_reach_the_decoder(model_dir, logits):
    """--length-penalty and --early-stopping give what beam_search gives with them."""
    early_stopping = "never"  # the other values: tests/test_cli_inprocess.py
    result = generate_json(
        model_dir, PROMPT, "--strategy", "beam", "--num-beams", "2", "--max-new-tokens", "5",
        "--length-penalty", "2.0", "--early-stopping", early_stopping, "--eos-token-id", "13",
    )  # fmt: skip
    value = {"true": True, "false": False, "never": "never"}[early_stopping]
    direct = beam_search(
        logits, PROMPT_IDS, num_beams=2, max_new_tokens=5, length_penalty=2.0,
        early_stopping=value, eos_token_id=13,
    )  # fmt: skip
    assert ids_of(result) == [h.ids for h in direct[0].hypotheses]
    assert result["sequences"][0]["score"] == pytest.approx(direct[0].best.score, abs=1e-5)


def test_beam_text_output_has_a_header_per_hypothesis(model_dir):
    out = ok(
        "generate", PROMPT, "--model", str(model_dir), "--strategy", "beam", "--num-beams", "2",
        "--num-return-sequences", "2", "--max-new-tokens", "3",
    ).stdout  # fmt: skip
    assert out.count("--- ") == 2 and "score" in out and out.count(PROMPT) == 2


# ----------------------------------------------------------------------------------- sampling


def sample_ids(model_dir: Path, seed: str, *extra: str) -> list[list[int]]:
    return ids_of(
        generate_json(
            model_dir,
            PROMPT,
            "--strategy",
            "sample",
            "--seed",
            seed,
            "--max-new-tokens",
            "8",
            *extra,
        )
    )


def test_same_seed_same_output_different_seed_different_sample(model_dir):
    assert sample_ids(model_dir, "11") == sample_ids(model_dir, "11")
    assert sample_ids(model_dir, "11") != sample_ids(model_dir, "12")


def test_streamed_samples_repeat_with_their_seed(model_dir):
    args = ["generate", PROMPT, "--model", str(model_dir), "--strategy", "sample", "--seed", "5"]
    first, second = ok(*args).stdout, ok(*args).stdout
    assert first == second and first.startswith(PROMPT)


def test_unseeded_sampling_prints_the_seed_that_repeats_it(model_dir):
    args = ["generate", PROMPT, "--model", str(model_dir), "--strategy", "sample", "--json"]
    done = ok(*args)
    seed = re.search(r"--seed (\d+)", done.stderr).group(1)
    assert ok(*args, "--seed", seed).stdout == done.stdout


def test_every_warper_reaches_the_sampler(model_dir, logits, tmp_path):
    """The trace records each warper with the CLI's value, and the draw equals sample()'s."""
    trace_file = tmp_path / "trace.json"
    warpers = {"temperature": 0.7, "top_k": 50, "top_p": 0.9, "min_p": 0.05, "typical_p": 0.95}
    flags = [x for name, v in warpers.items() for x in ("--" + name.replace("_", "-"), str(v))]
    ids = sample_ids(model_dir, "3", *flags, "--trace", str(trace_file))
    trace = json.loads(trace_file.read_text())
    cuts = trace["trace"]["steps"][0]["rows"][0]["cuts"]
    assert [(c["name"], c["param"]) for c in cuts] == list(warpers.items())
    rng = np.random.default_rng(3)
    direct = sample(logits, PROMPT_IDS, rng=rng, max_new_tokens=8, eos_token_id=EOS, **warpers)
    assert ids == [h.ids for h in direct[0].hypotheses]


def test_num_return_sequences_draws_independent_samples(model_dir):
    ids = sample_ids(model_dir, "2", "--num-return-sequences", "3")
    assert len(ids) == 3 and len({tuple(s) for s in ids}) == 3


def test_temperature_zero_is_greedy_and_says_so(model_dir):
    args = ["generate", PROMPT, "--model", str(model_dir), "--max-new-tokens", "5"]
    zero = ok(*args, "--strategy", "sample", "--temperature", "0")
    assert zero.stdout == ok(*args).stdout
    assert "greedy" in zero.stderr


# ------------------------------------------------------------------ the seed post's tree search


def test_tree_strategy_returns_best_leaves_and_its_whole_tree(model_dir, tmp_path):
    trace_file = tmp_path / "tree.json"
    result = generate_json(
        model_dir, PROMPT, "--strategy", "tree", "--num-beams", "2", "--max-new-tokens", "3",
        "--num-return-sequences", "2", "--eos-token-id", "none", "--trace", str(trace_file),
    )  # fmt: skip
    assert len(result["sequences"]) == 2
    assert all(len(s["ids"]) == 4 + 3 for s in result["sequences"])
    tree = json.loads(trace_file.read_text())["trace"]
    assert len(tree["nodes"]) == 1 + 2 + 4 + 8 and tree["expansions"] == 1 + 2 + 4
    # "score" is the seed post's: the sum of log-probs over every token, prompt included.
    post_scores = [s["score"] for s in result["sequences"]]
    assert post_scores == pytest.approx([s["logprob"] / len(s["ids"]) for s in result["sequences"]])
    leaves = [n["score"] for n in tree["nodes"] if not n["children"]]
    assert post_scores[0] == pytest.approx(max(leaves), abs=1e-5)
    assert post_scores[0] >= post_scores[1]


# -------------------------------------------------------------------------- trace and pictures


def test_trace_records_every_step_and_token_text(model_dir, tmp_path):
    trace_file = tmp_path / "t.json"
    result = generate_json(
        model_dir,
        PROMPT,
        "--max-new-tokens",
        "4",
        "--eos-token-id",
        "none",
        "--trace",
        str(trace_file),
    )
    record = json.loads(trace_file.read_text())
    assert record["strategy"] == "greedy" and len(record["trace"]["steps"]) == 4
    chosen = [s["rows"][0]["chosen"][0] for s in record["trace"]["steps"]]
    assert chosen == result["sequences"][0]["ids"][4:]
    assert record["token_text"][str(chosen[0])] == minigpt.load_tokenizer(model_dir).decode(
        [chosen[0]]
    )


def test_tree_writes_dot_with_one_node_per_candidate(model_dir, tmp_path):
    dot_file = tmp_path / "beam.dot"
    ok(
        "generate", PROMPT, "--model", str(model_dir), "--strategy", "beam", "--num-beams", "2",
        "--max-new-tokens", "3", "--eos-token-id", "none", "--tree", str(dot_file),
    )  # fmt: skip
    text = dot_file.read_text()
    assert text.startswith("digraph")
    # 3 steps x 2K = 4 candidates, plus the prompt; one edge into every candidate.
    assert text.count(" -> ") == 12 and text.count("[label=") == 13


def test_tree_renders_svg_when_graphviz_is_installed(model_dir, tmp_path):
    if not dot_available():  # CI (docs/render_check.sh) sets MINIGPT_REQUIRE_DOT=1
        if os.environ.get("MINIGPT_REQUIRE_DOT") == "1":
            pytest.fail("Graphviz's dot is not installed (apt-get install -y graphviz)")
        pytest.skip("Graphviz's dot is not installed")
    svg = tmp_path / "tree.svg"
    ok("generate", PROMPT, "--model", str(model_dir), "--strategy", "tree", "--tree", str(svg))
    assert (
        svg.read_text().lstrip().startswith(("<?xml", "<svg")) and svg.with_suffix(".dot").exists()
    )


def test_tree_without_graphviz_writes_dot_and_says_how_to_render(model_dir, tmp_path):
    svg = tmp_path / "tree.svg"
    no_dot = {"PATH": str(Path(sys.executable).parent)}  # a PATH without Graphviz
    done = ok(
        "generate",
        PROMPT,
        "--model",
        str(model_dir),
        "--strategy",
        "tree",
        "--tree",
        str(svg),
        env=no_dot,
    )
    assert not svg.exists() and svg.with_suffix(".dot").exists()
    assert "Graphviz" in done.stderr and "dot -Tsvg" in done.stderr


# -------------------------------------------------------------------------------------- score


def test_score_json_matches_the_model(model_dir, logits):
    done = ok("score", PROMPT, "--model", str(model_dir), "--json")
    result = json.loads(done.stdout)
    assert result["ids"] == PROMPT_IDS and result["tokens"][0]["logprob"] is None
    for n in range(1, 4):
        expected = float(log_softmax(logits([PROMPT_IDS[:n]]))[0, PROMPT_IDS[n]])
        assert result["tokens"][n]["logprob"] == pytest.approx(expected, abs=1e-4)
    mean = np.mean([t["logprob"] for t in result["tokens"][1:]])
    assert result["perplexity"] == pytest.approx(math.exp(-mean), rel=1e-5)


def test_score_prints_a_table_and_the_perplexity(model_dir):
    out = ok("score", PROMPT, "--model", str(model_dir)).stdout
    assert "perplexity" in out and "␣dream" in out and len(out.splitlines()) == 1 + 4 + 1


# --------------------------------------------------------------------------------------- demo


def test_demo_runs_every_strategy(model_dir):
    out = ok("demo", "--model", str(model_dir)).stdout
    for title in ("greedy", "beam search", "top-k", "nucleus", "exhaustive tree"):
        assert title in out
    assert "31 sequences" in out  # the post's tree: 1 + 2 + 4 + 8 + 16 expansions


# --------------------------------------------------------------------------------- bad input


# The kinds of bad input issue 4 names; tests/test_cli_inprocess.py runs many more through main().
BAD_INPUT = {
    "unknown model": ["generate", "x", "--model", "no-such-model"],
    "unknown strategy": ["generate", "x", "--strategy", "magic"],
    "top-k with greedy": ["generate", "x", "--top-k", "5"],
    "too long for the context": ["generate", "x", "--max-new-tokens", "64"],
    "prompt ids not numbers": ["generate", "--prompt-ids", "40,abc"],
    "unwritable trace": ["generate", "x", "--trace", "/no/such/dir/trace.json"],
    "tree is a directory": ["generate", "x", "--tree", "."],
    "score one token": ["score", "x"],
}


@pytest.mark.parametrize("args", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_exits_nonzero_with_one_line_and_no_traceback(model_dir, args):
    if "--model" not in args and args[0] in ("generate", "score"):
        args = [*args, "--model", str(model_dir)]
    done = run(*args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("minigpt")


def test_option_for_another_strategy_is_named_in_the_error(model_dir):
    done = run("generate", "x", "--model", str(model_dir), "--top-p", "0.5")
    assert "--top-p" in done.stderr and "greedy" in done.stderr and "sample" in done.stderr
