"""config.json is checked field by field: a bad one is refused with one line naming the file
and the key. One test per rule, plus the command line's single stderr line."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from cli_runner import assert_one_line_error, run_minigpt

from minigpt.config import PRESETS, GPT2Config
from minigpt.errors import MiniGPTError

TINY = {
    "model_type": "gpt2",
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 8,
    "n_positions": 16,
    "vocab_size": 50,
    "bos_token_id": 49,
    "eos_token_id": 49,
}


def write(tmp_path: Path, config) -> Path:
    path = tmp_path / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


def refused(path: Path, *causes: str) -> str:
    with pytest.raises(MiniGPTError) as info:
        GPT2Config.from_json(path)
    message = str(info.value)
    print(message)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    for cause in causes:
        assert cause in message, message
    return message


def with_value(tmp_path: Path, key: str, value) -> Path:
    return write(tmp_path, {**TINY, key: value})


# ------------------------------------------------------------------------------- the file


def test_a_good_config_and_every_preset_round_trip(tmp_path):
    config = GPT2Config.from_json(write(tmp_path, TINY))
    assert (config.n_embd, config.vocab_size, config.eos_token_id) == (8, 50, 49)
    for name, preset in PRESETS.items():
        assert GPT2Config.from_json(write(tmp_path, preset.to_json())) == preset, name


def test_missing_file(tmp_path):
    refused(tmp_path / "config.json", "no such file", "needs config.json")


def test_a_directory_is_not_a_config(tmp_path):
    (tmp_path / "config.json").mkdir()
    refused(tmp_path / "config.json", "cannot read it")


def test_not_utf8(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b'{"n_layer": 1, "\xff": 2}')
    refused(path, "not UTF-8", "at byte 16")


@pytest.mark.parametrize("text", ["", "{", '{"n_layer": 1,}', "n_layer = 1"])
def test_not_json(tmp_path, text):
    refused(write(tmp_path, text), "not valid JSON")


@pytest.mark.parametrize(
    "text, shown", [("[1, 2]", "[1, 2]"), ('"gpt2"', '"gpt2"'), ("null", "null"), ("12", "12")]
)
def test_not_an_object(tmp_path, text, shown):
    refused(write(tmp_path, text), f"must be a JSON object of settings, got {shown}")


def test_a_key_given_twice(tmp_path):
    """json.loads would keep the second n_head silently; which one did the author mean?"""
    text = json.dumps(TINY)[:-1] + ', "n_head": 4}'
    refused(write(tmp_path, text), "the key 'n_head' appears twice")


def test_other_model_types(tmp_path):
    refused(with_value(tmp_path, "model_type", "llama"), 'model_type is "llama"', "gpt2 only")
    refused(with_value(tmp_path, "model_type", None), "model_type is null")


# ---------------------------------------------------------------------------- the sizes


@pytest.mark.parametrize("key", ["n_layer", "n_head", "n_embd", "n_positions", "vocab_size"])
@pytest.mark.parametrize(
    "value, shown",
    [
        (True, "true"),  # True is an int to Python: refused all the same
        (False, "false"),
        (None, "null"),  # Hugging Face refuses null sizes too
        ("12", '"12"'),
        (12.0, "12.0"),
        (0, "0"),
        (-4, "-4"),
        ([2], "[2]"),
    ],
)
def test_sizes_must_be_positive_integers(tmp_path, key, value, shown):
    refused(with_value(tmp_path, key, value), f"{key} must be a positive integer, got {shown}")


def test_the_message_names_file_and_key(tmp_path):
    message = refused(with_value(tmp_path, "n_head", True))
    assert message == f"{tmp_path / 'config.json'}: n_head must be a positive integer, got true"


def test_n_embd_must_split_evenly_into_heads(tmp_path):
    config = {**TINY, "n_embd": 10, "n_head": 4}
    refused(write(tmp_path, config), "n_embd (10) must be divisible by n_head (4)")


@pytest.mark.parametrize(
    "value, shown",
    [(0.0, "0.0"), (0, "0"), (-1e-5, "-1e-05"), (None, "null"), (True, "true"), ("1e-5", '"1e-5"')],
)
def test_layer_norm_epsilon_must_be_a_positive_finite_number(tmp_path, value, shown):
    refused(
        with_value(tmp_path, "layer_norm_epsilon", value),
        f"layer_norm_epsilon must be a positive finite number, got {shown}",
    )


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_layer_norm_epsilon_nan_or_infinite(tmp_path, constant):
    """Python's json (and so Hugging Face) reads these non-JSON words; they are refused here."""
    text = json.dumps(TINY)[:-1] + f', "layer_norm_epsilon": {constant}}}'
    refused(write(tmp_path, text), "layer_norm_epsilon must be a positive finite number")


