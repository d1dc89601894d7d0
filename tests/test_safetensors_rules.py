"""One test per rule of the safetensors format: minigpt refuses the file with one line that
names the file and the cause, and the `safetensors` library refuses it too (or, for the four
places where minigpt is stricter on purpose, the library reads it and minigpt does not; see
minigpt/safetensors_file.py). The differential fuzz (test_safetensors_fuzz.py) covers the
combinations; these tests pin each message.
"""

from __future__ import annotations

import json
import mmap
from pathlib import Path

import numpy as np
import pytest
from cli_runner import assert_one_line_error, run_minigpt
from resident import resident_bytes
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from minigpt.config import GPT2Config
from minigpt.errors import MiniGPTError
from minigpt.safetensors_file import load_arrays, read_header, release_pages

F32_PAIR = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}  # 8 bytes of data


def write(path: Path, header, data: bytes = b"", length: int | None = None) -> Path:
    """A file from a header (a dict, or JSON text as str/bytes) and the bytes after it."""
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode()
    length = len(header) if length is None else length
    path.write_bytes(length.to_bytes(8, "little") + header + data)
    return path


@pytest.fixture()
def f(tmp_path) -> Path:
    return tmp_path / "model.safetensors"


def refused(path: Path, *causes: str) -> str:
    """minigpt's one-line MiniGPTError: it names the file, and each cause."""
    with pytest.raises(MiniGPTError) as info:
        load_arrays(path)
    message = str(info.value)
    print(message)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    for cause in causes:
        assert cause in message, message
    return message


def library_refuses(path: Path) -> None:
    # ValueError: the header is valid but NumPy cannot build the array it describes.
    with pytest.raises((SafetensorError, ValueError)):
        load_file(path)


def both_refuse(path: Path, *causes: str) -> str:
    library_refuses(path)
    return refused(path, *causes)


def library_accepts_header(path: Path) -> None:
    """The library reads the header (it may still fail to give NumPy a dtype like float8)."""
    with safe_open(path, framework="numpy") as opened:
        opened.keys()


def only_minigpt_refuses(path: Path, *causes: str) -> str:
    library_accepts_header(path)
    return refused(path, *causes)


# ------------------------------------------------------------------- the length prefix


def test_file_shorter_than_the_length_prefix(f):
    f.write_bytes(b"\x01\x02\x03\x04\x05")
    both_refuse(f, "truncated", "5 bytes", "8-byte header length")
    f.write_bytes(b"")
    both_refuse(f, "truncated", "0 bytes")


def test_header_length_over_the_formats_limit(f):
    """The limit is 100,000,000 bytes (decimal, not 100 MiB): a sparse file just longer than
    that header shows it is the limit that refuses it, not the end of the file."""
    n = 100_000_001
    with open(f, "wb") as out:
        out.write(n.to_bytes(8, "little"))
        out.truncate(8 + n)  # sparse: no 100 MB written to disk
    both_refuse(f, "header length of 100,000,001", "limit of 100,000,000")


def test_header_length_past_the_end_of_the_file(f):
    write(f, "{}", length=100)
    both_refuse(f, "truncated", "header should be 100 bytes", "only 2 follow")


@pytest.mark.parametrize("n", [0, 1])
def test_header_length_too_small_for_an_object(f, n):
    write(f, "{}", length=n)
    both_refuse(f, f"a header length of {n} cannot hold a JSON object")


def test_pickle_gets_its_own_message(f):
    f.write_bytes(b"PK\x03\x04\x00\x00\x08\x08 a torch zip, renamed")
    both_refuse(f, "pickle", "runs code", "use model.safetensors")
    # A header length of 640 also starts with pickle's b"\x80\x02": cut short, it is truncated.
    write(f, "{}", length=640)
    both_refuse(f, "truncated", "header should be 640 bytes")


# ---------------------------------------------------------------------------- the JSON


def test_header_not_utf8(f):
    write(f, b'{"\xff": 1}')
    both_refuse(f, "not UTF-8", "at byte 2")


