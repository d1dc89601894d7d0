"""Read a .safetensors file as NumPy arrays that point into the file (memory-mapped, no copy).

The format is small enough to read by hand, which is why it is safe (unlike pickle, loading it
runs no code) and why every error can name its cause:

    [8 bytes: N, little-endian u64] [N bytes: JSON header] [raw tensor bytes]

The header maps each name to {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
offsets counted from the end of the header. float16 and bfloat16 tensors are converted to
float32 (that conversion is the only copy).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from minigpt.errors import MiniGPTError

_MAX_HEADER = 100 * 1024 * 1024  # the format's own limit on the JSON header
_DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,
    "I64": np.int64,
    "I32": np.int32,
    "U8": np.uint8,
    "BOOL": np.bool_,
    "F64": np.float64,
}
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def read_header(path: Path) -> tuple[dict, int]:
    """Return (header dict without __metadata__, byte offset where tensor data starts)."""
    try:
        with open(path, "rb") as f:
            prefix = f.read(8)
            if prefix.startswith(_PICKLE_MAGIC):
                raise MiniGPTError(
                    f"{path}: a pickle (PyTorch .bin) file; minigpt refuses pickle "
                    "because loading it runs code: use model.safetensors"
                )
            if len(prefix) < 8:
                raise MiniGPTError(f"{path}: empty or truncated file; download it again")
            n = int.from_bytes(prefix, "little")
            if n > _MAX_HEADER:
                raise MiniGPTError(f"{path}: not a safetensors file (bad header length)")
            header = json.loads(f.read(n))
    except FileNotFoundError:
        raise MiniGPTError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MiniGPTError(f"{path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise MiniGPTError(f"{path}: not a safetensors file (header is not a JSON object)")
    header.pop("__metadata__", None)
    return header, 8 + n


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file; float32 ones are read-only views into the file."""
    path = Path(path)
    header, start = read_header(path)
    file_size = path.stat().st_size
    # A plain ndarray view of the mapping: np.memmap as a subclass would tag every result.
    data = np.memmap(path, dtype=np.uint8, mode="r").view(np.ndarray) if file_size else None
    arrays = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        if start + end > file_size:
            raise MiniGPTError(
                f"{path}: truncated ({file_size:,} bytes, tensor {name} needs "
                f"{start + end:,}); download it again"
            )
        if info["dtype"] not in _DTYPES:
            raise MiniGPTError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        raw = data[start + begin : start + end].view(_DTYPES[info["dtype"]])
        arrays[name] = _to_float32(raw, info["dtype"]).reshape(info["shape"])
    return arrays


def _to_float32(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":  # bfloat16 is the top half of a float32: shift it back into place
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if dtype in ("F16", "F64"):
        return raw.astype(np.float32)
    return raw  # float32 (and integer buffers) stay zero-copy views of the mapped file