def test_layer_norm_epsilon_may_be_an_integer(tmp_path):
    assert (
        GPT2Config.from_json(with_value(tmp_path, "layer_norm_epsilon", 1)).layer_norm_epsilon == 1
    )


# ---------------------------------------------------------------------------- token ids


@pytest.mark.parametrize("key", ["bos_token_id", "eos_token_id"])
@pytest.mark.parametrize(
    "value, shown", [(50, "50"), (-1, "-1"), (True, "true"), (49.0, "49.0"), ("49", '"49"')]
)
def test_token_ids_must_be_in_the_vocabulary(tmp_path, key, value, shown):
    refused(
        with_value(tmp_path, key, value),
        f"{key} must be a token id in [0, vocab_size=50) or null, got {shown}",
    )


def test_a_list_of_eos_ids_is_refused(tmp_path):
    """Hugging Face allows several EOS ids; minigpt's decoders stop on one."""
    refused(with_value(tmp_path, "eos_token_id", [1, 2]), "must be one token id or null")


def test_a_missing_token_id_that_gpt2s_default_does_not_fit(tmp_path):
    config = {k: v for k, v in TINY.items() if k != "eos_token_id"}
    refused(write(tmp_path, config), "eos_token_id is not given, so it is GPT-2's 50256")


@pytest.mark.parametrize("key", ["bos_token_id", "eos_token_id"])
def test_null_token_id_means_the_model_has_none(tmp_path, key):
    """As in Hugging Face's GPT2Config: null is no such token (eos None: never stop early)."""
    config = GPT2Config.from_json(with_value(tmp_path, key, None))
    assert getattr(config, key) is None
    assert GPT2Config.from_json(write(tmp_path, config.to_json())) == config


def test_missing_keys_take_gpt2s_defaults(tmp_path):
    config = GPT2Config.from_json(write(tmp_path, {"model_type": "gpt2"}))
    assert config == GPT2Config()


# ---------------------------------------------------------------------- unsupported options


@pytest.mark.parametrize(
    "key, value, shown",
    [
        ("activation_function", "relu", '"relu"'),
        ("scale_attn_weights", 1, "1"),  # 1 == True in Python, but it is not JSON's true
        ("scale_attn_by_inverse_layer_idx", True, "true"),
        ("reorder_and_upcast_attn", None, "null"),
        ("add_cross_attention", True, "true"),
        ("n_inner", 16, "16"),
        ("n_inner", 32.0, "32.0"),
    ],
)
def test_options_minigpt_does_not_implement(tmp_path, key, value, shown):
    refused(with_value(tmp_path, key, value), f"{key}={shown} is not supported")


def test_options_at_their_only_supported_value(tmp_path):
    options = {"activation_function": "gelu_new", "scale_attn_weights": True, "n_inner": 32}
    assert GPT2Config.from_json(write(tmp_path, {**TINY, **options})).n_embd == 8


# --------------------------------------------------------------------------- in Python


def test_python_construction_is_checked_too():
    with pytest.raises(MiniGPTError, match="config: n_head must be a positive integer, got true"):
        GPT2Config(n_head=True)
    with pytest.raises(
        MiniGPTError, match=r"eos_token_id must be a token id in \[0, vocab_size=8\)"
    ):
        GPT2Config(n_layer=1, n_head=1, n_embd=4, vocab_size=8, bos_token_id=0, eos_token_id=8)
    assert asdict(GPT2Config.preset("gpt2"))["eos_token_id"] == 50256


# ------------------------------------------------------------------------- the command line


def test_cli_bad_config_one_line_no_traceback(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({**TINY, "n_head": True}))
    (model / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = run_minigpt(["generate", "hi", "--model", str(model)], cwd)
    assert_one_line_error(done, cwd, "config.json: n_head must be a positive integer, got true")
