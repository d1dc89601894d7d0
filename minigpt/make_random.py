"""Write a random-weight GPT-2 checkpoint in the exact published layout, with NumPy only.

The published weights cannot be downloaded everywhere, and tests want tiny models, so the
project builds its own: the same tensor names, shapes, dtypes and mask buffers as the hub's
`model.safetensors`, random values. It lives in the package, not only in the repository, because
minigpt builds its random stand-in for the bundled model with it (minigpt/defaults.py).
Examples (weights/scripts/make_random.py runs the same code):

    python -m minigpt.make_random weights/random-tiny --n-layer 2 --n-embd 64 --n-head 4
    python -m minigpt.make_random weights/random-gpt2 --preset gpt2   # 124M shape
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from minigpt.config import PRESETS, GPT2Config
from minigpt.weights import expected_shapes


def random_tensors(
    config: GPT2Config, seed: int = 0, std: float = 0.02, layout: str = "hub"
) -> dict[str, np.ndarray]:
    """GPT-2's initialisation: weights ~ N(0, std), biases 0, LayerNorm gains 1, and the two
    projections that add to the residual stream (attn.c_proj, mlp.c_proj) ~ N(0, std /
    sqrt(2 n_layer)), as the GPT-2 paper scales them and HF's GPT2 initialises them. Without
    that scaling each random block adds more to the residual stream than the embeddings
    hold, and a model of the first 6 of 12 blocks agrees with the whole one on 1% of the
    greedy tokens (the benchmark's speculative pair); with it, on about a quarter.

    `layout` "hub" adds the per-layer `h.N.attn.bias` mask buffers like the published file;
    "transformers" prefixes names with `transformer.` like save_pretrained and omits them.
    """
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in expected_shapes(config).items():
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            tensors[name] = np.ones(shape, np.float32)
        elif name.endswith(".bias"):
            tensors[name] = np.zeros(shape, np.float32)
        else:
            scale = std / np.sqrt(2 * config.n_layer) if name.endswith("c_proj.weight") else std
            tensors[name] = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale)
    if layout == "hub":
        n = config.n_positions
        mask = np.tril(np.ones((n, n), np.float32))[None, None]  # [1, 1, n, n] as published
        for i in range(config.n_layer):
            tensors[f"h.{i}.attn.bias"] = mask
    elif layout == "transformers":
        tensors = {f"transformer.{name}": t for name, t in tensors.items()}
    else:
        raise ValueError(f"layout must be 'hub' or 'transformers', got {layout!r}")
    return tensors


def write_checkpoint(
    out_dir: str | Path,
    config: GPT2Config,
    seed: int = 0,
    std: float = 0.02,
    layout: str = "hub",
    dtype: str = "float32",
) -> Path:
    """Write config.json + model.safetensors into out_dir; files appear complete or not at all."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = random_tensors(config, seed, std, layout)
    tensors = {name: t.astype(dtype) for name, t in tensors.items()}
    _atomic(
        out_dir / "model.safetensors",
        lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}),
    )
    config_text = json.dumps(config.to_json(), indent=2) + "\n"
    _atomic(out_dir / "config.json", lambda tmp: Path(tmp).write_text(config_text))
    return out_dir


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", help="directory to write config.json and model.safetensors into")
    p.add_argument("--preset", choices=sorted(PRESETS), help="a published shape, e.g. gpt2")
    for field in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size"):
        p.add_argument("--" + field.replace("_", "-"), type=int, help=f"override {field}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--std", type=float, default=0.02, help="std of the random weights")
    p.add_argument("--layout", choices=["hub", "transformers"], default="hub")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    args = p.parse_args(argv)
    fields = GPT2Config.preset(args.preset).__dict__.copy() if args.preset else {}
    for field in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size"):
        if getattr(args, field) is not None:
            fields[field] = getattr(args, field)
    config = GPT2Config(**fields)
    out = write_checkpoint(args.out_dir, config, args.seed, args.std, args.layout, args.dtype)
    size = (out / "model.safetensors").stat().st_size
    print(f"wrote {out}/model.safetensors ({size:,} bytes) and config.json")


if __name__ == "__main__":
    main()
