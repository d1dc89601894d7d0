"""minigpt.hub.resolve_model_dir: checkpoint dirs, bundled and local names, a fake HF cache."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

import pytest
from checkpoints import FAKE_CHECKPOINT, make_cached_snapshot

import minigpt.hub as hub
from minigpt import cli
from minigpt.errors import MiniGPTError
from minigpt.installation import checkpoints_dir

CHECKPOINT_FILES = FAKE_CHECKPOINT


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real cache, no real weights/, an empty working directory: only what a test builds."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MINIGPT_HOME", str(tmp_path / "repo" / "weights"))
    (tmp_path / "repo" / "weights" / "scripts").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)


def make_checkpoint(directory: Path, files: dict[str, bytes] = CHECKPOINT_FILES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (directory / name).write_bytes(body)
    return directory


def set_mtime(path: Path, seconds: float) -> None:
    os.utime(path, (seconds, seconds))


# ---------------------------------------------------------------- directories and names


def test_a_checkpoint_directory_is_returned_as_given(tmp_path):
    directory = make_checkpoint(tmp_path / "anywhere")
    assert hub.resolve_model_dir(directory) == directory
    assert hub.resolve_model_dir(str(directory)) == directory


def test_weights_name_is_preferred_over_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    make_cached_snapshot(tmp_path / "hf" / "hub", "openai-community/gpt2", "a" * 40, main=True)
    local = make_checkpoint(checkpoints_dir() / "gpt2")
    assert hub.resolve_model_dir("gpt2") == local


def test_a_model_in_the_checkpoints_directory_is_a_known_name():
    local = make_checkpoint(checkpoints_dir() / "my-model")
    assert hub.resolve_model_dir("my-model") == local
    assert hub.known_model_names() == [*hub.KNOWN_MODELS, *hub.BUNDLED_MODELS, "my-model"]


def test_the_bundled_model_resolves_from_any_directory_to_the_package():
    """`minigpt-tiny` is found in minigpt/data/ (the working directory is an empty folder),
    even if the checkpoints directory has a folder of that name."""
    package = Path(hub.__file__).resolve().parent
    assert hub.resolve_model_dir("minigpt-tiny") == package / "data" / "minigpt-tiny"
    make_checkpoint(checkpoints_dir() / "minigpt-tiny")
    assert hub.resolve_model_dir("minigpt-tiny") == package / "data" / "minigpt-tiny"


def test_a_name_with_a_path_in_it_never_leaves_the_checkpoints_directory():
    make_checkpoint(checkpoints_dir().parent / "outside")  # checkpoints_dir() / "../outside"
    with pytest.raises(MiniGPTError, match="no such directory"):
        hub.resolve_model_dir("../outside")


def test_an_incomplete_weights_dir_falls_back_to_the_cache(tmp_path, monkeypatch):
    """An interrupted download leaves weights/gpt2/ without model.safetensors: look further."""
    make_checkpoint(checkpoints_dir() / "gpt2", {"config.json": b"{}"})
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    snapshot = make_cached_snapshot(tmp_path / "hf" / "hub", "openai-community/gpt2", "b" * 40)
    assert hub.resolve_model_dir("gpt2") == snapshot


# ---------------------------------------------------------------- the Hugging Face cache


@pytest.mark.parametrize("repo", ["openai-community/gpt2", "gpt2"])
def test_a_snapshot_in_hf_home_is_found_under_either_folder_name(tmp_path, monkeypatch, repo):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    snapshot = make_cached_snapshot(tmp_path / "hf" / "hub", repo, "c" * 40, main=True)
    found = hub.resolve_model_dir("gpt2")
    assert found == snapshot
    assert (found / "model.safetensors").read_bytes() == b"weights"  # through the symlink


def test_the_snapshot_named_by_refs_main_wins_over_a_newer_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cache = tmp_path / "hf" / "hub"
    main = make_cached_snapshot(cache, "openai-community/gpt2", "d" * 40, main=True)
    newer = make_cached_snapshot(cache, "openai-community/gpt2", "e" * 40)
    set_mtime(main, 1_000_000)
    set_mtime(newer, 2_000_000)
    assert hub.resolve_model_dir("gpt2") == main


def test_an_incomplete_main_snapshot_gives_way_to_the_newest_complete_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cache = tmp_path / "hf" / "hub"
    repo = "openai-community/gpt2"
    make_cached_snapshot(cache, repo, "f" * 40, {"config.json": b"{}"}, main=True)
    older = make_cached_snapshot(cache, repo, "1" * 40)
    newer = make_cached_snapshot(cache, repo, "2" * 40)
    set_mtime(older, 1_000_000)
    set_mtime(newer, 2_000_000)
    assert hub.resolve_model_dir("gpt2") == newer


def test_a_dangling_blob_symlink_does_not_count(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    snapshot = make_cached_snapshot(tmp_path / "hf" / "hub", "openai-community/gpt2", "3" * 40)
    (snapshot / "model.safetensors").resolve().unlink()  # the blob was garbage-collected
    with pytest.raises(MiniGPTError, match="minigpt download gpt2"):
        hub.resolve_model_dir("gpt2")


def test_hf_hub_cache_overrides_hf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    make_cached_snapshot(tmp_path / "hf" / "hub", "distilbert/distilgpt2", "4" * 40)
    snapshot = make_cached_snapshot(tmp_path / "elsewhere", "distilbert/distilgpt2", "5" * 40)
    assert hub.hf_hub_cache() == tmp_path / "elsewhere"
    assert hub.resolve_model_dir("distilgpt2") == snapshot


def test_the_default_cache_is_under_xdg_cache_home_or_home(tmp_path, monkeypatch):
    assert hub.hf_hub_cache() == tmp_path / "home" / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    snapshot = make_cached_snapshot(tmp_path / "xdg" / "huggingface" / "hub", "gpt2-xl", "6" * 40)
    assert hub.resolve_model_dir("gpt2-xl") == snapshot


def test_a_hub_repo_id_names_the_same_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    repo = "openai-community/gpt2-medium"
    snapshot = make_cached_snapshot(tmp_path / "hf" / "hub", repo, "7" * 40)
    assert hub.resolve_model_dir(repo) == snapshot


# ---------------------------------------------------------------- the error messages


def test_missing_weights_name_the_command_that_fetches_them():
    with pytest.raises(MiniGPTError) as caught:
        hub.resolve_model_dir("gpt2-large")
    message = str(caught.value)
    assert "fetch them with: python -m minigpt download gpt2-large" in message
    assert str(checkpoints_dir() / "gpt2-large") in message
    assert "\n" not in message


def test_an_unknown_name_lists_the_known_ones():
    make_checkpoint(checkpoints_dir() / "my-model")
    with pytest.raises(MiniGPTError) as caught:
        hub.resolve_model_dir("gpt-5")
    message = str(caught.value)
    assert "unknown model 'gpt-5'" in message
    for name in [*hub.KNOWN_MODELS, "minigpt-tiny", "my-model"]:
        assert name in message
    assert "scripts" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("argument", "expected"),
    [("./no/such/dir", "no such directory"), ("", "no model given")],
)
def test_bad_paths_say_what_is_wrong(argument, expected):
    with pytest.raises(MiniGPTError, match=expected):
        hub.resolve_model_dir(argument)


def test_a_directory_without_a_checkpoint_says_which_files_it_needs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MiniGPTError, match="config.json and model.safetensors"):
        hub.resolve_model_dir(tmp_path / "empty")


def test_an_incomplete_named_checkpoint_says_which_files_it_needs():
    make_checkpoint(checkpoints_dir() / "half", {"config.json": b"{}"})
    with pytest.raises(MiniGPTError, match=r"half/ is not a complete checkpoint: it needs"):
        hub.resolve_model_dir("half")


def test_a_file_is_refused_with_its_directory_named(tmp_path):
    """--model .../model.safetensors: the message says it is a file and which directory to pass."""
    directory = make_checkpoint(tmp_path / "ckpt")
    with pytest.raises(MiniGPTError) as caught:
        hub.resolve_model_dir(directory / "model.safetensors")
    message = str(caught.value)
    assert "model.safetensors is a file" in message
    assert f"pass the directory that holds it ({directory})" in message


def test_the_command_line_says_a_model_file_is_a_file(tmp_path, capsys):
    directory = make_checkpoint(tmp_path / "ckpt")
    status = cli.main(["generate", "hi", "--model", str(directory / "model.safetensors")])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1 and err.startswith("minigpt: error: ")
    assert "is a file" in err and str(directory) in err


def test_docstring_examples_run():
    assert doctest.testmod(hub, optionflags=doctest.ELLIPSIS).failed == 0
