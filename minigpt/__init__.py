"""minigpt: GPT-2 in NumPy. `load` a model, `load_tokenizer` its tokenizer, and hand
`NextTokenLogits(model)` to any decoder in `decoding/`."""

from __future__ import annotations

import os

from minigpt.adapter import NextTokenLogits
from minigpt.config import GPT2Config
from minigpt.errors import MiniGPTError
from minigpt.gpt2 import GPT2, load_model_dir

__all__ = ["GPT2", "GPT2Config", "MiniGPTError", "NextTokenLogits", "load", "load_tokenizer"]


def load(path: str | os.PathLike) -> GPT2:
    """A model from a directory (config.json + model.safetensors) or a known name ("gpt2")."""
    from minigpt.hub import resolve_model_dir

    return load_model_dir(resolve_model_dir(path))


def load_tokenizer(path: str | os.PathLike):
    """The tokenizer of a model directory or name, with .encode(text) and .decode(ids)."""
    from minigpt.hub import resolve_model_dir
    from minigpt.tokenizer import load_tokenizer as _load
    from minigpt.tokenizer import tokenizer_dir_for

    model_dir = resolve_model_dir(path)
    return _load(tokenizer_dir_for(model_dir))
