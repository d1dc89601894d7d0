"""Differential fuzz: minigpt's hand-written reader against the `safetensors` library.

Hypothesis builds a small valid file (several tensors of several dtypes, scalars and empty
tensors among them), then mutates it: edits to the header's JSON (keys deleted, added,
repeated or retyped; offsets, shapes and dtypes changed), raw byte edits (flips, insertions,
truncation, appended bytes, a changed length prefix) and edits that keep the file valid
(reordered keys, reshapes, padding, metadata, flipped data bytes). For every mutant:

- if the library refuses the file, minigpt raises MiniGPTError (and nothing else);
- if the library reads it, minigpt returns the same arrays bit for bit (after the same
  float32 conversion), unless the file is one minigpt refuses by design, which
  `refused_by_design` names: a dtype minigpt does not read, a repeated JSON key, a tensor
  entry with unknown keys or in a spelling other than an object (see the docstring of
  minigpt/safetensors_file.py). Then minigpt must raise MiniGPTError.

The library's `safetensors.numpy.load_file` is the reference. It cannot hand bfloat16 (or
float8) tensors to NumPy at all, so for files holding them we ask the library's `deserialize`
for the raw bytes and build the arrays the way its numpy loader does.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import SafetensorError, deserialize
from safetensors.numpy import load_file

from minigpt.errors import MiniGPTError
from minigpt.safetensors_file import load_arrays

MUTANTS = 3000
READ_BY_MINIGPT = ["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL"]
VALID_ONLY_FOR_THE_LIBRARY = ["I8", "I16", "U16", "U32", "U64", "C64", "F8_E4M3", "F8_E5M2"]
BYTES_PER_VALUE = {
    **{"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "U8": 1, "BOOL": 1},
    **{"I8": 1, "I16": 2, "U16": 2, "U32": 4, "U64": 8, "C64": 8, "F8_E4M3": 1, "F8_E5M2": 1},
}
SAME_WIDTH = [["F32", "I32", "U32"], ["F16", "BF16", "I16", "U16"], ["F64", "I64", "U64", "C64"]]
SAME_WIDTH += [["U8", "BOOL", "I8", "F8_E4M3", "F8_E5M2"]]
NUMPY_DTYPE = {  # what the library's numpy loader makes of each dtype
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "U64": "<u8", "I32": "<i4",
    "U32": "<u4", "I16": "<i2", "U16": "<u2", "I8": "i1", "U8": "u1", "BOOL": "?",
    "C64": "<c8", "BF16": "<u2",  # NumPy has no bfloat16: its bits, as minigpt reads them
}  # fmt: skip
NAMES = ["wte.weight", "h.0.ln_1.bias", "a", "", "é", "h.10.attn.bias", "x y", "\\", "\u2603"]


# ------------------------------------------------------------------ writing JSON by hand


class Obj(list):
    """A JSON object as a list of (key, value) pairs, so a key can appear twice."""


class Raw(str):
    """JSON text written out as it is: -0, 1e1, NaN, an escaped key..."""


def dump(value, pretty: bool = False) -> str:
    comma, colon = (",\n  ", ": ") if pretty else (",", ":")
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Obj):
        items = (dump(k, pretty) + colon + dump(v, pretty) for k, v in value)
        return "{" + comma.join(items) + "}"
    if isinstance(value, list):
        return "[" + comma.join(dump(v, pretty) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def entry(dtype, shape, begin, end) -> Obj:
    return Obj([("dtype", dtype), ("shape", shape), ("data_offsets", [begin, end])])


def u64(n: int) -> bytes:
    return (n % 2**64).to_bytes(8, "little")


# ---------------------------------------------------------------------------- valid files


class File:
    """A safetensors file under construction: the header (pairs, or Raw JSON text when a
    mutation made it something other than an object), its padding, and the tensor bytes."""

    def __init__(self, header: Obj, data: bytes, lead: str, trail: str, pretty: bool):
        self.header, self.data = header, data
        self.lead, self.trail, self.pretty = lead, trail, pretty

    def blob(self) -> bytes:
        text = (self.lead + dump(self.header, self.pretty) + self.trail).encode()
        return u64(len(text)) + text + self.data

    def entries(self) -> list[tuple[str, Obj]]:
        """The (name, entry) pairs that are still objects, for mutations to pick from."""
        if not isinstance(self.header, Obj):
            return []
        return [(k, v) for k, v in self.header if k != "__metadata__" and isinstance(v, Obj)]

    def position(self, name: str) -> int:
        return next(i for i, (k, _) in enumerate(self.header) if k == name)


shapes = st.lists(st.integers(0, 4), max_size=3)  # [] is a scalar; a 0 makes it empty
dtypes = st.sampled_from(READ_BY_MINIGPT)  # the others come in through edits
metadata = st.sampled_from(
    [None, Obj(), Obj([("format", "pt")]), Obj([("a", "1"), ("b", "")]), Obj([("", "\u2603")])]
)


@st.composite
def valid_files(draw) -> File:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    specs = [(name, draw(dtypes), draw(shapes)) for name in names]
    # The bytes in a random order, not the header's: a reader must sort by offset.
    offsets, at = {}, 0
    for i in draw(st.permutations(range(len(specs)))):
        name, dtype, shape = specs[i]
        size = math.prod(shape) * BYTES_PER_VALUE[dtype]
        offsets[name] = (at, at + size)
        at += size
    header = Obj((name, entry(dtype, shape, *offsets[name])) for name, dtype, shape in specs)
    if draw(st.booleans()):
        header.insert(draw(st.integers(0, len(header))), ("__metadata__", draw(metadata)))
    data = draw(st.binary(min_size=at, max_size=at))
    pretty = draw(st.booleans())
    lead, trail = "", ""
    pad = draw(st.sampled_from(["none", "eight", "spaces", "whitespace"]))
    if pad == "eight":  # what the library's own writer does: spaces up to a multiple of 8
        trail = " " * (-len(dump(header, pretty).encode()) % 8)
    elif pad == "spaces":
        trail = " " * draw(st.integers(1, 9))
    elif pad == "whitespace":  # JSON's four whitespace characters, before and after
        lead = draw(st.text(" \t\n\r", max_size=3))
        trail = draw(st.text(" \t\n\r", max_size=3))
    return File(header, data, lead, trail, pretty)


# ---------------------------------------------------------------------- mutating the JSON

ENTRY_FIELDS = ["dtype", "shape", "data_offsets"]
BAD_VALUES = [  # for dtype, shape or data_offsets
    None, True, "x", 1.5, -1, 8, 2**64, [], [1, 2, 3], Obj(), Raw("NaN"), Raw("1e400"),
]  # fmt: skip
# Sizes either side of NumPy's limit of 2**63 - 1 bytes, for items of 8, 4, 2 and 1 bytes.
HUGE = [(2**63 - 1) // size + d for size in (8, 4, 2, 1) for d in (0, 1)] + [2**64 - 1]
ODD_DTYPES = ["f32", "FP32", "F8", "", "F32 ", "BF16\u0000", "F4", "F6_E2M3", "F8_E8M0"]
ODD_DTYPES += [Obj([("F32", None)]), Obj([("F16", None)]), Obj([("F16", [])]), 32, None]
BAD_METADATA = [
    Obj([("k", 1)]), Obj([("k", None)]), None, Obj([("k", "v")]), [], "x", 0,
    Obj([("k", "v"), ("k", "w")]), Obj([("k", Raw('"\\udc00"'))]),
]  # fmt: skip
JSON_EDITS = [  # the first ones are drawn most often
    "retype_number", "bad_value", "reshape", "move_tensor", "empty_tensor", "swap_storage",
    "huge_empty_shape", "same_width_dtype", "metadata", "reorder", "escape_name",
    "delete_key", "extra_key", "repeat_key", "repeat_tensor", "offsets", "swap_offsets",
    "shape", "dtype", "entry_as_list", "not_an_object", "bad_name", "dtype_as_object",
]  # fmt: skip


def get_field(e: Obj, key: str):
    return next((v for k, v in e if k == key), None)


def offsets_list(e: Obj) -> list:
    """An entry's data_offsets if they are still a list (an edit may have made them 1.5)."""
    offsets = get_field(e, "data_offsets")
    return offsets if isinstance(offsets, list) else []