@pytest.mark.parametrize(
    "text", ["not json at all", '{"a": ', "{} x", "{}\x00", '\ufeff{"a": 1}', '{"a\x01": 1}']
)
def test_header_not_json(f, text):
    """Including a trailing NUL (padding must be JSON whitespace), a BOM, a control character."""
    write(f, text)
    both_refuse(f, "not a safetensors file", "not JSON")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_is_not_json(f, constant):
    """Python's json reads NaN; JSON (and the library) does not."""
    write(f, '{"__metadata__": {"k": ' + constant + "}}")
    both_refuse(f, "not JSON", f"{constant} is not JSON")


@pytest.mark.parametrize("header", ["[]", '"x"', "null", "12", "true"])
def test_header_not_an_object(f, header):
    write(f, header)
    both_refuse(f, "its header is", "not an object")


def test_whitespace_around_the_json_is_allowed(f):
    """The library's own writer pads with spaces to a multiple of 8; any JSON whitespace
    (space, tab, newline, carriage return) before or after the object is fine."""
    write(f, " \t\n\r" + json.dumps({"a": F32_PAIR}) + "  \n", bytes(8))
    assert load_arrays(f)["a"].tolist() == load_file(f)["a"].tolist() == [0, 0]


def test_lone_surrogate_escapes_are_refused(f):
    """JSON can spell half a UTF-16 pair (\\ud800); Python decodes it, the library refuses."""
    write(f, '{"\\ud800": ' + json.dumps(F32_PAIR) + "}", bytes(8))
    both_refuse(f, "the tensor name '\\ud800'", "unpaired UTF-16 surrogate")
    write(f, '{"__metadata__": {"k": "\\udc00"}}')
    both_refuse(f, "__metadata__['k']", "unpaired UTF-16 surrogate")
    write(f, '{"\\ud83d\\ude00": ' + json.dumps(F32_PAIR) + "}", bytes(8))  # a real pair
    assert list(load_arrays(f)) == list(load_file(f)) == ["\U0001f600"]


# --------------------------------------------------------------------------- repeats


def test_repeated_tensor_name_is_refused_though_the_library_keeps_the_last(f):
    entry = json.dumps(F32_PAIR)
    write(f, '{"a": ' + entry + ', "a": ' + entry + "}", bytes(8))
    only_minigpt_refuses(f, "repeats the key 'a'")


def test_repeated_key_in_an_entry_or_metadata(f):
    write(f, '{"a": {"dtype": "F32", "dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}')
    both_refuse(f, "repeats the key 'dtype'")
    write(f, '{"__metadata__": {}, "__metadata__": {}}')
    both_refuse(f, "repeats the key '__metadata__'")
    write(f, '{"__metadata__": {"k": "1", "k": "2"}}')  # the library keeps "2"
    only_minigpt_refuses(f, "repeats the key 'k'")


# ------------------------------------------------------------------------- __metadata__


@pytest.mark.parametrize(
    "metadata, cause",
    [
        ([], "must be an object of strings, got the list []"),
        ("x", 'must be an object of strings, got the string "x"'),
        ({"k": 1}, "__metadata__['k'] must be a string, got the number 1"),
        ({"k": None}, "__metadata__['k'] must be a string, got null"),
        ({"k": True}, "__metadata__['k'] must be a string, got the boolean true"),
    ],
)
def test_metadata_must_be_an_object_of_strings(f, metadata, cause):
    write(f, {"__metadata__": metadata})
    both_refuse(f, cause)


def test_metadata_may_be_null_or_absent(f):
    write(f, {"__metadata__": None, "a": F32_PAIR}, bytes(8))
    assert list(load_arrays(f)) == list(load_file(f)) == ["a"]


# ------------------------------------------------------------------- one tensor's entry


@pytest.mark.parametrize("entry", [1, None, "F32", True])
def test_entry_not_an_object(f, entry):
    write(f, {"a": entry})
    both_refuse(f, "tensor 'a': its entry is", "not an object with dtype, shape and data_offsets")


def test_entry_as_a_list_is_refused_though_the_library_takes_it(f):
    """The library's decoder (serde) reads a struct from a list of its fields in order."""
    write(f, {"a": ["F32", [2], [0, 8]]}, bytes(8))
    only_minigpt_refuses(f, "its entry is the list", "not an object")


