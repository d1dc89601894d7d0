"""Random GPT-2 checkpoints for tests, built by the project's own weights/scripts/make_random.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from minigpt.config import GPT2Config

_SCRIPT = Path(__file__).resolve().parents[1] / "weights" / "scripts" / "make_random.py"
_spec = importlib.util.spec_from_file_location("make_random", _SCRIPT)
make_random = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_random)

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