def set_field(e: Obj, key: str, value) -> None:
    for i, (k, _) in enumerate(e):
        if k == key:
            e[i] = (k, value)
            return
    e.append((key, value))


def same_count_shapes(shape) -> list:
    """Other shapes with as many elements (for an empty tensor: other empty shapes)."""
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        return [shape]
    count = math.prod(shape)
    if count == 0:
        return [[0], [0, 5], [3, 0, 2], [0, 0]]
    split = next((d for d in range(2, count) if count % d == 0), 1)
    return [[count], [1, count], [count, 1], [split, count // split], [1] * (count == 1)]


def mutate_json(draw, f: File) -> str:
    """One edit to the header's JSON; returns its name, for the statistics."""
    kind = draw(st.sampled_from(JSON_EDITS))
    if not isinstance(f.header, Obj):  # no longer an object: nothing left to edit
        return "none"
    if not f.entries() and kind not in ("metadata", "not_an_object"):
        kind = "empty_tensor"
    if kind == "empty_tensor":  # valid: an empty tensor sits at any tensor boundary
        ends = {0, len(f.data)}
        ends |= {v for _, e in f.entries() for v in offsets_list(e)}
        at = draw(st.sampled_from(sorted(x for x in ends if type(x) is int)))
        shape = draw(st.sampled_from([[0], [2, 0], [0, 3, 1]]))
        new = ("empty" + str(len(f.header)), entry(draw(dtypes), shape, at, at))
        f.header.insert(draw(st.integers(0, len(f.header))), new)
        return kind
    if kind == "metadata":
        f.header.insert(
            draw(st.integers(0, len(f.header))),
            ("__metadata__", draw(st.sampled_from(BAD_METADATA))),
        )
        return kind
    if kind == "not_an_object":
        f.header = Raw(draw(st.sampled_from(["[]", "null", '"x"', "1", "[{}]", "true"])))
        return kind
    name, e = draw(st.sampled_from(f.entries()))
    if kind == "reshape":  # valid: the same number of elements
        set_field(e, "shape", draw(st.sampled_from(same_count_shapes(get_field(e, "shape")))))
    elif kind == "same_width_dtype":  # valid, unless minigpt does not read the new dtype
        group = next((g for g in SAME_WIDTH if get_field(e, "dtype") in g), SAME_WIDTH[0])
        set_field(e, "dtype", draw(st.sampled_from(group)))
    elif kind == "reorder":  # valid: a JSON object has no order
        f.header[:] = draw(st.permutations(list(f.header)))
        e[:] = draw(st.permutations(list(e)))
    elif kind == "escape_name":  # valid: \u escapes spell the same name
        escaped = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else c for c in name)
        f.header[f.position(name)] = (Raw('"' + escaped + '"'), e)
    elif kind == "delete_key" and e:
        del e[draw(st.integers(0, len(e) - 1))]
    elif kind == "extra_key":  # the library ignores it; minigpt refuses it by design
        e.insert(draw(st.integers(0, len(e))), (draw(st.sampled_from(["x", "offsets"])), 1))
    elif kind == "repeat_key" and e:
        e.insert(draw(st.integers(0, len(e))), draw(st.sampled_from(list(e))))
    elif kind == "repeat_tensor":  # the same name twice: a copy, or an empty tensor
        copy = Obj(e) if draw(st.booleans()) else entry("F32", [0], 0, 0)
        f.header.insert(draw(st.integers(0, len(f.header))), (name, copy))
    elif kind == "bad_value":
        set_field(e, draw(st.sampled_from(ENTRY_FIELDS)), draw(st.sampled_from(BAD_VALUES)))
    elif kind in ("offsets", "swap_offsets"):
        offsets = get_field(e, "data_offsets")
        if isinstance(offsets, list) and len(offsets) == 2:
            set_field(e, "data_offsets", mutate_offsets(draw, kind, list(offsets)))
    elif kind == "shape":
        shape = get_field(e, "shape")
        if isinstance(shape, list):
            set_field(e, "shape", mutate_shape(draw, list(shape)))
    elif kind == "dtype":
        known = READ_BY_MINIGPT + VALID_ONLY_FOR_THE_LIBRARY
        set_field(e, "dtype", draw(st.sampled_from(ODD_DTYPES + known)))
    elif kind == "dtype_as_object":  # the library's decoder takes {"F32": null} for "F32"
        set_field(e, "dtype", Obj([(get_field(e, "dtype"), None)]))
    elif kind == "huge_empty_shape":  # still no elements, but can NumPy describe the shape?
        shape = [0, draw(st.sampled_from(HUGE))] + draw(st.sampled_from([[], [1], [3]]))
        set_field(e, "shape", draw(st.permutations(shape)))
        set_field(e, "data_offsets", [0, 0])
        set_field(e, "dtype", draw(st.sampled_from(["F16", "BF16", "F32", "U8", "F64"])))
        f.data, f.header[:] = b"", [(name, e)]  # the only tensor, so the offsets fit
    elif kind == "retype_number":  # the same value spelled as another JSON type
        field = draw(st.sampled_from(["shape", "data_offsets"]))
        numbers = get_field(e, field)
        if isinstance(numbers, list) and numbers and type(numbers[0]) is int:
            i = draw(st.integers(0, len(numbers) - 1))
            numbers[i] = draw(st.sampled_from(same_value_spellings(numbers[i])))
    elif kind == "move_tensor":  # the last tensor's bytes moved: a gap or an overlap
        last = [t for _, t in f.entries() if offsets_list(t)[-1:] == [len(f.data)]]
        e = last[0] if last else e
        offsets = get_field(e, "data_offsets")
        if isinstance(offsets, list) and offsets and all(type(x) is int for x in offsets):
            d = draw(st.sampled_from([-1, 1, -2, 2, -4, 4, -8, 8]))
            set_field(e, "data_offsets", [x + d for x in offsets])
            if offsets[-1] == len(f.data):  # the data still ends where the tensor does
                f.data = f.data + bytes(d) if d >= 0 else f.data[:d]
    elif kind == "swap_storage":  # valid when both are the same size: they trade bytes
        _, other = draw(st.sampled_from(f.entries()))
        a, b = get_field(e, "data_offsets"), get_field(other, "data_offsets")
        set_field(e, "data_offsets", b)
        set_field(other, "data_offsets", a)
    elif kind == "entry_as_list":  # the library's decoder also takes a struct as a list
        values = [v for _, v in e]
        f.header[f.position(name)] = (name, values if draw(st.booleans()) else values[:2])
    elif kind == "bad_name":  # unpaired surrogates, a bad escape
        bad = draw(st.sampled_from(['"\\ud800"', '"a\\udfff"', '"\\x"', '"\\ud83d\\ude00"']))
        f.header[f.position(name)] = (Raw(bad), e)
    return kind


def same_value_spellings(n: int) -> list:
    """n as JSON types other than an integer (true is 1 to Python, not to JSON)."""
    spellings = [Raw(f"{n}.0"), Raw(f"{n}e0"), Raw(f"{n}E+0"), str(n)]
    if n == 0:
        spellings = [Raw("-0"), False, Raw("-0.0"), *spellings]
    if n == 1:
        spellings = [True, *spellings]
    return spellings


def mutate_offsets(draw, kind: str, offsets: list):
    if kind == "swap_offsets":
        return offsets[::-1]
    i = draw(st.integers(0, 1))
    if type(offsets[i]) is int:
        nudged = st.integers(-9, 9).map(lambda d: offsets[i] + d)
        odd = st.sampled_from([-1, -8, 2**64 - 1, 2**64, Raw("-0"), Raw("8.0"), True])
        offsets[i] = draw(st.one_of(nudged, odd))
    if draw(st.integers(0, 4)) == 0:  # one offset, or three
        offsets = offsets[:1] if draw(st.booleans()) else offsets + offsets[-1:]
    return offsets


def mutate_shape(draw, shape: list):
    edit = draw(st.sampled_from(["add", "drop", "nudge", "bad"]))
    if edit == "add":
        shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(0, 3)))
    elif edit == "drop" and shape:
        del shape[draw(st.integers(0, len(shape) - 1))]
    elif edit == "nudge" and shape and type(shape[0]) is int:
        shape[0] += draw(st.sampled_from([-1, 1]))
    elif edit == "bad":
        shape.append(draw(st.sampled_from([-1, 1.0, True, None, "2", 2**64, Raw("-0")])))
    return shape


