"""Bad checkpoints and bad input fail with one line that names the problem."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from checkpoints import TINY, build, make_random
from safetensors.numpy import save_file

from minigpt import MiniGPTError
from minigpt.gpt2 import load_model_dir


@pytest.fixture()
def ckpt(tmp_path):
    return build(tmp_path / "m")


def one_line_error(fn, *match: str) -> str:
    with pytest.raises(MiniGPTError) as info:
        fn()
    message = str(info.value)
    print(message)
    assert "\n" not in message
    for m in match:
        assert m in message
    return message


def rewrite(ckpt, change) -> None:
    tensors = make_random.random_tensors(TINY)
    change(tensors)
    save_file(tensors, str(ckpt / "model.safetensors"))


def test_missing_directory_or_file(tmp_path, ckpt):
    one_line_error(lambda: load_model_dir(tmp_path / "nowhere"), "no model.safetensors")
    (ckpt / "config.json").unlink()
    one_line_error(lambda: load_model_dir(ckpt), "config.json")


def test_truncated_file(ckpt):
    path = ckpt / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    one_line_error(lambda: load_model_dir(ckpt), "truncated")
    path.write_bytes(data[:5])
    one_line_error(lambda: load_model_dir(ckpt), "truncated")


def test_not_a_safetensors_file(ckpt):
    (ckpt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    one_line_error(lambda: load_model_dir(ckpt), "not a safetensors file")
    (ckpt / "model.safetensors").write_text("hello, I am text and much longer than a header")
    one_line_error(lambda: load_model_dir(ckpt), "not a safetensors file")


def test_pickle_is_refused(ckpt):
    (ckpt / "model.safetensors").unlink()
    (ckpt / "pytorch_model.bin").write_bytes(b"PK\x03\x04 a torch zip pickle")
    one_line_error(lambda: load_model_dir(ckpt), "pickle", "runs code")
    shutil.move(ckpt / "pytorch_model.bin", ckpt / "model.safetensors")  # renamed pickle
    one_line_error(lambda: load_model_dir(ckpt), "pickle")


def test_missing_and_extra_tensors_are_listed(ckpt):
    rewrite(ckpt, lambda t: (t.pop("h.1.mlp.c_fc.bias"), t.pop("ln_f.weight")))
    one_line_error(
        lambda: load_model_dir(ckpt), "missing tensors", "h.1.mlp.c_fc.bias", "ln_f.weight"
    )
    rewrite(ckpt, lambda t: t.update({"h.2.ln_1.weight": np.ones(32, np.float32)}))
    one_line_error(lambda: load_model_dir(ckpt), "unexpected tensors", "h.2.ln_1.weight")


def test_shape_contradicting_config(ckpt):
    config = json.loads((ckpt / "config.json").read_text())
    config["n_positions"] = 128
    (ckpt / "config.json").write_text(json.dumps(config))
    one_line_error(lambda: load_model_dir(ckpt), "wpe.weight", "(64, 32)", "(128, 32)")


def test_integer_weights_are_refused(ckpt):
    """A valid safetensors file whose embedding is I32: the right shape, not GPT-2 weights."""
    rewrite(ckpt, lambda t: t.update({"wte.weight": t["wte.weight"].astype(np.int32)}))
    one_line_error(lambda: load_model_dir(ckpt), "wte.weight", "int32", "floating point")


def test_bad_ids(ckpt):
    model = load_model_dir(ckpt)
    one_line_error(lambda: model.forward([5, 101]), "101", "outside the vocabulary")
    one_line_error(lambda: model.forward([-1]), "outside the vocabulary")
    one_line_error(lambda: model.forward(list(range(65))), "65 tokens", "context of 64")
    one_line_error(lambda: model.forward([]), "empty")
    one_line_error(lambda: model.forward([1.5, 2.0]), "integers")
    cache = model.new_cache(1)
    model.forward(list(range(60)), cache)
    one_line_error(lambda: model.forward(list(range(5)), cache), "context of 64")


def test_half_precision_files_load_as_float32(tmp_path):
    """float16 files load as float32; bfloat16 (written by hand: NumPy has no bf16) too."""
    f16 = load_model_dir(build(tmp_path / "f16", dtype="float16"))
    f32 = load_model_dir(build(tmp_path / "f32"))
    assert f16.params.wte.dtype == np.float32
    assert np.array_equal(f16.params.wte, f32.params.wte.astype(np.float16).astype(np.float32))
    bf16 = build(tmp_path / "bf16")
    write_bf16(bf16 / "model.safetensors", make_random.random_tensors(TINY))
    wte = load_model_dir(bf16).params.wte
    expected = (f32.params.wte.view(np.uint32) & 0xFFFF0000).view(np.float32)  # truncated
    assert wte.dtype == np.float32 and np.array_equal(wte, expected)


def write_bf16(path, tensors: dict[str, np.ndarray]) -> None:
    """A minimal safetensors writer: bfloat16 = the top 16 bits of each float32."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        blob = (t.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {
            "dtype": "BF16",
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(len(head).to_bytes(8, "little") + head + b"".join(blobs))


def test_weights_are_memory_mapped(ckpt):
    """float32 tensors are views into the file, not copies held in RAM."""
    params = load_model_dir(ckpt).params
    assert isinstance(params.wte.base, np.ndarray) or params.wte.base is not None
    assert not params.h[0].attn.c_attn.weight.flags.owndata
    assert not params.wte.flags.writeable
