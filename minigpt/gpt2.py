"""The model object: a config, its validated weights, and a forward pass that checks its input."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minigpt.config import GPT2Config
from minigpt.errors import MiniGPTError
from minigpt.forward_fast import gpt2_forward
from minigpt.kv_cache import KVCache
from minigpt.weights import GPT2Params, load_params


class GPT2:
    """GPT-2 with loaded weights.

    >>> import minigpt
    >>> model = minigpt.load("minigpt-tiny")  # the bundled model: 1478 tokens, 256 positions
    >>> model.forward([41, 511, 259, 527]).shape
    (4, 1478)
    """

    def __init__(self, config: GPT2Config, params: GPT2Params) -> None:
        self.config = config
        self.params = params

    def __repr__(self) -> str:
        c = self.config
        return (
            f"GPT2(n_layer={c.n_layer}, n_head={c.n_head}, n_embd={c.n_embd}, "
            f"vocab={c.vocab_size}, context={c.n_positions})"
        )

    def forward(self, ids, cache: KVCache | None = None, last_only: bool = False) -> np.ndarray:
        """float32 logits [..., T, V] for int ids [T] or [B, T] (see forward_fast.gpt2_forward)."""
        ids = self.check_ids(ids)
        batched = ids.ndim == 2
        ids2d = ids if batched else ids[None]
        if cache is not None and cache.batch_size != ids2d.shape[0]:
            raise MiniGPTError(
                f"cache holds {cache.batch_size} rows but ids have "
                f"{ids2d.shape[0]}; make the cache with new_cache(batch_size)"
            )
        logits = gpt2_forward(self.params, self.config, ids2d, cache, last_only)
        return logits if batched else logits[0]

    def new_cache(self, batch_size: int = 1) -> KVCache:
        """An empty KV cache for `batch_size` sequences."""
        return KVCache(self.config, batch_size)

    def check_ids(self, ids) -> np.ndarray:
        """Token ids as an int64 array [T] or [B, T], or a one-line error saying what is wrong."""
        try:
            ids = np.asarray(ids)
        except ValueError:
            raise MiniGPTError("token ids must form a rectangular [T] or [B, T] array") from None
        if ids.ndim not in (1, 2) or ids.shape[-1] == 0:
            raise MiniGPTError(
                f"token ids must be a non-empty [T] or [B, T] array, got shape "
                f"{ids.shape}; an empty prompt has nothing to continue"
            )
        if ids.dtype.kind not in "iu":
            raise MiniGPTError(f"token ids must be integers, got dtype {ids.dtype}")
        bad = ids[(ids < 0) | (ids >= self.config.vocab_size)]
        if bad.size:
            raise MiniGPTError(
                f"token id {int(bad[0])} is outside the vocabulary "
                f"[0, {self.config.vocab_size}); was it made by another tokenizer?"
            )
        if ids.shape[-1] > self.config.n_positions:
            raise MiniGPTError(
                f"sequence of {ids.shape[-1]} tokens is longer than the model's "
                f"context of {self.config.n_positions}; shorten it"
            )
        return ids.astype(np.int64, copy=False)


def load_model_dir(model_dir: str | Path) -> GPT2:
    """Load `config.json` + `model.safetensors` from a directory."""
    model_dir = Path(model_dir)
    weights = model_dir / "model.safetensors"
    if not weights.exists():
        pickles = sorted(p.name for p in model_dir.glob("*.bin"))
        if pickles:
            raise MiniGPTError(
                f"{model_dir}: only {pickles[0]} (pickle) found; minigpt refuses "
                "pickle because loading it runs code: get model.safetensors"
            )
        raise MiniGPTError(
            f"{model_dir}: no model.safetensors; a model directory needs "
            "config.json and model.safetensors"
        )
    config = GPT2Config.from_json(model_dir / "config.json")
    return GPT2(config, load_params(weights, config))
