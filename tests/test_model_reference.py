"""Parity with Hugging Face's GPT2LMHeadModel: same checkpoint, same logits to 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
from checkpoints import TINY, build
from reference import require_reference

from minigpt import GPT2Config, NextTokenLogits
from minigpt.gpt2 import load_model_dir

pytestmark = pytest.mark.reference
TOL = 1e-4
# (token ids inside the small vocabulary: a config with GPT-2's 50256 there is refused)
SMALL = GPT2Config(
    n_layer=3, n_head=4, n_embd=96, n_positions=256, vocab_size=1000,
    bos_token_id=999, eos_token_id=999,
)  # fmt: skip
SHAPES = {"small": SMALL, "gpt2-124M": GPT2Config.preset("gpt2")}


@pytest.fixture(scope="module", params=list(SHAPES))
def pair(request, tmp_path_factory):
    """(our model, HF's model) loaded from one random hub-layout checkpoint."""
    torch, transformers = require_reference()
    path = build(tmp_path_factory.mktemp(request.param), SHAPES[request.param], seed=1)
    hf = transformers.GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32).eval()
    return load_model_dir(path), hf


def hf_logits(hf, ids: np.ndarray) -> np.ndarray:
    torch, _ = require_reference()
    with torch.no_grad():
        return hf(torch.from_numpy(ids)).logits.numpy()


def compare(name: str, ours: np.ndarray, ref: np.ndarray) -> None:
    diff = float(np.abs(ours - ref).max())
    print(f"{name}: max |diff| = {diff:.2e}; first logits {ours.ravel()[:3]} vs {ref.ravel()[:3]}")
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape
    assert diff <= TOL


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("T", [1, 4, 200])
def test_logits_match_hf(pair, B, T):
    """Uncached forward == HF for T = 1, 4 and 200, batch 1 and 3."""
    ours, hf = pair
    ids = np.random.default_rng(T + B).integers(0, ours.config.vocab_size, (B, T))
    compare(f"B={B} T={T}", ours.forward(ids), hf_logits(hf, ids))


def test_cached_generation_matches_hf(pair):
    """Step-by-step logits through the adapter (KV cache) == HF on each full prefix."""
    ours, hf = pair
    ids = list(np.random.default_rng(5).integers(0, ours.config.vocab_size, 40))
    adapter = NextTokenLogits(ours)
    for t in (8, 9, 10, 30, 31):
        compare(f"prefix {t}", adapter([ids[:t]])[0], hf_logits(hf, np.array([ids[:t]]))[0, -1])


def test_save_pretrained_layout_loads(tmp_path):
    """A checkpoint written by transformers' save_pretrained (transformer.-prefixed) loads."""
    torch, transformers = require_reference()
    config = transformers.GPT2Config(
        **{k: v for k, v in TINY.to_json().items() if k not in ("model_type", "architectures")}
    )
    hf = transformers.GPT2LMHeadModel(config).eval()
    hf.save_pretrained(tmp_path)
    from minigpt.safetensors_file import read_header

    names = set(read_header(tmp_path / "model.safetensors")[0])
    print("save_pretrained wrote e.g.", sorted(names)[:3])
    assert any(n.startswith("transformer.") for n in names)
    ids = np.array([[1, 2, 3, 4, 5]])
    compare("save_pretrained layout", load_model_dir(tmp_path).forward(ids), hf_logits(hf, ids))


def test_float16_checkpoint_matches_hf(tmp_path):
    """A float16 file loads as float32 and equals HF loading the same file as float32."""
    torch, transformers = require_reference()
    build(tmp_path, TINY, dtype="float16", std=0.1)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, dtype=torch.float32).eval()
    ids = np.array([[7, 8, 9, 10]])
    compare("float16 file", load_model_dir(tmp_path).forward(ids), hf_logits(hf, ids))
