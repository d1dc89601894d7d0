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
    """The tokenizer, with .encode(text) and .decode(ids), of a model directory, a tokenizer
    directory (tokenizer.json, or vocab.json + merges.txt) or a name: "gpt2" and the other
    published GPT-2 models need no weights, since they share the bundled vocabulary."""
    from minigpt.tokenizer import load_tokenizer as _load

    return _load(path)
