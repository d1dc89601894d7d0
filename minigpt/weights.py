"""GPT-2's weights: the published tensor names mapped onto small dataclasses, every shape checked.

A learner can hold the checkpoint listing next to this file: `h.0.attn.c_attn.weight` in the file
is `params.h[0].attn.c_attn.weight` here. Two layouts exist in the wild and both load:
- the hub's `model.safetensors`: `wte.weight`, `h.0.ln_1.weight`, ... plus one `h.N.attn.bias`
  causal-mask buffer per layer (a constant, ignored here: we build the mask ourselves);
- `save_pretrained`'s: the same names under `transformer.`, maybe with `lm_head.weight`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minigpt.config import GPT2Config
from minigpt.errors import MiniGPTError
from minigpt.safetensors_file import load_arrays


@dataclass
class Linear:
    """A Conv1D layer as GPT-2 stores it: weight [in, out], so y = x @ weight + bias."""

    weight: np.ndarray
    bias: np.ndarray

    def __repr__(self) -> str:
        return f"Linear(weight {_shape(self.weight)} {self.weight.dtype}, bias {_shape(self.bias)})"


@dataclass
class LayerNorm:
    weight: np.ndarray  # [C] gain
    bias: np.ndarray  # [C]

    def __repr__(self) -> str:
        return (
            f"LayerNorm(weight {_shape(self.weight)} {self.weight.dtype}, bias {_shape(self.bias)})"
        )


@dataclass
class Attention:
    c_attn: Linear  # [C, 3C]: q, k, v side by side
    c_proj: Linear  # [C, C]

    def __repr__(self) -> str:
        return (
            f"Attention(c_attn {_shape(self.c_attn.weight)}, c_proj {_shape(self.c_proj.weight)})"
        )


@dataclass
class MLP:
    c_fc: Linear  # [C, 4C]
    c_proj: Linear  # [4C, C]

    def __repr__(self) -> str:
        return f"MLP(c_fc {_shape(self.c_fc.weight)}, c_proj {_shape(self.c_proj.weight)})"


@dataclass
class Block:
    ln_1: LayerNorm
    attn: Attention
    ln_2: LayerNorm
    mlp: MLP

    def __repr__(self) -> str:
        ln_1, ln_2 = _shape(self.ln_1.weight), _shape(self.ln_2.weight)
        dtype = self.attn.c_attn.weight.dtype
        return f"Block(ln_1 {ln_1}, {self.attn!r}, ln_2 {ln_2}, {self.mlp!r}, {dtype})"


@dataclass
class GPT2Params:
    wte: np.ndarray  # [vocab, C] token embeddings, also the output head (tied)
    wpe: np.ndarray  # [n_positions, C] position embeddings
    h: list[Block]
    ln_f: LayerNorm
    lm_head: np.ndarray  # [vocab, C]: wte itself unless the file carries a separate head

    def __repr__(self) -> str:
        # Shapes only: the dataclass repr summarised every array, 170,000 characters for the
        # bundled model and a million for gpt2, too long for a debugger's variables pane.
        head = "tied to wte" if self.lm_head is self.wte else _shape(self.lm_head)
        return (
            f"GPT2Params(wte {_shape(self.wte)} {self.wte.dtype}, wpe {_shape(self.wpe)}, "
            f"h: {len(self.h)} x Block, ln_f {_shape(self.ln_f.weight)}, lm_head {head})"
        )


def _shape(array: np.ndarray) -> str:
    return "[" + ", ".join(str(n) for n in array.shape) + "]"


def expected_shapes(config: GPT2Config) -> dict[str, tuple[int, ...]]:
    """Every tensor name in a hub-layout GPT-2 checkpoint, with its shape."""
    C, V = config.n_embd, config.vocab_size
    shapes = {
        "wte.weight": (V, C),
        "wpe.weight": (config.n_positions, C),
        "ln_f.weight": (C,),
        "ln_f.bias": (C,),
    }
    for i in range(config.n_layer):
        layer = {
            "ln_1.weight": (C,),
            "ln_1.bias": (C,),
            "ln_2.weight": (C,),
            "ln_2.bias": (C,),
            "attn.c_attn.weight": (C, 3 * C),
            "attn.c_attn.bias": (3 * C,),
            "attn.c_proj.weight": (C, C),
            "attn.c_proj.bias": (C,),
            "mlp.c_fc.weight": (C, 4 * C),
            "mlp.c_fc.bias": (4 * C,),
            "mlp.c_proj.weight": (4 * C, C),
            "mlp.c_proj.bias": (C,),
        }
        shapes.update({f"h.{i}.{name}": shape for name, shape in layer.items()})
    return shapes


def _is_mask_buffer(name: str) -> bool:
    """The hub file stores each layer's causal mask; it carries no learned value."""
    return name.endswith(".attn.bias") or name.endswith(".attn.masked_bias")


