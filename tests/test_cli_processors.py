"""`minigpt generate` with the newer processors, warpers and stopping criteria: --min-new-tokens,
--bad-words-ids, --sequence-bias, --suppress-tokens, --begin-suppress-tokens,
--exponential-decay-length-penalty, --renormalize-logits, --top-h, --epsilon-cutoff,
--eta-cutoff, --stop-strings, --max-time.

Each flag runs as a user would run it (a subprocess, the bundled model, greedy unless said)
and must change the text the way its rule says, against the same run without it; a bad value
is one line on stderr naming the flag.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runner import REPO, run_minigpt

import minigpt
from decoding import sample

PROMPT = "Once upon a time"
NEW = "12"


def generate_json(tmp_path, *flags: str) -> dict:
    done = run_minigpt(["generate", PROMPT, "--max-new-tokens", NEW, "--json", *flags], tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["sequences"][0]


@pytest.fixture(scope="module")
def free(tmp_path_factory):
    """The greedy continuation with no new flag: what every test compares with."""
    return generate_json(tmp_path_factory.mktemp("free"))


def new_ids(seq: dict, prompt_length: int = 4) -> list[int]:
    return seq["ids"][prompt_length:]


def test_the_free_run_is_what_the_tests_expect(free):
    # the bundled model's greedy text; the tests below bend it with each flag
    assert free["text"] == "Once upon a time, there was a small girl named Grace. She loved to"
    assert new_ids(free)[:3] == [12, 389, 275]  # ",", " there", " was"


def test_min_new_tokens(tmp_path, free):
    comma = str(new_ids(free)[0])  # as EOS, the free run would stop at once
    stopped = generate_json(tmp_path, "--eos-token-id", comma)
    assert new_ids(stopped) == [12] and stopped["finish_reason"] == "eos"
    held = generate_json(tmp_path, "--eos-token-id", comma, "--min-new-tokens", "3")
    assert 12 not in new_ids(held)[:3] and len(new_ids(held)) > 1


def test_bad_words_ids(tmp_path, free):
    out = generate_json(tmp_path, "--bad-words-ids", "12;389,275")  # "," and " there was"
    ids = new_ids(out)
    assert 12 not in ids
    assert not any(ids[i : i + 2] == [389, 275] for i in range(len(ids) - 1))
    assert ids != new_ids(free)


def test_sequence_bias(tmp_path, free):
    out = generate_json(tmp_path, "--sequence-bias", "12=-100")  # "," made very unlikely
    assert new_ids(out)[0] != 12
    assert generate_json(tmp_path, "--sequence-bias", "12=0")["ids"] == free["ids"]


def test_suppress_and_begin_suppress_tokens(tmp_path, free):
    never = generate_json(tmp_path, "--suppress-tokens", "12,14")  # "," and "."
    assert not {12, 14} & set(new_ids(never))
    first = generate_json(tmp_path, "--begin-suppress-tokens", "12")
    assert new_ids(first)[0] != 12 and new_ids(free)[0] == 12


def test_exponential_decay_length_penalty(tmp_path, free):
    assert free["finish_reason"] == "length"
    out = generate_json(tmp_path, "--exponential-decay-length-penalty", "2,3.0")
    assert out["finish_reason"] == "eos" and len(new_ids(out)) < int(NEW)
    assert new_ids(out)[:3] == new_ids(free)[:3]  # nothing changes before the start


def test_renormalize_logits_turns_greedy_scores_into_log_probs(tmp_path, free):
    out = generate_json(tmp_path, "--renormalize-logits")
    assert out["ids"] == free["ids"]  # a log-softmax keeps the argmax
    assert free["transition_scores"] != free["token_logprobs"]  # raw logits
    np.testing.assert_allclose(out["transition_scores"], out["token_logprobs"], atol=1e-5)


@pytest.mark.parametrize("stop, ends", [(" small", " small"), ("was a", " a"), ("Gr", " Grace")])
def test_stop_strings(tmp_path, free, stop, ends):
    out = generate_json(tmp_path, "--stop-strings", stop)
    assert out["finish_reason"] == "stop_string"
    assert out["text"].endswith(ends) and free["text"].startswith(out["text"])


def test_several_stop_strings_the_first_met_wins(tmp_path):
    out = generate_json(tmp_path, "--stop-strings", "Grace", "--stop-strings", "there")
    assert out["text"] == "Once upon a time, there" and out["finish_reason"] == "stop_string"


def test_max_time(tmp_path):
    out = generate_json(tmp_path, "--max-time", "1e-9")  # runs out during the first step
    assert len(new_ids(out)) == 1 and out["finish_reason"] == "max_time"


@pytest.mark.parametrize("flag, value", [("--top-h", "0.6"), ("--epsilon-cutoff", "0.02"),
                                         ("--eta-cutoff", "0.02")])  # fmt: skip
def test_new_warpers_are_sampling_with_them(tmp_path, flag, value):
    """The CLI's sample is decoding.sample with the warper and the seed's generator."""
    out = generate_json(tmp_path, "--strategy", "sample", "--seed", "5", flag, value)
    model = minigpt.load(str(REPO / "minigpt" / "data" / "minigpt-tiny"))
    ids = minigpt.load_tokenizer(str(REPO / "minigpt" / "data" / "minigpt-tiny")).encode(PROMPT)
    (decoded,) = sample(minigpt.NextTokenLogits(model), ids, rng=np.random.default_rng(5),
                        max_new_tokens=int(NEW), eos_token_id=model.config.eos_token_id,
                        **{flag[2:].replace("-", "_"): float(value)})  # fmt: skip
    assert out["ids"] == decoded.best.ids


def test_a_warper_with_everything_cut_is_greedy(tmp_path, free):
    # epsilon 0.9: a token is kept only above 0.9, else the top one alone: the argmax
    out = generate_json(tmp_path, "--strategy", "sample", "--seed", "1", "--epsilon-cutoff", "0.9")
    assert out["ids"] == free["ids"]


BAD = [
    (["--min-new-tokens", "-1"], 1, "--min-new-tokens"),
    (["--bad-words-ids", "1,x"], 2, "--bad-words-ids"),
    (["--bad-words-ids", "99999"], 1, "--bad-words-ids"),
    (["--sequence-bias", "12"], 2, "--sequence-bias"),
    (["--sequence-bias", "99999=1"], 1, "--sequence-bias"),
    (["--suppress-tokens", "a"], 2, "--suppress-tokens"),
    (["--begin-suppress-tokens", "1;2"], 2, "--begin-suppress-tokens"),
    (["--exponential-decay-length-penalty", "1"], 2, "--exponential-decay-length-penalty"),
    (["--exponential-decay-length-penalty=-1,2"], 1, "--exponential-decay-length-penalty"),
    (["--stop-strings", ""], 1, "--stop-strings"),
    (["--max-time", "0"], 1, "--max-time"),
    (["--max-time", "soon"], 2, "--max-time"),
    (["--strategy", "sample", "--top-h", "1.5"], 1, "--top-h"),
    (["--strategy", "sample", "--epsilon-cutoff", "1"], 1, "--epsilon-cutoff"),
    (["--strategy", "beam-sample", "--eta-cutoff", "-0.5"], 1, "--eta-cutoff"),
    (["--top-h", "0.5"], 1, "--top-h"),  # a warper given to greedy search
    (["--strategy", "tree", "--stop-strings", "x"], 1, "--stop-strings"),
    (["--strategy", "tree", "--renormalize-logits"], 1, "--renormalize-logits"),
]


@pytest.mark.parametrize("flags, status, named", BAD)
def test_a_bad_value_is_one_line_naming_the_flag(tmp_path, flags, status, named):
    done = run_minigpt(["generate", PROMPT, "--max-new-tokens", "3", *flags], tmp_path)
    err = done.stderr
    assert done.returncode == status, err
    assert len(err.splitlines()) == 1 and named in err and "Traceback" not in err, err
    assert not done.stdout and list(tmp_path.iterdir()) == []
