"""Read a .safetensors file as NumPy arrays that point into the file (memory-mapped, no copy).

The format is small enough to read by hand, which is why it is safe (unlike pickle, loading it
runs no code) and why every error can name its cause:

    [8 bytes: N, little-endian u64] [N bytes: JSON header] [raw tensor bytes]

The header is a JSON object mapping each tensor name to
{"dtype": "F32", "shape": [768], "data_offsets": [begin, end]}, offsets counted in bytes from
the end of the header; an optional "__metadata__" entry holds strings for people, not tensors.
float16, bfloat16 and float64 tensors become float32 (that conversion is the only copy).

The rules, in the order they are checked, each in one small function below:
- the file holds the 8-byte length N; N is at most 100,000,000 and the header fits in the file
  (_header_length);
- the header is UTF-8 JSON, with no NaN and no key repeated in an object (_decode_json), and
  it is an object (_split_header);
- "__metadata__" is absent, null, or an object of strings (_check_metadata);
- every other entry is an object of exactly dtype (a name the format defines), shape (integers
  >= 0) and data_offsets (two integers >= 0, begin <= end) (_tensor_info); end - begin is the
  shape's element count times the dtype's size (_check_byte_count);
- sorted by offset, the tensors tile the data: from its first byte to the end of the file, no
  gap, no overlap (_check_layout);
- minigpt reads the dtype, and NumPy can describe the shape (_check_readable).
A file breaking any of them is refused with one MiniGPTError naming the file and the rule, and
nothing from it is returned.

These are the rules the `safetensors` library enforces (tests/test_safetensors_fuzz.py checks
that both refuse exactly the same files), except where minigpt is stricter on purpose:
- a dtype the format knows but minigpt does not convert (I8, U16, F8_E4M3, ...) is refused;
- a key repeated in one JSON object is refused: the library silently keeps the last copy, so
  two readers of one file could see different tensors;
- a tensor entry with keys besides dtype, shape and data_offsets is refused (the library
  ignores them), as are two spellings its JSON decoder also takes: an entry written as a list
  [dtype, shape, data_offsets] and a dtype written as {"F32": null};
- an empty float16/bfloat16 tensor whose float32 copy NumPy could not describe (a shape like
  [0, 2**62]) is refused, although NumPy can describe the float16 original.
"""

from __future__ import annotations

import json
import math
import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minigpt.errors import MiniGPTError

LENGTH_BYTES = 8  # the u64 in front of the header
MAX_HEADER_BYTES = 100_000_000  # the library's limit: decimal, not 100 MiB
U64_LIMIT = 2**64  # shapes and offsets are unsigned 64-bit integers in the library
NUMPY_MAX_BYTES = 2**63 - 1  # NumPy counts an array's bytes in a signed 64-bit integer
ENTRY_KEYS = ("dtype", "shape", "data_offsets")

# Every dtype the format defines, with its size in bits: the sub-byte ones (F4, F6_*) pack
# several values per byte, so a tensor of them must still fill whole bytes.
FORMAT_DTYPE_BITS = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}

# The dtypes minigpt reads, as the NumPy dtype of the stored (little-endian) bytes. Floats
# become float32; integer and bool tensors come back as they are, because real checkpoints
# store buffers that way (attention masks, position ids) and weights.py drops them.
READABLE = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # NumPy has no bfloat16: read the bits, convert below
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
TO_FLOAT32 = ("F16", "BF16", "F64")

_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
REDOWNLOAD = "download it again"
DAMAGED = "the file is damaged: " + REDOWNLOAD


@dataclass(frozen=True)
class TensorInfo:
    """One header entry, checked: where a tensor's bytes lie and how to read them."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # data_offsets, counted from the end of the header
    end: int


class _Refusal(Exception):
    """One broken rule. Raised without the file name, which load_arrays adds once."""

    def __init__(self, cause: str, fix: str | None = None) -> None:
        if fix is None:  # "not a safetensors file" already says what "damaged" would
            fix = REDOWNLOAD if cause.startswith(("not a safetensors", "truncated")) else DAMAGED
        super().__init__(f"{cause}; {fix}")


# --------------------------------------------------------------------------------- the API


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file; float32 ones are read-only views into the file."""
    path = Path(path)
    data = _map_file(path)
    try:
        tensors, start = _parse(data)
    except _Refusal as e:
        raise MiniGPTError(f"{path}: {e}") from None
    return {t.name: _array(data, start, t) for t in tensors}