def normalize_names(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map either layout onto the hub's names; drop the mask buffers."""
    out = {}
    for name, array in arrays.items():
        short = name.removeprefix("transformer.")
        if not _is_mask_buffer(short):
            out[short] = array
    return out


def check_tensors(tensors: dict[str, np.ndarray], config: GPT2Config, path: Path) -> None:
    """Refuse a checkpoint whose tensors do not match the config, listing what is wrong."""
    shapes = expected_shapes(config)
    optional = {"lm_head.weight": (config.vocab_size, config.n_embd)}
    missing = sorted(set(shapes) - set(tensors), key=_natural)
    extra = sorted(set(tensors) - set(shapes) - set(optional), key=_natural)
    if missing:
        raise MiniGPTError(
            f"{path}: missing tensors {_short_list(missing)}; "
            "the file does not match config.json (or is not GPT-2)"
        )
    if extra:
        raise MiniGPTError(
            f"{path}: unexpected tensors {_short_list(extra)}; "
            "the file does not match config.json (or is not GPT-2)"
        )
    for name, array in tensors.items():
        want = {**shapes, **optional}[name]
        if array.dtype != np.float32:  # the loader made every float type float32 already
            raise MiniGPTError(
                f"{path}: tensor {name} holds {array.dtype} values, but GPT-2's weights are "
                "floating point (F32, F16, BF16 or F64); the file is not a GPT-2 checkpoint"
            )
        if tuple(array.shape) != want:
            raise MiniGPTError(
                f"{path}: tensor {name} has shape {tuple(array.shape)}, but "
                f"config.json implies {want}; config and weights disagree"
            )


def load_params(path: str | Path, config: GPT2Config) -> GPT2Params:
    """Load `model.safetensors` (either layout), validated against `config`."""
    path = Path(path)
    tensors = normalize_names(load_arrays(path))
    check_tensors(tensors, config, path)

    def linear(prefix: str) -> Linear:
        return Linear(tensors[f"{prefix}.weight"], tensors[f"{prefix}.bias"])

    def layer_norm(prefix: str) -> LayerNorm:
        return LayerNorm(tensors[f"{prefix}.weight"], tensors[f"{prefix}.bias"])

    blocks = [
        Block(
            ln_1=layer_norm(f"h.{i}.ln_1"),
            attn=Attention(linear(f"h.{i}.attn.c_attn"), linear(f"h.{i}.attn.c_proj")),
            ln_2=layer_norm(f"h.{i}.ln_2"),
            mlp=MLP(linear(f"h.{i}.mlp.c_fc"), linear(f"h.{i}.mlp.c_proj")),
        )
        for i in range(config.n_layer)
    ]
    wte = tensors["wte.weight"]
    # save_pretrained may write the tied head out; if it differs from wte we honour it.
    lm_head = tensors.get("lm_head.weight", wte)
    return GPT2Params(
        wte=wte, wpe=tensors["wpe.weight"], h=blocks, ln_f=layer_norm("ln_f"), lm_head=lm_head
    )


def _natural(name: str) -> tuple:
    """Sort h.2 before h.10."""
    return tuple(int(p) if p.isdigit() else p for p in name.split("."))


def _short_list(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