@pytest.mark.parametrize("key", ["dtype", "shape", "data_offsets"])
def test_missing_key(f, key):
    write(f, {"a": {k: v for k, v in F32_PAIR.items() if k != key}}, bytes(8))
    both_refuse(f, f"tensor 'a' has no {key}")


def test_unknown_key_is_refused_though_the_library_ignores_it(f):
    write(f, {"a": {**F32_PAIR, "byte_order": "big"}}, bytes(8))
    only_minigpt_refuses(f, "tensor 'a' has an unknown key 'byte_order'")


@pytest.mark.parametrize("dtype", ["f32", "FP32", "F8_E4M3FN", "", 32, None, ["F32"]])
def test_dtype_the_format_does_not_define(f, dtype):
    write(f, {"a": {**F32_PAIR, "dtype": dtype}}, bytes(8))
    both_refuse(f, "tensor 'a': dtype", "is not a safetensors dtype")


def test_dtype_as_an_object_is_refused_though_the_library_takes_it(f):
    """serde reads the enum value F32 from {"F32": null} as well as from "F32"."""
    write(f, {"a": {**F32_PAIR, "dtype": {"F32": None}}}, bytes(8))
    only_minigpt_refuses(f, 'dtype {"F32": null} is not a safetensors dtype')


@pytest.mark.parametrize(
    "dtype, shape, size",
    [("I8", [8], 8), ("U16", [4], 8), ("U32", [2], 8), ("C64", [1], 8), ("F8_E4M3", [8], 8)],
)
def test_dtype_minigpt_does_not_read(f, dtype, shape, size):
    """Valid safetensors: the library reads it; minigpt names the dtype and what it reads."""
    write(f, {"a": {"dtype": dtype, "shape": shape, "data_offsets": [0, size]}}, bytes(size))
    only_minigpt_refuses(f, f"tensor 'a' is {dtype}", "not a dtype minigpt reads", "F32")


@pytest.mark.parametrize("shape", [[-2], [2.0], [True], ["2"], None, "2", [2**64], [[2]], {"0": 2}])
def test_shape_not_a_list_of_integers(f, shape):
    """true is the integer 1 to Python (bool subclasses int), not to JSON or the library."""
    write(f, {"a": {**F32_PAIR, "shape": shape}}, bytes(8))
    both_refuse(f, "tensor 'a': shape must be a list of integers >= 0, got")


@pytest.mark.parametrize(
    "offsets",
    [[-8, 0], [0, -8], [0.0, 8], [0, 8.0], [True, 8], [0], [0, 8, 8], None, {"0": 0}, [0, 2**64]],
)
def test_data_offsets_not_two_integers(f, offsets):
    """[-8, 0] used to load silently: the 8 bytes before the data, i.e. the header's end."""
    write(f, {"a": {**F32_PAIR, "data_offsets": offsets}}, bytes(8))
    both_refuse(f, "tensor 'a': data_offsets must be two integers >= 0, got")


def test_minus_zero_is_not_an_integer(f):
    """The library's decoder reads -0 as the float -0.0; Python's json reads the int 0."""
    write(f, '{"a": {"dtype": "F32", "shape": [2], "data_offsets": [-0, 8]}}', bytes(8))
    both_refuse(f, "data_offsets must be two integers >= 0, got [-0.0, 8]")
    write(f, '{"a": {"dtype": "F32", "shape": [-0, 2], "data_offsets": [0, 0]}}')
    both_refuse(f, "shape must be a list of integers >= 0, got [-0.0, 2]")


def test_data_offsets_running_backwards(f):
    write(f, {"a": {**F32_PAIR, "data_offsets": [8, 0]}}, bytes(8))
    both_refuse(f, "tensor 'a': data_offsets [8, 0] run backwards")


def test_byte_count_must_match_shape_and_dtype(f):
    write(f, {"a": {**F32_PAIR, "shape": [3]}}, bytes(8))
    both_refuse(f, "tensor 'a': shape [3] of F32 needs 12 bytes", "[0, 8] hold 8 bytes")
    write(f, {"a": {**F32_PAIR, "dtype": "F64"}}, bytes(8))
    both_refuse(f, "shape [2] of F64 needs 16 bytes")