# --------------------------------------------------------------------- mutating the bytes

BYTE_EDITS = [
    "flip_header", "insert_header", "delete_header", "truncate", "append", "length",
    "pad_header", "flip_data", "nul_padding",
]  # fmt: skip
INTERESTING_BYTES = list(b'"{}[],:-.0123456789eE \\\x00\xff\xc3\x80')


def mutate_bytes(draw, blob: bytes) -> tuple[str, bytes]:
    """One edit to the file's bytes: in the header, its length prefix, or the tensor data."""
    n = int.from_bytes(blob[:8], "little")
    end = min(8 + n, len(blob))  # where the header ends (as far as the file goes)
    kind = draw(st.sampled_from(BYTE_EDITS))
    byte = bytes([draw(st.one_of(st.sampled_from(INTERESTING_BYTES), st.integers(0, 255)))])
    if kind.endswith("_header") and kind != "pad_header" and end > 8:
        i = draw(st.integers(8, end - 1))
        fix_length = draw(st.booleans())  # keep the length prefix true, or not
        if kind == "flip_header":
            blob = blob[:i] + byte + blob[i + 1 :]
        elif kind == "insert_header":
            blob = u64(n + fix_length) + blob[8:i] + byte + blob[i:]
        else:
            blob = u64(n - fix_length) + blob[8:i] + blob[i + 1 :]
    elif kind == "truncate" and blob:
        blob = blob[: draw(st.integers(0, len(blob) - 1))]
    elif kind == "append":
        blob += draw(st.binary(min_size=1, max_size=9))
    elif kind == "length":
        nudged = st.integers(-9, 9).map(lambda d: n + d)
        odd = st.sampled_from([0, 1, 2, 100_000_000, 100_000_001, 2**63, 2**64 - 1, len(blob)])
        blob = u64(draw(st.one_of(nudged, odd))) + blob[8:]
    elif kind == "pad_header":  # valid: whitespace after the JSON is part of the header
        pad = draw(st.text(" \t\n\r", min_size=1, max_size=8)).encode()
        blob = u64(n + len(pad)) + blob[8:end] + pad + blob[end:]
    elif kind == "flip_data" and len(blob) > end:  # valid: tensor bytes may be anything
        i = draw(st.integers(end, len(blob) - 1))
        blob = blob[:i] + byte + blob[i + 1 :]
    elif kind == "nul_padding":  # C-style padding is not JSON whitespace
        blob = u64(n + 1) + blob[8:end] + b"\x00" + blob[end:]
    return kind, blob


