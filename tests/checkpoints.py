"""Checkpoints for tests: random ones built by the package's own minigpt/make_random.py, and
snapshots laid out like the Hugging Face cache."""

from __future__ import annotations

import os
from pathlib import Path

from minigpt import make_random
from minigpt.config import GPT2Config

TINY = GPT2Config(
    n_layer=2,
    n_head=4,
    n_embd=32,
    n_positions=64,
    vocab_size=101,
    bos_token_id=100,
    eos_token_id=100,
)


def build(out_dir: Path, config: GPT2Config = TINY, **kwargs) -> Path:
    """Write a random checkpoint (see make_random.write_checkpoint for kwargs)."""
    return make_random.write_checkpoint(out_dir, config, **kwargs)


# A stand-in checkpoint for tests that only look at which files exist, never load them.
FAKE_CHECKPOINT = {"config.json": b'{"n_layer": 2}', "model.safetensors": b"weights"}


def make_cached_snapshot(
    cache: Path, repo: str, commit: str, files: dict[str, bytes] = FAKE_CHECKPOINT, main=False
) -> Path:
    """Lay out one snapshot the way huggingface_hub does: files are symlinks into blobs/."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (folder / "blobs").mkdir(exist_ok=True)
    for name, body in files.items():
        blob = folder / "blobs" / f"{commit[:8]}-{name}"
        blob.write_bytes(body)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    if main:
        (folder / "refs").mkdir(exist_ok=True)
        (folder / "refs" / "main").write_text(commit)
    return snapshot
