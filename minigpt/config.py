"""GPT-2's hyperparameters: read from a checkpoint's config.json, or a published preset.

config.json is trusted no more than the weights: every field minigpt uses is checked for its
type and range, and a bad one is refused with one line naming the file and the key, e.g.
`my-model/config.json: n_head must be a positive integer, got true`. JSON's true is not a
number, although Python's json turns it into True, which is an int to Python.

A key that is missing takes GPT-2's default, as in Hugging Face's GPT2Config. A key that is
null is refused, as Hugging Face refuses it, except bos_token_id and eos_token_id: there null
is Hugging Face's way of saying the model has no such token, so minigpt reads null as None
(an eos_token_id of None: generation never stops early).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from minigpt.errors import MiniGPTError

SIZES = ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size")
TOKEN_IDS = ("bos_token_id", "eos_token_id")


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
    bos_token_id: int | None = 50256
    eos_token_id: int | None = 50256  # <|endoftext|>; None: no token ends the text

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    def __post_init__(self) -> None:
        problem = config_problem(asdict(self))
        if problem:
            raise MiniGPTError(f"config: {problem}")

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
        raw = _read_json_object(path)
        if raw.get("model_type", "gpt2") != "gpt2":
            raise MiniGPTError(
                f"{path}: model_type is {_show(raw['model_type'])}, minigpt runs gpt2 only"
            )
        fields = {key: raw.get(key, default) for key, default in asdict(cls()).items()}
        problem = config_problem(fields, given=set(raw))
        if problem:
            raise MiniGPTError(f"{path}: {problem}")
        _refuse_unsupported(raw, path, fields["n_embd"])
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


# ------------------------------------------------------------------------------ the checks


def config_problem(fields: dict, given: set | None = None) -> str | None:
    """What is wrong with a GPT2Config's fields, in words that name the key; None if nothing.
    `given`: the keys config.json spelled out (the others took GPT-2's defaults)."""
    for key in SIZES:
        if not _is_integer(fields[key]) or fields[key] < 1:
            return f"{key} must be a positive integer, got {_show(fields[key])}"
    epsilon = fields["layer_norm_epsilon"]
    if not _is_positive_finite(epsilon):  # it is added under a square root, to avoid 1/0
        return f"layer_norm_epsilon must be a positive finite number, got {_show(epsilon)}"
    n_embd, n_head = fields["n_embd"], fields["n_head"]
    if n_embd % n_head:
        return (
            f"n_embd ({n_embd}) must be divisible by n_head ({n_head}): "
            "each head gets n_embd / n_head of the width"
        )
    for key in TOKEN_IDS:
        problem = _token_id_problem(key, fields[key], fields["vocab_size"])
        if problem and given is not None and key not in given:
            return f"{key} is not given, so it is GPT-2's {fields[key]}: {problem}; set it or null"
        if problem:
            return f"{key} {problem}"
    return None


def _token_id_problem(key: str, value, vocab_size: int) -> str | None:
    if value is None:  # the model has no such token
        return None
    if isinstance(value, list):  # Hugging Face allows several EOS ids; minigpt stops on one
        return f"must be one token id or null, got the list {_show(value)}"
    if not (_is_integer(value) and 0 <= value < vocab_size):
        return f"must be a token id in [0, vocab_size={vocab_size}) or null, got {_show(value)}"
    return None


def _is_integer(value) -> bool:
    """An int, and not a bool: JSON's true is not a number, even if Python's True is an int."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_finite(value) -> bool:
    if _is_integer(value):
        return value > 0
    return isinstance(value, float) and math.isfinite(value) and value > 0


def _refuse_unsupported(raw: dict, path: Path, n_embd: int) -> None:
    """GPT-2 configs can switch on variants we do not implement: fail loudly, not silently."""
    expected = {
        "activation_function": "gelu_new",
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": False,
    }
    for key, value in expected.items():
        # type() too: 1 == True in Python, but 1 is not JSON's true
        if key in raw and (type(raw[key]) is not type(value) or raw[key] != value):
            raise MiniGPTError(
                f"{path}: {key}={_show(raw[key])} is not supported (only {_show(value)})"
            )
    n_inner = raw.get("n_inner")
    if n_inner is not None and not (_is_integer(n_inner) and n_inner == 4 * n_embd):
        raise MiniGPTError(
            f"{path}: n_inner={_show(n_inner)} is not supported (only null or 4 * n_embd)"
        )


# ------------------------------------------------------------------------- reading the file


class _RepeatedKey(Exception):
    pass


def _read_json_object(path: Path) -> dict:
    """config.json as a dict: UTF-8 JSON, an object, no key given twice."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MiniGPTError(f"{path}: no such file; a model directory needs config.json") from None
    except OSError as e:  # a directory, no permission, ...
        raise MiniGPTError(f"{path}: cannot read it ({e.strerror or e})") from None
    try:
        raw = json.loads(data.decode("utf-8"), object_pairs_hook=_object_without_repeats)
    except UnicodeDecodeError as e:
        raise MiniGPTError(
            f"{path}: not UTF-8 text (at byte {e.start}); re-download config.json"
        ) from None
    except _RepeatedKey as e:
        raise MiniGPTError(f"{path}: {e}; which one is meant?") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise MiniGPTError(f"{path}: not valid JSON ({e}); re-download config.json") from None
    if not isinstance(raw, dict):
        raise MiniGPTError(f"{path}: must be a JSON object of settings, got {_show(raw)}")
    return raw


def _object_without_repeats(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object; a key given twice is refused (json.loads would keep the last silently)."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise _RepeatedKey(f"the key {key!r} appears twice")
        seen.add(key)
    return dict(pairs)


def _show(value, limit: int = 60) -> str:
    """A value as JSON spells it (true, null), shortened for a one-line message."""
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):  # not from JSON: a NumPy integer passed in Python
        shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


PRESETS: dict[str, GPT2Config] = {
    "gpt2": GPT2Config(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": GPT2Config(n_layer=24, n_head=16, n_embd=1024),  # 355M
    "gpt2-large": GPT2Config(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": GPT2Config(n_layer=48, n_head=25, n_embd=1600),  # 1558M
    "distilgpt2": GPT2Config(n_layer=6, n_head=12, n_embd=768),  # 82M
}