@st.composite
def mutants(draw) -> tuple[list[str], bytes]:
    f = draw(valid_files())
    # Mostly one edit, so that no second edit hides what the first one broke. Some mutants
    # get no edit, or only edits that keep them valid: they must come back bit for bit.
    # (Hypothesis draws the first choice of a sampled_from most often.)
    kinds = [mutate_json(draw, f) for _ in range(draw(st.sampled_from([1, 1, 1, 1, 2, 3, 0])))]
    blob = f.blob()
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        kind, blob = mutate_bytes(draw, blob)
        kinds.append(kind)
    return kinds or ["none"], blob


# ------------------------------------------------------------------------- the reference


class Refused(Exception):
    """The library (or NumPy, handed the library's bytes) would not read the file."""


def library_arrays(path) -> dict[str, tuple[np.ndarray, bool]]:
    """What the safetensors library reads: {name: (array, is it bfloat16 bits?)}."""
    try:
        return {name: (a, False) for name, a in load_file(path).items()}
    except SafetensorError as e:
        raise Refused(f"safetensors: {e}") from None
    except (ValueError, OverflowError) as e:  # the header is fine, NumPy refuses a shape
        raise Refused(f"numpy: {e}") from None
    except (TypeError, AttributeError):  # NumPy has no bfloat16/float8: go by the raw bytes
        return raw_arrays(path)


