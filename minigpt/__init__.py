"""minigpt: GPT-2 in NumPy. `load` a model, `load_tokenizer` its tokenizer, and hand
`NextTokenLogits(model)` to any decoder in `decoding/`.

`import minigpt` itself loads nothing heavy: the names that need NumPy (GPT2, NextTokenLogits)
are imported the first time you use them (a module-level __getattr__, PEP 562). That is what
lets `minigpt --version` answer at once and a Ctrl-C while NumPy loads exit quietly. It is
also why `import minigpt` before `import numpy` can choose OpenBLAS's kernels (below).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from minigpt import blas_kernels
from minigpt.config import GPT2Config
from minigpt.errors import MiniGPTError

# Before anything imports NumPy: on AMD CPUs with AVX-512 this asks OpenBLAS for the kernels
# that multiply several rows faster (minigpt/blas_kernels.py says why and how to opt out).
blas_kernels.choose()

if TYPE_CHECKING:  # for readers and type checkers; at run time __getattr__ imports them
    from minigpt.adapter import NextTokenLogits
    from minigpt.gpt2 import GPT2
    from minigpt.scoring import score

__all__ = [
    "GPT2",
    "GPT2Config",
    "MiniGPTError",
    "NextTokenLogits",
    "load",
    "load_tokenizer",
    "score",
]

# name -> its module
_LAZY = {"GPT2": "minigpt.gpt2", "NextTokenLogits": "minigpt.adapter", "score": "minigpt.scoring"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'minigpt' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # the next lookup finds it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def load(path: str | os.PathLike) -> GPT2:
    """A model from a directory (config.json + model.safetensors) or a known name ("gpt2")."""
    from minigpt.gpt2 import load_model_dir
    from minigpt.hub import resolve_model_dir

    return load_model_dir(resolve_model_dir(path))


def load_tokenizer(path: str | os.PathLike):
    """The tokenizer, with .encode(text) and .decode(ids), of a model directory, a tokenizer
    directory (tokenizer.json, or vocab.json + merges.txt) or a name: "gpt2" and the other
    published GPT-2 models need no weights, since they share the bundled vocabulary."""
    from minigpt.tokenizer import load_tokenizer as _load

    return _load(path)
