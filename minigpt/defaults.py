"""The model `minigpt` uses when you name none, and the prompt its demo starts from.

The bundled default is minigpt-tiny, a small GPT-2 trained on simple stories (see
weights/scripts/train_tiny.py in the repository), shipped inside the package in
minigpt/data/minigpt-tiny/. Where it is missing, a random checkpoint with GPT-2's shape and
vocabulary is built on the fly into the checkpoints directory (weights/random-demo/ in a
checkout, ~/.cache/minigpt/random-demo/ when installed; never into the package), so every
command still runs end to end; its text is noise, and the CLI says so.
"""

from __future__ import annotations

from pathlib import Path

from minigpt.config import GPT2Config
from minigpt.hub import holds_checkpoint
from minigpt.installation import checkpoints_dir, data_dir

BUNDLED_DIR = data_dir("minigpt-tiny")
RANDOM_DEMO_DIR = checkpoints_dir() / "random-demo"

# A sentence the bundled model has seen thousands of beginnings like.
DEMO_PROMPT = "Once upon a time, there was a"

# Small enough to build in a second, with GPT-2's vocabulary so the bundled GPT-2 tokenizer
# applies (minigpt/data/gpt2-tokenizer/).
RANDOM_DEMO_CONFIG = GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=256)
RANDOM_NOTE = (
    "note: {path} holds RANDOM weights (the bundled minigpt-tiny is missing), so the text "
    "below is noise; build it with python weights/scripts/train_tiny.py in the repository"
)


def default_model_dir() -> Path:
    """The bundled minigpt-tiny if present, else the random stand-in (built if needed).

    >>> default_model_dir().name in ("minigpt-tiny", "random-demo")
    True
    """
    if holds_checkpoint(BUNDLED_DIR):
        return BUNDLED_DIR
    if not holds_checkpoint(RANDOM_DEMO_DIR):
        build_random_demo(RANDOM_DEMO_DIR)
    return RANDOM_DEMO_DIR


def is_random_demo(model_dir: str | Path) -> bool:
    """True if `model_dir` is the random stand-in for the bundled model."""
    return Path(model_dir).resolve() == RANDOM_DEMO_DIR.resolve()


def build_random_demo(out_dir: Path) -> Path:
    """Write the random stand-in checkpoint with the package's own random-checkpoint writer."""
    from minigpt.make_random import write_checkpoint  # NumPy and safetensors: only when needed

    return write_checkpoint(out_dir, RANDOM_DEMO_CONFIG, seed=0)