def raw_arrays(path) -> dict[str, tuple[np.ndarray, bool]]:
    """The library's deserialize (raw bytes), made into arrays as its numpy loader does."""
    with open(path, "rb") as f:
        views = deserialize(f.read())
    arrays = {}
    for name, view in views:
        dtype = NUMPY_DTYPE.get(view["dtype"], "u1")  # float8...: minigpt refuses them anyway
        try:
            arrays[name] = np.frombuffer(view["data"], dtype).reshape(view["shape"])
        except (ValueError, OverflowError) as e:
            raise Refused(f"numpy: {e}") from None
        arrays[name] = (arrays[name], view["dtype"] == "BF16")
    return arrays


def as_float32(a: np.ndarray, bf16: bool) -> np.ndarray:
    """minigpt's conversion: bfloat16 is the top half of a float32; F16/F64 are cast."""
    if bf16:
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32) if a.dtype in (np.float16, np.float64) else a


# ------------------------------------------------------------ what minigpt refuses by design


class Pairs(list):
    """A JSON object read as its list of pairs, repeats kept."""


def refused_by_design(blob: bytes) -> str | None:
    """Why minigpt refuses a file the library reads (minigpt/safetensors_file.py's list)."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n].decode(), object_pairs_hook=Pairs)
    objects = [header]
    while objects:  # every object anywhere in the header
        obj = objects.pop()
        keys = [k for k, _ in obj]
        if len(set(keys)) < len(keys):
            return "repeated key"
        objects += [v for _, v in obj if isinstance(v, Pairs)]
        objects += [x for _, v in obj if isinstance(v, list) for x in v if isinstance(x, Pairs)]
    for name, e in header:
        if name == "__metadata__":
            continue
        if not isinstance(e, Pairs):
            return "entry as a list"
        e = dict(e)
        if set(e) != set(ENTRY_FIELDS):
            return "unknown key in an entry"
        if not isinstance(e["dtype"], str):
            return "dtype as an object"
        if e["dtype"] not in READ_BY_MINIGPT:
            return "dtype minigpt does not read"
        nonzero = math.prod(d for d in e["shape"] if d)
        if e["dtype"] in ("F16", "BF16") and 4 * nonzero > 2**63 - 1:
            return "float32 copy too large for NumPy"
    return None


# ------------------------------------------------------------------------------- the test


def rule_of(message: str) -> str:
    """A refusal's message without its particulars (names, numbers, values): its rule."""
    message = message.split(";")[0]
    return re.sub(r"'[^']*'|\"[^\"]*\"|\[.*?\]+|\(.*?\)|\b\d[\d,.]*\b", "_", message)


