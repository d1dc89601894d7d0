"""What a debugger shows for the model's objects: one short line of shapes and lengths each.

A learner stops in forward_fast.py and looks at `model`, `cache`, `params.h[0]`: each should say
what it is (sizes, dtypes, how full the cache is) in a line, never a dump of array values.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from checkpoints import TINY, build

from minigpt import NextTokenLogits
from minigpt.config import GPT2Config
from minigpt.gpt2 import GPT2, load_model_dir
from minigpt.weights import MLP, Attention, Block, GPT2Params, LayerNorm, Linear, expected_shapes

SHORT = 200  # characters: one line of a debugger's variables pane


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_model_dir(build(tmp_path_factory.mktemp("reprs")))


def zero_params(config: GPT2Config) -> GPT2Params:
    """GPT2Params of any shape without weights on disk (np.zeros maps pages only when touched)."""
    a = {name: np.zeros(shape, np.float32) for name, shape in expected_shapes(config).items()}

    def linear(p):
        return Linear(a[f"{p}.weight"], a[f"{p}.bias"])

    def norm(p):
        return LayerNorm(a[f"{p}.weight"], a[f"{p}.bias"])

    h = [
        Block(
            norm(f"h.{i}.ln_1"),
            Attention(linear(f"h.{i}.attn.c_attn"), linear(f"h.{i}.attn.c_proj")),
            norm(f"h.{i}.ln_2"),
            MLP(linear(f"h.{i}.mlp.c_fc"), linear(f"h.{i}.mlp.c_proj")),
        )
        for i in range(config.n_layer)
    ]
    return GPT2Params(a["wte.weight"], a["wpe.weight"], h, norm("ln_f"), a["wte.weight"])


def assert_short(text: str) -> None:
    print(f"{len(text):4d} chars: {text}")
    assert len(text) <= SHORT and "\n" not in text
    assert "array(" not in text and "0., " not in text, "array values leaked into the repr"


def test_model_says_its_config(model):
    assert repr(model) == "GPT2(n_layer=2, n_head=4, n_embd=32, vocab=101, context=64)"
    gpt2 = GPT2(GPT2Config.preset("gpt2"), zero_params(GPT2Config.preset("gpt2")))
    assert repr(gpt2) == "GPT2(n_layer=12, n_head=12, n_embd=768, vocab=50257, context=1024)"


def test_cache_says_how_full_each_row_is(model):
    cache = model.new_cache(4)
    assert repr(cache) == "KVCache(rows=4, layers=2, filled=[0, 0, 0, 0] of 64)"
    model.forward(np.zeros((4, 7), np.int64), cache)
    assert repr(cache) == "KVCache(rows=4, layers=2, filled=[7, 7, 7, 7] of 64)"
    model.forward(np.zeros((1, 3), np.int64), cache.row(2))  # rows at different lengths
    assert repr(cache) == "KVCache(rows=4, layers=2, filled=[7, 7, 10, 7] of 64)"
    assert repr(cache.row(2)) == "KVCache(rows=1, layers=2, filled=[10] of 64)"


def test_a_wide_cache_lists_only_its_first_rows(model):
    text = repr(model.new_cache(100))
    assert_short(text)
    assert text == "KVCache(rows=100, layers=2, filled=[0, 0, 0, 0, 0, 0, 0, 0, ...] of 64)"


def test_adapter_shows_its_model_cache_and_calls(model):
    adapter = NextTokenLogits(model)
    adapter([[1, 2, 3], [1, 2, 3, 4, 5]])
    text = repr(adapter)
    assert_short(text)
    assert text == (
        f"NextTokenLogits({model!r}, cache=KVCache(rows=2, layers=2, filled=[3, 5] of 64), "
        f"calls={adapter.calls})"
    )


@pytest.mark.parametrize("config", [TINY, GPT2Config.preset("gpt2")], ids=["tiny", "gpt2"])
def test_weights_show_shapes_not_values(config):
    params = zero_params(config)
    C = config.n_embd
    block = params.h[0]
    assert repr(block.attn.c_attn) == f"Linear(weight [{C}, {3 * C}] float32, bias [{3 * C}])"
    assert repr(block.ln_1) == f"LayerNorm(weight [{C}] float32, bias [{C}])"
    assert repr(block.attn) == f"Attention(c_attn [{C}, {3 * C}], c_proj [{C}, {C}])"
    assert repr(block.mlp) == f"MLP(c_fc [{C}, {4 * C}], c_proj [{4 * C}, {C}])"
    assert repr(block) == (f"Block(ln_1 [{C}], {block.attn!r}, ln_2 [{C}], {block.mlp!r}, float32)")
    V, N = config.vocab_size, config.n_positions
    assert repr(params) == (
        f"GPT2Params(wte [{V}, {C}] float32, wpe [{N}, {C}], h: {config.n_layer} x Block, "
        f"ln_f [{C}], lm_head tied to wte)"
    )
    for obj in (params, block, block.attn, block.mlp, block.ln_1, block.attn.c_attn):
        assert_short(repr(obj))


def test_an_untied_head_shows_its_own_shape():
    params = dataclasses.replace(zero_params(TINY), lm_head=np.zeros((101, 32), np.float32))
    assert repr(params).endswith("lm_head [101, 32])")


def test_the_loaded_model_prints_short(model):
    """Through the real loader, not just hand-built params: memory-mapped arrays print short too."""
    for obj in (model, model.params, model.params.h[1], model.params.h[1].mlp.c_proj):
        assert_short(repr(obj))
