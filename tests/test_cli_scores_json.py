"""`minigpt generate --json`: each sequence's "token_logprobs" and "transition_scores", one per
generated token, for greedy search, sampling, beam search and beam sampling, run as a learner
runs the CLI on a tiny random GPT-2 (GPT-2's vocabulary, 1 layer, 16 wide).

The relations checked are the ones docs/scores.md explains: the raw log-probs add up to the
sequence's "logprob"; beam search's transition scores, added in float32 and divided by
new_tokens ** length_penalty, are its "score" (HF's sequences_scores) exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from checkpoints import build
from cli_runner import REPO, assert_one_line_error, run_minigpt

import minigpt
from decoding.probs import log_softmax
from minigpt.config import GPT2Config

PROMPT = "I have a dream"
SMALL = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=64)
U = 2.0**-24


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("scores") / "small", SMALL, std=0.3)


@pytest.fixture(scope="module")
def logits(model_dir):
    return minigpt.NextTokenLogits(minigpt.load(model_dir))


def generate_json(model_dir: Path, *args: str) -> dict:
    done = run_minigpt(["generate", PROMPT, "--model", str(model_dir), "--json", *args], REPO)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def float32_sum(values: list[float]) -> np.float32:
    total = np.float32(0.0)
    for v in values:
        total = np.float32(total + np.float32(v))
    return total


def check_logprobs(seq: dict, prompt_length: int, logits) -> None:
    """One raw log-prob per new token, each the model's, adding up to "logprob"."""
    new = seq["ids"][prompt_length:]
    assert len(seq["token_logprobs"]) == len(seq["transition_scores"]) == len(new) > 0
    running = 0.0
    for x in seq["token_logprobs"]:
        running += x
    assert running == seq["logprob"]  # the decoder adds them in this order, in float64
    for n, token in enumerate(new):
        row = log_softmax(logits([seq["ids"][: prompt_length + n]]))[0]
        # The CLI's and this process's model calls batch differently: float32 rounding of
        # logits of size ~1 moves a log-prob by a few units of 1e-7.
        assert math.isclose(seq["token_logprobs"][n], float(row[token]), abs_tol=64 * U)


@pytest.mark.parametrize(
    "args",
    [
        ["--strategy", "beam", "--num-beams", "3", "--num-return-sequences", "3"],
        ["--strategy", "beam", "--num-beams", "2", "--length-penalty", "2.0",
         "--repetition-penalty", "1.5", "--num-return-sequences", "2"],
        ["--strategy", "beam-sample", "--num-beams", "4", "--temperature", "0.8", "--seed", "1",
         "--num-return-sequences", "2", "--length-penalty", "0.5"],
    ],
)  # fmt: skip
def test_beam_transition_scores_make_the_score(model_dir, logits, args):
    result = generate_json(model_dir, "--max-new-tokens", "6", *args)
    penalty = float(args[args.index("--length-penalty") + 1]) if "--length-penalty" in args else 1
    for seq in result["sequences"]:
        check_logprobs(seq, len(result["prompt_ids"]), logits)
        n = len(seq["ids"]) - len(result["prompt_ids"])
        score = float32_sum(seq["transition_scores"]) / np.float32(n**penalty)
        assert float(score) == seq["score"]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--repetition-penalty", "1.3"],
        ["--strategy", "sample", "--seed", "3", "--top-k", "20", "--num-return-sequences", "2"],
    ],
)
def test_greedy_and_sampling_token_logprobs_add_up_to_the_logprob(model_dir, logits, args):
    result = generate_json(model_dir, "--max-new-tokens", "6", *args)
    for seq in result["sequences"]:
        check_logprobs(seq, len(result["prompt_ids"]), logits)
        if not args:  # no processor, no warper: the transition score is the raw logit
            for n, token in enumerate(seq["ids"][len(result["prompt_ids"]) :]):
                row = logits([seq["ids"][: len(result["prompt_ids"]) + n]])[0]
                assert math.isclose(seq["transition_scores"][n], float(row[token]),
                                    abs_tol=64 * U * (1 + abs(float(row[token]))))  # fmt: skip


def test_the_tree_search_records_no_per_token_scores(model_dir):
    result = generate_json(model_dir, "--strategy", "tree", "--max-new-tokens", "2")
    (seq,) = result["sequences"]
    assert seq["token_logprobs"] is None and seq["transition_scores"] is None


def test_beam_sample_with_one_beam_is_sampling_as_in_hf(model_dir):
    common = ["--max-new-tokens", "5", "--seed", "4"]
    one_beam = generate_json(model_dir, "--strategy", "beam-sample", "--num-beams", "1", *common)
    sampled = generate_json(model_dir, "--strategy", "sample", *common)
    assert one_beam["sequences"] == sampled["sequences"]


def test_beam_sample_refuses_temperature_zero_in_one_line(model_dir, tmp_path):
    done = run_minigpt(["generate", PROMPT, "--model", str(model_dir), "--strategy",
                        "beam-sample", "--temperature", "0", "--seed", "1"], tmp_path)  # fmt: skip
    assert_one_line_error(done, tmp_path, "--temperature")