def test_minigpt_reads_exactly_what_the_library_reads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    counts, edits, rules, started = Counter(), Counter(), Counter(), time.perf_counter()

    @settings(
        max_examples=MUTANTS,
        deadline=None,
        derandomize=True,  # the same mutants on every run: CI stays deterministic
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutants())
    def check(mutant):
        kinds, blob = mutant
        # A new file each time: rewriting one file in place costs ext4 a flush (3 ms).
        path = folder / f"{sum(counts.values())}.safetensors"
        path.write_bytes(blob)
        edits.update(kinds)
        try:
            expected, why = library_arrays(path), None
        except Refused as e:
            expected, why = None, str(e)
        if expected is not None:
            why = refused_by_design(blob)
        try:
            with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf
                ours, error = load_arrays(path), None
        except MiniGPTError as e:
            ours, error = None, str(e)
        report = f"edits {kinds}, file {blob!r:.600}; so far {dict(counts)}"
        if why is not None:
            assert error is not None, f"minigpt read a file it should refuse ({why}); {report}"
            assert "\n" not in error and error.startswith(f"{path}: "), error
            counts["refused by both" if expected is None else f"refused by design: {why}"] += 1
            rules[rule_of(error.removeprefix(f"{path}: "))] += 1
            return
        assert error is None, f"minigpt refused a file the library reads: {error}; {report}"
        assert ours.keys() == expected.keys(), report
        for name, (array, bf16) in expected.items():
            with np.errstate(over="ignore"):
                want, got = as_float32(array, bf16), ours[name]
            assert (got.dtype, got.shape) == (want.dtype, want.shape), f"{name}: {report}"
            assert got.tobytes() == want.tobytes(), f"{name}: different bytes; {report}"
            if got.dtype == np.float32 and not bf16 and array.dtype == np.float32:
                assert not got.flags.writeable and not got.flags.owndata  # still the mapping
        counts["accepted"] += 1

    check()
    seconds = time.perf_counter() - started
    total = sum(counts.values())
    summary = (
        f"{total} mutants in {seconds:.1f} s: {dict(counts.most_common())}; "
        f"edits {dict(edits.most_common())}; minigpt's refusals {dict(rules.most_common())}"
    )
    print(summary)
    assert total == MUTANTS, summary
    # The fuzz is only worth something if both outcomes are common.
    assert counts["accepted"] >= total // 5, summary
    assert counts["refused by both"] >= total // 5, summary
