"""Find a checkpoint on disk: a directory, the repo's weights/NAME/, or the Hugging Face cache.

A checkpoint directory is one that holds config.json and model.safetensors (the published
layout). `resolve_model_dir` never touches the network: if the weights are not on disk it says
which command fetches them.
"""

from __future__ import annotations

import os
from pathlib import Path

from minigpt.errors import MiniGPTError

# The repo's weights/ folder: minigpt/hub.py -> minigpt/ -> the repo root.
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
REQUIRED_FILES = ("config.json", "model.safetensors")
DOWNLOAD_SCRIPT = "weights/scripts/download.py"

# The published GPT-2 family, each with its hub repository names: the current one first, then
# the old un-namespaced one, under which older Hugging Face caches may still hold it.
HUB_REPOS = {
    "gpt2": ("openai-community/gpt2", "gpt2"),
    "gpt2-medium": ("openai-community/gpt2-medium", "gpt2-medium"),
    "gpt2-large": ("openai-community/gpt2-large", "gpt2-large"),
    "gpt2-xl": ("openai-community/gpt2-xl", "gpt2-xl"),
    "distilgpt2": ("distilbert/distilgpt2", "distilgpt2"),
}
KNOWN_MODELS = tuple(HUB_REPOS)  # plus any checkpoint directory under weights/


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """The directory holding config.json + model.safetensors for a model name or a path.

    Tried in order: the argument as a checkpoint directory; weights/NAME/; for the published
    models, a snapshot in the Hugging Face cache. Otherwise a MiniGPTError names the fix.

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
    if holds_checkpoint(WEIGHTS_DIR / name):
        return WEIGHTS_DIR / name
    if name in HUB_REPOS:
        snapshot = cached_snapshot(name)
        if snapshot is not None:
            return snapshot
        raise MiniGPTError(
            f"no weights for {name!r} in weights/{name}/ or the Hugging Face cache "
            f"({hf_hub_cache()}): fetch them with: python {DOWNLOAD_SCRIPT} {name}"
        )
    raise MiniGPTError(not_found_message(str(name_or_path), path))


def holds_checkpoint(directory: Path) -> bool:
    """True if directory has every file a checkpoint needs (symlinks to blobs count)."""
    return directory.is_dir() and all((directory / f).is_file() for f in REQUIRED_FILES)


def published_name(name: str) -> str | None:
    """Map a published name or its hub repo id ("openai-community/gpt2") to our name."""
    for model, repos in HUB_REPOS.items():
        if name == model or name in repos:
            return model
    return None


def known_model_names() -> list[str]:
    """The published names, then the checkpoint directories found under weights/."""
    local = []
    if WEIGHTS_DIR.is_dir():
        local = sorted(d.name for d in WEIGHTS_DIR.iterdir() if holds_checkpoint(d))
    return list(KNOWN_MODELS) + [name for name in local if name not in HUB_REPOS]


def not_found_message(argument: str, path: Path) -> str:
    """Why an argument that is neither a checkpoint directory nor a known name failed."""
    missing = f"needs {' and '.join(REQUIRED_FILES)}"
    if path.is_dir():
        return f"{argument} is not a checkpoint directory: it {missing}"
    if (WEIGHTS_DIR / argument).is_dir():
        return f"weights/{argument}/ is not a complete checkpoint: it {missing}"
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


def cached_snapshot(name: str) -> Path | None:
    """A snapshot of a published model in the Hugging Face cache that holds a checkpoint."""
    for repo in HUB_REPOS[name]:
        # The cache stores repo "owner/name" under "models--owner--name".
        folder = hf_hub_cache() / ("models--" + repo.replace("/", "--"))
        snapshot = best_snapshot(folder)
        if snapshot is not None:
            return snapshot
    return None


def best_snapshot(folder: Path) -> Path | None:
    """The snapshot refs/main points to if it is complete, else the newest complete one.

    Each snapshot is a folder named by a git commit, whose files are symlinks into blobs/.
    """
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None
    newest_first = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    main = read_ref(folder / "refs" / "main")
    ordered = sorted(newest_first, key=lambda p: p.name != main)  # stable: main, then newest
    return next((s for s in ordered if holds_checkpoint(s)), None)


def read_ref(ref_file: Path) -> str | None:
    """The commit hash stored in a cache ref file (refs/main), or None if there is none."""
    try:
        return ref_file.read_text().strip() or None
    except OSError:
        return None