@pytest.mark.parametrize("dtype, count", [("F6_E2M3", 2), ("F6_E3M2", 3), ("F4", 3)])
def test_sub_byte_dtypes_must_fill_whole_bytes(f, dtype, count):
    """F4 packs two values a byte, F6 four in three bytes: an odd count leaves half a byte."""
    size = count * (4 if dtype == "F4" else 6) // 8 + 1
    write(f, {"a": {"dtype": dtype, "shape": [count], "data_offsets": [0, size]}}, bytes(size))
    both_refuse(f, f"{count} values of {dtype} do not fill a whole number of bytes")


# ---------------------------------------------------------------------- the tensors together


def test_gap_between_tensors(f):
    header = {"a": F32_PAIR, "b": {**F32_PAIR, "data_offsets": [12, 20]}}
    write(f, header, bytes(20))
    both_refuse(f, "bytes 8 to 12 belong to no tensor", "tensor 'b' starts at 12")


def test_first_tensor_must_start_at_the_first_byte(f):
    write(f, {"a": {**F32_PAIR, "data_offsets": [4, 12]}}, bytes(12))
    both_refuse(f, "bytes 0 to 4 belong to no tensor")


def test_overlapping_tensors(f):
    header = {"a": F32_PAIR, "b": {**F32_PAIR, "data_offsets": [4, 12]}}
    write(f, header, bytes(12))
    both_refuse(f, "tensors 'a' and 'b' overlap")


def test_bytes_after_the_last_tensor(f):
    """The library rejects trailing bytes: the header must account for the whole file."""
    write(f, {"a": F32_PAIR}, bytes(9))
    both_refuse(f, "the file goes on for 1 byte after the last tensor's data")
    write(f, {}, b"xyz")
    both_refuse(f, "goes on for 3 bytes")


def test_data_cut_short(f):
    write(f, {"a": F32_PAIR}, bytes(7))
    both_refuse(f, "truncated: the header describes 8 bytes of tensor data but the file holds 7")


def test_empty_tensor_shapes_numpy_cannot_describe(f):
    """A 0 in the shape means no bytes, but NumPy still multiplies the other sizes and
    refuses an array of more than 2**63 - 1 bytes; so does the library, through NumPy."""
    write(f, {"a": {"dtype": "F32", "shape": [0, 2**61], "data_offsets": [0, 0]}})
    both_refuse(f, "tensor 'a': shape [0, 2305843009213693952] is too large for NumPy")
    write(f, {"a": {"dtype": "U8", "shape": [2**63, 2, 0], "data_offsets": [0, 0]}})
    both_refuse(f, "too large for NumPy")  # the library: 64 bits overflow before the 0
    write(f, {"a": {"dtype": "U8", "shape": [0, 2**63 - 1], "data_offsets": [0, 0]}})
    assert load_arrays(f)["a"].shape == load_file(f)["a"].shape == (0, 2**63 - 1)


def test_empty_float16_whose_float32_copy_numpy_cannot_describe(f):
    """2-byte items fit, but minigpt returns float32, and 4-byte items of that shape do not."""
    write(f, {"a": {"dtype": "F16", "shape": [0, 2**62 - 1], "data_offsets": [0, 0]}})
    assert load_file(f)["a"].shape == (0, 2**62 - 1)
    refused(f, "too large for NumPy in 4-byte values")


# ---------------------------------------------------------------- what both read the same