def read_header(path: str | Path) -> tuple[dict[str, TensorInfo], int]:
    """The checked header, by tensor name, and the byte offset where tensor data starts."""
    path = Path(path)
    try:
        tensors, start = _parse(_map_file(path))
    except _Refusal as e:
        raise MiniGPTError(f"{path}: {e}") from None
    return {t.name: t for t in tensors}, start


def _map_file(path: Path) -> np.ndarray:
    """The whole file as read-only uint8 memory: header and tensors come from one mapping."""
    try:
        size = path.stat().st_size
        if size < LENGTH_BYTES:  # also: NumPy cannot map an empty file
            raise MiniGPTError(
                f"{path}: truncated ({size} bytes, less than the 8-byte header length); "
                "download it again"
            )
        with open(path, "rb") as f:  # the mapping outlives the open file
            mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return np.frombuffer(mapping, np.uint8)  # read-only, like the mapping
    except FileNotFoundError:
        raise MiniGPTError(f"{path}: no such file") from None
    except OSError as e:  # a directory, no permission, ...
        raise MiniGPTError(f"{path}: cannot read it ({e.strerror or e})") from None


def release_pages(array: np.ndarray) -> None:
    """Let the OS take back the memory holding `array`, a view load_arrays returned, once
    the caller has made a copy of it to use instead; reading the view later still works (the
    pages come back from the file). Arrays that are not views of a mapped file are left alone.

    Why: the pages of a memory-mapped file that a process has read count in its memory use
    (its RSS) until it unmaps the file. forward_fast keeps a transposed copy of the vocabulary
    head, and without this gpt2's 154 MB head would count twice.
    """
    root, view = array, array.base
    while isinstance(view, np.ndarray):  # views of views: walk down to the first array
        root, view = view, view.base
    if not (isinstance(view, memoryview) and isinstance(view.obj, mmap.mmap)):
        return
    if not hasattr(mmap, "MADV_DONTNEED"):  # Windows has no madvise: the pages stay
        return
    offset = array.ctypes.data - root.ctypes.data  # bytes from the start of the mapping
    start = -(-offset // mmap.PAGESIZE) * mmap.PAGESIZE  # the whole pages inside the array
    stop = (offset + array.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if stop > start:
        view.obj.madvise(mmap.MADV_DONTNEED, start, stop - start)


def _parse(data: np.ndarray) -> tuple[list[TensorInfo], int]:
    """Check every rule of the format; return the tensors and where their bytes start."""
    n = _header_length(data)
    header = _decode_json(bytes(data[LENGTH_BYTES : LENGTH_BYTES + n]))
    entries = _split_header(header)
    tensors = [_tensor_info(name, entry) for name, entry in entries.items()]
    _check_layout(tensors, data_bytes=len(data) - LENGTH_BYTES - n)
    for t in tensors:
        _check_readable(t)
    return tensors, LENGTH_BYTES + n


# ------------------------------------------------------------------ the length and the JSON


def _header_length(data: np.ndarray) -> int:
    """N from the first 8 bytes; it must leave room for a JSON object inside the file."""
    n = int.from_bytes(bytes(data[:LENGTH_BYTES]), "little")
    if n > MAX_HEADER_BYTES and bytes(data[:LENGTH_BYTES]).startswith(_PICKLE_MAGIC):
        # A renamed PyTorch .bin: its first bytes, read as a length, give an absurd number.
        raise _Refusal(
            "a pickle (PyTorch .bin) file; minigpt refuses pickle because loading it runs code",
            "use model.safetensors",
        )
    if n > MAX_HEADER_BYTES:
        raise _Refusal(
            f"not a safetensors file: its first 8 bytes give a header length of {n:,}, "
            f"over the format's limit of {MAX_HEADER_BYTES:,}"
        )
    if LENGTH_BYTES + n > len(data):
        raise _Refusal(
            f"truncated: the header should be {n:,} bytes but only "
            f"{len(data) - LENGTH_BYTES:,} follow its length"
        )
    if n < 2:  # "{}" is the shortest JSON object
        raise _Refusal(f"not a safetensors file: a header length of {n} cannot hold a JSON object")
    return n


def _decode_json(raw: bytes):
    """The header's JSON, read the way the library reads it (which is stricter than Python)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Refusal(
            f"not a safetensors file: its header is not UTF-8 (at byte {e.start})"
        ) from None
    try:
        return json.loads(
            text,
            object_pairs_hook=_object_without_repeats,
            parse_constant=_refuse_constant,
            parse_int=_json_integer,
        )
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise _Refusal(f"not a safetensors file: its header is not JSON ({e})") from None


def _object_without_repeats(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object; a key given twice is refused (json.loads would keep the last silently)."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise _Refusal(f"the header repeats the key {_show(key)} in one JSON object")
        seen.add(key)
    return dict(pairs)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # Python's json accepts NaN and Infinity; JSON does not


def _json_integer(digits: str) -> int | float:
    # The library's decoder reads "-0" as the float -0.0, so it is no integer there either.
    return -0.0 if digits == "-0" else int(digits)


# ------------------------------------------------------------------------- the header object


def _split_header(header) -> dict:
    """The tensor entries, after checking the optional __metadata__ entry."""
    if not isinstance(header, dict):
        raise _Refusal(f"not a safetensors file: its header is {_kind(header)}, not an object")
    _check_metadata(header.get("__metadata__"))
    return {name: entry for name, entry in header.items() if name != "__metadata__"}


def _check_metadata(metadata) -> None:
    """__metadata__ is absent, null, or an object of strings (minigpt reads none of it)."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise _Refusal(f"__metadata__ must be an object of strings, got {_kind(metadata)}")
    for key, value in metadata.items():
        _check_text(key, "a __metadata__ key")
        if not isinstance(value, str):
            raise _Refusal(f"__metadata__[{_show(key)}] must be a string, got {_kind(value)}")
        _check_text(value, f"__metadata__[{_show(key)}]")


def _check_text(text: str, what: str) -> None:
    """JSON may spell half of a UTF-16 surrogate pair (\\ud800); the library refuses that."""
    if any("\ud800" <= c <= "\udfff" for c in text):
        raise _Refusal(f"{what} holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)")


# ------------------------------------------------------------------------ one tensor's entry


def _tensor_info(name: str, entry) -> TensorInfo:
    """A tensor's entry: exactly dtype, shape and data_offsets, each of the right type."""
    _check_text(name, f"the tensor name {_show(name)}")
    if not isinstance(entry, dict):
        raise _Refusal(
            f"tensor {_show(name)}: its entry is {_kind(entry)}, not an object with "
            "dtype, shape and data_offsets"
        )
    for key in ENTRY_KEYS:
        if key not in entry:
            raise _Refusal(f"tensor {_show(name)} has no {key}")
    for key in entry:
        if key not in ENTRY_KEYS:
            raise _Refusal(
                f"tensor {_show(name)} has an unknown key {_show(key)} "
                "(an entry holds only dtype, shape and data_offsets)"
            )
    dtype = _dtype(name, entry["dtype"])
    shape = _shape(name, entry["shape"])
    begin, end = _data_offsets(name, entry["data_offsets"])
    _check_byte_count(name, dtype, shape, begin, end)
    return TensorInfo(name, dtype, shape, begin, end)


def _dtype(name: str, dtype) -> str:
    if not isinstance(dtype, str) or dtype not in FORMAT_DTYPE_BITS:
        raise _Refusal(f"tensor {_show(name)}: dtype {_json(dtype)} is not a safetensors dtype")
    return dtype


def _is_u64(value) -> bool:
    """An unsigned 64-bit integer. bool is a subclass of int in Python, but not in JSON."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < U64_LIMIT


def _shape(name: str, shape) -> tuple[int, ...]:
    """A list of sizes >= 0; [] is a scalar (one element), a 0 anywhere an empty tensor."""
    if not isinstance(shape, list) or not all(_is_u64(d) for d in shape):
        raise _Refusal(
            f"tensor {_show(name)}: shape must be a list of integers >= 0, got {_json(shape)}"
        )
    return tuple(shape)


def _data_offsets(name: str, offsets) -> tuple[int, int]:
    """[begin, end]: byte positions, so two integers >= 0 and never running backwards."""
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_is_u64, offsets)):
        raise _Refusal(
            f"tensor {_show(name)}: data_offsets must be two integers >= 0, got {_json(offsets)}"
        )
    begin, end = offsets
    if end < begin:
        raise _Refusal(f"tensor {_show(name)}: data_offsets [{begin}, {end}] run backwards")
    return begin, end


def _check_byte_count(name: str, dtype: str, shape: tuple[int, ...], begin: int, end: int):
    """The bytes between the offsets must be exactly what the shape and dtype need."""
    count = math.prod(shape)
    bits = count * FORMAT_DTYPE_BITS[dtype]
    if bits % 8:
        raise _Refusal(
            f"tensor {_show(name)}: {count} values of {dtype} do not fill a whole number of bytes"
        )
    if end - begin != bits // 8:
        raise _Refusal(
            f"tensor {_show(name)}: shape {list(shape)} of {dtype} needs {_bytes(bits // 8)} "
            f"but data_offsets [{begin}, {end}] hold {_bytes(end - begin)}"
        )


# ----------------------------------------------------------------------- the tensors together


def _check_layout(tensors: list[TensorInfo], data_bytes: int) -> None:
    """In offset order the tensors tile the data exactly: from byte 0, no gap, no overlap,
    and nothing left over after the last one (the header is the only index to the bytes)."""
    covered, previous = 0, None
    for t in sorted(tensors, key=lambda t: (t.begin, t.end)):
        if t.begin > covered:
            raise _Refusal(
                f"bytes {covered:,} to {t.begin:,} belong to no tensor "
                f"(tensor {_show(t.name)} starts at {t.begin:,})"
            )
        if t.begin < covered:
            raise _Refusal(f"tensors {_show(previous.name)} and {_show(t.name)} overlap")
        covered, previous = t.end, t
    if covered > data_bytes:
        raise _Refusal(
            f"truncated: the header describes {covered:,} bytes of tensor data "
            f"but the file holds {data_bytes:,}"
        )
    if covered < data_bytes:
        raise _Refusal(
            f"the file goes on for {_bytes(data_bytes - covered)} after the last tensor's data"
        )


def _check_readable(t: TensorInfo) -> None:
    """Valid safetensors, but can minigpt give it to NumPy? (Both are minigpt's own rules.)"""
    if t.dtype not in READABLE:
        raise _Refusal(
            f"tensor {_show(t.name)} is {t.dtype}, valid safetensors but not a dtype minigpt "
            f"reads ({', '.join(READABLE)})",
            "convert the checkpoint to float32, float16 or bfloat16",
        )
    # Only an empty tensor can get here with a huge shape (a real one must fit in the file):
    # NumPy multiplies the nonzero sizes, in bytes, and refuses past 2**63 - 1.
    itemsize = max(READABLE[t.dtype].itemsize, 4 if t.dtype in TO_FLOAT32 else 0)
    if itemsize * math.prod(d for d in t.shape if d) > NUMPY_MAX_BYTES:
        raise _Refusal(
            f"tensor {_show(t.name)}: shape {list(t.shape)} is too large for NumPy in "
            f"{itemsize}-byte values (over 2**63 - 1 bytes, though it holds none)"
        )


# ---------------------------------------------------------------------------- the arrays


def _array(data: np.ndarray, start: int, t: TensorInfo) -> np.ndarray:
    raw = data[start + t.begin : start + t.end].view(READABLE[t.dtype]).reshape(t.shape)
    return _to_float32(raw, t.dtype)


def _to_float32(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":  # bfloat16 is the top half of a float32: shift it back into place
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if dtype in ("F16", "F64"):
        return raw.astype(np.float32)
    return raw  # float32 (and integer buffers) stay zero-copy views of the mapped file


# ---------------------------------------------------------------------- showing bad values


def _show(text: str, limit: int = 60) -> str:
    """A name as it appears in a one-line message: quoted, escaped, and not too long."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _json(value, limit: int = 60) -> str:
    """A header value as JSON spells it (true, not True), shortened for a one-line message."""
    try:
        shown = json.dumps(value, ensure_ascii=True)
    except ValueError:  # a float NaN cannot get here (refused), but never fail on showing
        shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _bytes(n: int) -> str:
    return "1 byte" if n == 1 else f"{n:,} bytes"


def _kind(value) -> str:
    """What a JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {_json(value)}"
    if isinstance(value, (int, float)):
        return f"the number {_json(value)}"
    if isinstance(value, str):
        return f"the string {_json(value)}"
    if isinstance(value, list):
        return f"the list {_json(value)}"
    return f"the object {_json(value)}"
