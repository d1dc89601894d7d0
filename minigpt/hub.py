"""Find a checkpoint on disk: a directory, a name, or a snapshot in the Hugging Face cache.

A checkpoint directory is one that holds config.json and model.safetensors (the published
layout). A name is looked up, in order, in:

1. the package's bundled data: minigpt-tiny and its draft model, in minigpt/data/;
2. the checkpoints directory: weights/NAME/ in a checkout, ~/.cache/minigpt/NAME/ (or
   $MINIGPT_HOME/NAME/) when installed; minigpt/installation.py explains which and why;
3. for the published GPT-2 models, the Hugging Face cache, where transformers puts them.

`resolve_model_dir` never touches the network: if the weights are not on disk it says which
command fetches them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from minigpt.errors import MiniGPTError
from minigpt.installation import checkpoints_dir, data_dir

REQUIRED_FILES = ("config.json", "model.safetensors")
DOWNLOAD_COMMAND = "python -m minigpt download"  # the same code as weights/scripts/download.py
BUNDLED_MODELS = ("minigpt-tiny", "minigpt-tiny-draft")  # checkpoints in minigpt/data/

# The published GPT-2 family, each with its hub repository names: the current one first, then
# the old un-namespaced one, under which older Hugging Face caches may still hold it.
HUB_REPOS = {
    "gpt2": ("openai-community/gpt2", "gpt2"),
    "gpt2-medium": ("openai-community/gpt2-medium", "gpt2-medium"),
    "gpt2-large": ("openai-community/gpt2-large", "gpt2-large"),
    "gpt2-xl": ("openai-community/gpt2-xl", "gpt2-xl"),
    "distilgpt2": ("distilbert/distilgpt2", "distilgpt2"),
}
KNOWN_MODELS = tuple(HUB_REPOS)  # plus the bundled models and the checkpoints directory's


def holds_checkpoint(directory: Path) -> bool:
    """True if directory has every file a checkpoint needs (symlinks to blobs count)."""
    return directory.is_dir() and all((directory / f).is_file() for f in REQUIRED_FILES)


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """The directory holding config.json + model.safetensors for a model name or a path.

    Tried in order: the argument as a checkpoint directory; the bundled model of that name;
    checkpoints_dir()/NAME/; for the published models, a snapshot in the Hugging Face cache.
    Otherwise a MiniGPTError names the fix.

    >>> resolve_model_dir("minigpt-tiny").parts[-3:]  # the bundled model, from any directory
    ('minigpt', 'data', 'minigpt-tiny')
    >>> resolve_model_dir("gpt3")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    minigpt.errors.MiniGPTError: unknown model 'gpt3': known names are gpt2, ...
    """
    if not str(name_or_path).strip():
        raise MiniGPTError("no model given: name one (such as gpt2) or a checkpoint directory")
    path = Path(name_or_path).expanduser()
    if holds_checkpoint(path):
        return path
    name = published_name(str(name_or_path)) or str(name_or_path)
    found = find_named_dir(name)
    if found is not None:
        return found
    if name in HUB_REPOS:
        raise MiniGPTError(
            f"no weights for {name!r} in {checkpoints_dir() / name}/ or the Hugging Face cache "
            f"({hf_hub_cache()}): fetch them with: {DOWNLOAD_COMMAND} {name}"
        )
    raise MiniGPTError(not_found_message(str(name_or_path), path))


def find_named_dir(name: str, complete: Callable[[Path], bool] = holds_checkpoint) -> Path | None:
    """The first folder that `name` can mean and that `complete` accepts, or None.

    `complete` says what the folder must hold; by default a whole checkpoint. The tokenizer
    passes its own test, since it needs tokenizer files and no weights.
    """
    for directory in named_dirs(name):
        if complete(directory):
            return directory
    if name in HUB_REPOS:
        return cached_snapshot(name, complete)
    return None


def named_dirs(name: str) -> list[Path]:
    """The folders on disk a bare name stands for: the bundled model, checkpoints_dir()/NAME.

    A name with a path separator (other than a hub repo id, mapped before) stands for none:
    "../x" must not reach outside the checkpoints directory.
    """
    if not name or "/" in name or os.sep in name or name.startswith((".", "~")):
        return []
    bundled = [data_dir(name)] if name in BUNDLED_MODELS else []
    return [*bundled, checkpoints_dir() / name]


def published_name(name: str) -> str | None:
    """Map a published name or its hub repo id ("openai-community/gpt2") to our name."""
    for model, repos in HUB_REPOS.items():
        if name == model or name in repos:
            return model
    return None


def known_model_names() -> list[str]:
    """The published names, the bundled ones, then the checkpoints found in checkpoints_dir()."""
    local = []
    if checkpoints_dir().is_dir():
        local = sorted(d.name for d in checkpoints_dir().iterdir() if holds_checkpoint(d))
    names = [*KNOWN_MODELS, *BUNDLED_MODELS, *local]
    return list(dict.fromkeys(names))  # each once, in that order


def not_found_message(argument: str, path: Path) -> str:
    """Why an argument that is neither a checkpoint directory nor a known name failed."""
    missing = f"needs {' and '.join(REQUIRED_FILES)}"
    if path.is_file():
        return (
            f"{argument} is a file, not a directory: pass the directory that holds it "
            f"({path.absolute().parent})"
        )
    if path.is_dir():
        return f"{argument} is not a checkpoint directory: it {missing}"
    for directory in named_dirs(argument):
        if directory.is_dir():
            return f"{directory}/ is not a complete checkpoint: it {missing}"
    if os.sep in argument or "/" in argument or argument.startswith((".", "~")):
        return f"no such directory: {argument}"
    return f"unknown model {argument!r}: known names are {', '.join(known_model_names())}"


# ---------------------------------------------------------------- the Hugging Face cache


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, located the way huggingface_hub locates it.

    $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
    ~/.cache/huggingface/hub ($HUGGINGFACE_HUB_CACHE is the older name of $HF_HUB_CACHE).
    """
    env = os.environ
    explicit = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return expand(explicit)
    if env.get("HF_HOME"):
        return expand(env["HF_HOME"]) / "hub"
    cache_home = env.get("XDG_CACHE_HOME") or "~/.cache"
    return expand(cache_home) / "huggingface" / "hub"


def expand(path: str) -> Path:
    """A path with ~ and $VARIABLES expanded."""
    return Path(os.path.expandvars(path)).expanduser()


def cached_snapshot(name: str, complete: Callable[[Path], bool] = holds_checkpoint) -> Path | None:
    """A snapshot of a published model in the Hugging Face cache that `complete` accepts
    (by default: one that holds a whole checkpoint)."""
    for repo in HUB_REPOS[name]:
        # The cache stores repo "owner/name" under "models--owner--name".
        folder = hf_hub_cache() / ("models--" + repo.replace("/", "--"))
        snapshot = best_snapshot(folder, complete)
        if snapshot is not None:
            return snapshot
    return None


def best_snapshot(folder: Path, complete: Callable[[Path], bool] = holds_checkpoint) -> Path | None:
    """The snapshot refs/main points to if it is complete, else the newest complete one.

    Each snapshot is a folder named by a git commit, whose files are symlinks into blobs/.
    """
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    newest_first = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    main = read_ref(folder / "refs" / "main")
    ordered = sorted(newest_first, key=lambda p: p.name != main)  # stable: main, then newest
    return next((s for s in ordered if complete(s)), None)


def read_ref(ref_file: Path) -> str | None:
    """The commit hash stored in a cache ref file (refs/main), or None if there is none."""
    try:
        return ref_file.read_text().strip() or None
    except OSError:
        return None