def test_files_both_read_identically(f):
    """Header order is not storage order, scalars and empty tensors (two at one offset),
    escaped names, all the dtypes minigpt converts."""
    tensors = {
        "scalar": np.array(1.5, np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "also empty": np.zeros((2, 0), np.float16),
        "half": np.arange(6, dtype=np.float16).reshape(2, 3),
        "double": np.array([1e-3, -2.5]),
        "ints": np.array([[1, -2]], np.int64),
        "mask": np.array([True, False]),
        "bytes": np.arange(3, dtype=np.uint8),
        "i32": np.array([7], np.int32),
    }
    save_file(tensors, str(f), metadata={"format": "pt"})
    ours, theirs = load_arrays(f), load_file(f)
    assert ours.keys() == theirs.keys()
    for name, array in theirs.items():
        want = array.astype(np.float32) if array.dtype in (np.float16, np.float64) else array
        assert ours[name].dtype == want.dtype and ours[name].shape == want.shape, name
        assert ours[name].tobytes() == want.tobytes(), name


def test_empty_tensors_sit_at_any_boundary(f):
    """Sorted by (begin, end), an empty tensor at 0 comes before the tensor starting at 0."""
    empty = {"dtype": "F32", "shape": [0]}
    header = {"a": F32_PAIR, "e": {**empty, "data_offsets": [0, 0]}}
    write(f, {**header, "z": {**empty, "data_offsets": [8, 8]}}, bytes(8))
    assert load_arrays(f).keys() == load_file(f).keys() == {"a", "e", "z"}


def test_bfloat16_is_the_top_half_of_a_float32(f):
    """NumPy has no bfloat16 (nor can the library give it one): minigpt shifts the bits."""
    bits = np.array([0x3F80, 0xC000, 0x7F80, 0x0001], "<u2")  # 1, -2, inf, tiny
    write(f, {"b": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}, bits.tobytes())
    b = load_arrays(f)["b"]
    assert b.dtype == np.float32 and b.shape == (2, 2)
    assert b.ravel().tolist()[:3] == [1.0, -2.0, np.inf]
    assert b.view(np.uint32).ravel()[3] == 0x00010000


def test_an_empty_header_is_a_file_without_tensors(f):
    write(f, "{}")
    assert load_arrays(f) == load_file(f) == {}


def test_float32_tensors_are_read_only_views_of_the_mapping(f):
    save_file({"w": np.arange(4, dtype=np.float32)}, str(f))
    w = load_arrays(f)["w"]
    assert not w.flags.owndata and not w.flags.writeable
    base = w
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base.obj, mmap.mmap)  # the chain ends in the file's mapping, not a copy


def test_released_pages_leave_memory_and_read_back_the_same(f):
    """release_pages drops a mapped array's whole pages from the process (the mapping's Rss
    sees them go), and reading the array afterwards gives the file's values again."""
    values = np.arange(64 * 1024, dtype=np.float32)  # 64 pages of 4 KB
    save_file({"w": values}, str(f))
    w = load_arrays(f)["w"]
    assert (w == values).all() and resident_bytes(w) >= 60 * mmap.PAGESIZE
    release_pages(w[1000:])
    print(f"resident after release: {resident_bytes(w)} of {w.nbytes} bytes")
    # Left: the pages w[:1000] touches, and the partial pages at either end of w[1000:].
    assert resident_bytes(w) <= 3 * mmap.PAGESIZE
    assert (w == values).all()  # read back from the file
    release_pages(values)  # not a mapped array: left alone
    assert values[5] == 5


def test_read_header_checks_the_same_rules(f):
    write(f, {"a": {**F32_PAIR, "data_offsets": [-8, 0]}}, bytes(8))
    with pytest.raises(MiniGPTError, match="data_offsets must be two integers"):
        read_header(f)
    write(f, {"a": F32_PAIR}, bytes(8))
    header, start = read_header(f)
    assert list(header) == ["a"] and (header["a"].begin, header["a"].end) == (0, 8)
    assert start == f.stat().st_size - 8


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(MiniGPTError, match="no such file"):
        load_arrays(tmp_path / "nowhere.safetensors")
    with pytest.raises(MiniGPTError, match="cannot read it"):
        load_arrays(tmp_path)


# ------------------------------------------------------------------------- the command line


def test_cli_malformed_weights_one_line_no_traceback_nothing_left_behind(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    config = GPT2Config(
        n_layer=1,
        n_head=2,
        n_embd=8,
        n_positions=16,
        vocab_size=50,
        bos_token_id=49,
        eos_token_id=49,
    )
    (model / "config.json").write_text(json.dumps(config.to_json()))
    write(model / "model.safetensors", {"wte.weight": {**F32_PAIR, "data_offsets": [-8, 0]}})
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = run_minigpt(["generate", "hi", "--model", str(model)], cwd)
    assert_one_line_error(done, cwd, "model.safetensors", "data_offsets")
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "model.safetensors"]
