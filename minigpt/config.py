"""GPT-2's hyperparameters: read from a checkpoint's config.json, or a published preset."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from minigpt.errors import MiniGPTError


@dataclass(frozen=True)
class GPT2Config:
    """The numbers that fix every tensor shape in a GPT-2 checkpoint.

    >>> GPT2Config.preset("gpt2").head_size
    64
    """

    n_layer: int = 12  # transformer blocks
    n_head: int = 12  # attention heads per block
    n_embd: int = 768  # C: the width of the residual stream
    n_positions: int = 1024  # the context length: learned position embeddings
    vocab_size: int = 50257
    layer_norm_epsilon: float = 1e-5
    bos_token_id: int = 50256
    eos_token_id: int = 50256  # <|endoftext|>

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise MiniGPTError(f"config: {name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise MiniGPTError(
                f"config: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})"
            )

    @classmethod
    def preset(cls, name: str) -> GPT2Config:
        """The config of a published model: gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2."""
        if name not in PRESETS:
            raise MiniGPTError(f"no preset {name!r}; known presets: {', '.join(PRESETS)}")
        return PRESETS[name]

    @classmethod
    def from_json(cls, path: str | Path) -> GPT2Config:
        """Read a Hugging Face GPT-2 `config.json`; refuse options minigpt does not implement."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise MiniGPTError(
                f"{path}: no such file; a model directory needs config.json"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MiniGPTError(f"{path}: not valid JSON ({e}); re-download config.json") from None
        if raw.get("model_type", "gpt2") != "gpt2":
            raise MiniGPTError(
                f"{path}: model_type is {raw['model_type']!r}, minigpt runs gpt2 only"
            )
        _refuse_unsupported(raw, path)
        fields = {k: raw[k] for k in asdict(cls()) if raw.get(k) is not None}
        return cls(**fields)

    def to_json(self) -> dict:
        """The config.json a Hugging Face GPT2LMHeadModel reads."""
        return {
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            **asdict(self),
            "activation_function": "gelu_new",
            "n_inner": None,
            "n_ctx": self.n_positions,
        }


def _refuse_unsupported(raw: dict, path: Path) -> None:
    """GPT-2 configs can switch on variants we do not implement: fail loudly, not silently."""
    expected = {
        "activation_function": "gelu_new",
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": False,
    }
    for key, value in expected.items():
        if key in raw and raw[key] != value:
            raise MiniGPTError(f"{path}: {key}={raw[key]!r} is not supported (only {value!r})")
    n_embd = raw.get("n_embd", 768)
    if raw.get("n_inner") not in (None, 4 * n_embd):
        raise MiniGPTError(f"{path}: n_inner={raw['n_inner']} is not supported (only 4 * n_embd)")


PRESETS: dict[str, GPT2Config] = {
    "gpt2": GPT2Config(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": GPT2Config(n_layer=24, n_head=16, n_embd=1024),  # 355M
    "gpt2-large": GPT2Config(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": GPT2Config(n_layer=48, n_head=25, n_embd=1600),  # 1558M
    "distilgpt2": GPT2Config(n_layer=6, n_head=12, n_embd=768),  # 82M
}
