"""The textbook forward pass and the fast one give the same logits, and both give GPT-2's.

Three evaluations of each checkpoint are set side by side, llm.c style (what is compared, the
largest difference, the first values):
- forward_textbook.gpt2_forward, float32;
- forward_fast.gpt2_forward through GPT2.forward, float32, with and without the KV cache and
  last_only, rows at one length or at several;
- `published_gpt2` below: GPT-2's published formulas written once more, in float64, straight
  from the checkpoint's tensors by their names in the file (not through minigpt's loader).

The float64 evaluation is the yardstick. Comparing the two paths with each other alone would
pass if both had the same mistake; against it, a wrong GELU constant or attention scale in
either path fails here, without torch (make test). `float32_tolerance` says how close a float32
evaluation can be expected to come, and `test_the_tolerance_tells_gpt2_from_its_mutants`
checks that this is far closer than either mistake would leave it.
"""

from __future__ import annotations

import json
import math
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

import minigpt
from minigpt import forward_fast, forward_textbook
from minigpt.config import GPT2Config
from minigpt.gpt2 import load_model_dir
from minigpt.hub import resolve_model_dir
from minigpt.make_random import random_tensors

U = 2.0**-24  # float32's unit roundoff: one float32 operation is off by at most U, relatively
LAMBDA = 4.0  # how many "standard deviations" of rounding error the tolerance allows, see below

# GELU's tanh approximation, as published (Hendrycks & Gimpel) and used to train GPT-2:
# 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
GELU_CUBIC = 0.044715


def published_gpt2(
    tensors: dict[str, np.ndarray],
    config: GPT2Config,
    ids: np.ndarray,
    gelu_cubic: float = GELU_CUBIC,
    scale: float | None = None,
) -> np.ndarray:
    """Logits [B, T, V] in float64, from checkpoint tensor names; `scale` defaults to GPT-2's
    1/sqrt(head_size). (gelu_cubic and scale exist to build the mutants the tolerance must see.)"""
    W = {name.removeprefix("transformer."): t.astype(np.float64) for name, t in tensors.items()}
    H, C, eps = config.n_head, config.n_embd, config.layer_norm_epsilon
    hs = C // H
    scale = 1.0 / math.sqrt(hs) if scale is None else scale

    def norm(x, name):  # eps from the config, variance over the features without Bessel's n-1
        centred = x - x.mean(axis=-1, keepdims=True)
        sigma = np.sqrt((centred**2).mean(axis=-1, keepdims=True) + eps)
        return W[f"{name}.weight"] * centred / sigma + W[f"{name}.bias"]

    def dense(x, name):  # GPT-2's Conv1D: weight stored [in, out]
        return np.einsum("...i,io->...o", x, W[f"{name}.weight"]) + W[f"{name}.bias"]

    def gelu(x):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + gelu_cubic * x**3)))

    B, T = ids.shape
    x = W["wte.weight"][ids] + W["wpe.weight"][:T]
    future = np.triu(np.ones((T, T), dtype=bool), k=1)  # key s after query t
    for i in range(config.n_layer):
        qkv = dense(norm(x, f"h.{i}.ln_1"), f"h.{i}.attn.c_attn").reshape(B, T, 3, H, hs)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        scores = np.einsum("bthd,bshd->bhts", q, k) * scale
        scores[:, :, future] = -np.inf
        p = np.exp(scores - scores.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        heads = np.einsum("bhts,bshd->bthd", p, v).reshape(B, T, C)
        x = x + dense(heads, f"h.{i}.attn.c_proj")
        x = x + dense(gelu(dense(norm(x, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc")), f"h.{i}.mlp.c_proj")
    head = W.get("lm_head.weight", W["wte.weight"])  # tied: the output head is wte
    return norm(x, "ln_f") @ head.T


def float32_tolerance(config: GPT2Config, T: int, exact: np.ndarray) -> float:
    """How far float32 logits may lie from the exact (float64) ones, from rounding alone.

    Every float32 operation is off by at most U relative to its result. A sum of n products
    collects n such errors; they fall either way like coin tosses, so together they grow as
    sqrt(n) U times the size of the result, not n U: Higham and Mary's probabilistic rounding
    analysis bounds them by LAMBDA sqrt(n) U with a probability that approaches 1 quickly as
    LAMBDA grows (n U, the worst case, would be too loose to see a wrong constant). The longest
    sums are the MLP's second product (4C terms) and attention's weighted mean over T keys. A
    logit sits behind n_layer blocks and the head, each adding its own error to what it passes
    on, so n_layer + 1 such stages. The size of the results is that of the largest logit.
    """
    n = max(4 * config.n_embd, T)
    return LAMBDA * math.sqrt(n) * (config.n_layer + 1) * U * float(np.abs(exact).max())


def report(name: str, ours: np.ndarray, ref: np.ndarray, tol: float) -> float:
    diff = float(np.abs(ours.astype(np.float64) - ref).max())
    print(
        f"{name}: max |diff| {diff:.2e} (tolerance {tol:.2e}); first logits "
        f"{np.round(ours.ravel()[:3], 6).tolist()} vs {np.round(ref.ravel()[:3], 6).tolist()}"
    )
    return diff


# -- Random checkpoints ---------------------------------------------------------------------


def random_checkpoint(directory: Path, config: GPT2Config, seed: int, std: float, layout: str):
    """make_random's tensors with random biases and layer-norm gains too (make_random leaves
    them 0 and 1, under which a path that dropped a bias would pass), in either file layout."""
    rng = np.random.default_rng(seed)
    tensors = random_tensors(config, seed, std, layout)
    for name, t in tensors.items():
        if name.endswith(".attn.bias"):  # the hub's causal-mask buffer, not a parameter
            continue
        if name.endswith(".bias"):
            tensors[name] = rng.normal(0, std, t.shape).astype(np.float32)
        elif "ln_" in name:
            tensors[name] = rng.normal(1, 0.3, t.shape).astype(np.float32)
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config.to_json()))
    return load_model_dir(directory), tensors


@st.composite
def cases(draw):
    """A random GPT-2 shape, a random checkpoint of it, and a batch of ids [B, T]."""
    # C >= 8: layer norm divides each feature's distance from the mean by their spread, which
    # for a few features that nearly agree multiplies float32's rounding far beyond U (for
    # C = 2, often). GPT-2's widths (768 and up) are far from that.
    n_head = draw(st.integers(1, 4))
    head_size = draw(st.integers(-(-8 // n_head), 16))
    config = GPT2Config(
        n_layer=draw(st.integers(1, 3)),
        n_head=n_head,
        n_embd=n_head * head_size,
        n_positions=draw(st.integers(2, 40)),
        vocab_size=draw(st.integers(2, 60)),
        layer_norm_epsilon=draw(st.sampled_from([1e-5, 1e-2])),  # a path ignoring it fails
        bos_token_id=None,  # GPT-2's 50256 lies outside these small vocabularies
        eos_token_id=None,
    )
    B, T = draw(st.integers(1, 3)), draw(st.integers(1, config.n_positions))
    seed = draw(st.integers(0, 2**32 - 1))
    ids = np.random.default_rng(seed).integers(0, config.vocab_size, (B, T))
    std = draw(st.sampled_from([0.02, 0.2]))  # GPT-2's initialisation, and peakier attention
    layout = draw(st.sampled_from(["hub", "transformers"]))
    # Query blocks smaller than T, so the fast path's blocked attention runs on short prompts.
    query_block = draw(st.sampled_from([forward_fast.QUERY_BLOCK, 1, 3]))
    return config, ids, seed, std, layout, query_block


@contextmanager
def checkpoint(case):
    config, ids, seed, std, layout, query_block = case
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(forward_fast, "QUERY_BLOCK", query_block)
        model, tensors = random_checkpoint(Path(tmp), config, seed, std, layout)
        yield model, tensors, ids


def compare_all_three(model, tensors, ids) -> None:
    config = model.config
    exact = published_gpt2(tensors, config, ids)
    tol = float32_tolerance(config, ids.shape[1], exact)
    textbook = forward_textbook.gpt2_forward(model.params, config, ids)
    fast = model.forward(ids)
    assert textbook.dtype == fast.dtype == np.float32  # float64 would hide float32's rounding
    assert report("textbook vs float64", textbook, exact, tol) <= tol
    assert report("fast vs float64", fast, exact, tol) <= tol
    # Each within tol of the exact logits, so within 2 tol of each other.
    assert report("fast vs textbook", fast, textbook.astype(np.float64), 2 * tol) <= 2 * tol


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_both_paths_compute_gpt2_on_random_checkpoints(case):
    with checkpoint(case) as (model, tensors, ids):
        compare_all_three(model, tensors, ids)


@settings(max_examples=40, deadline=None)
@given(case=cases(), data=st.data())
def test_the_cache_and_last_only_keep_the_textbook_logits(case, data):
    """The prompt fed through the KV cache in random pieces, all logits or only the last."""
    with checkpoint(case) as (model, tensors, ids):
        B, T = ids.shape
        exact = published_gpt2(tensors, model.config, ids)
        tol = 2 * float32_tolerance(model.config, T, exact)
        textbook = forward_textbook.gpt2_forward(model.params, model.config, ids)
        cuts = sorted(data.draw(st.sets(st.integers(1, T - 1), max_size=4))) if T > 1 else []
        last_only = data.draw(st.booleans())
        cache = model.new_cache(B)
        for a, b in zip([0, *cuts], [*cuts, T]):
            got = model.forward(ids[:, a:b], cache, last_only=last_only)
            want = textbook[:, b - 1 : b] if last_only else textbook[:, a:b]
            assert got.shape == want.shape
            assert report(f"cached [{a}:{b}] last_only={last_only}", got, want, tol) <= tol
        assert cache.lengths.tolist() == [T] * B


@settings(max_examples=40, deadline=None)
@given(case=cases(), data=st.data())
def test_rows_at_different_lengths_keep_the_textbook_logits(case, data):
    """Each row holds a different prefix in the cache, then all rows take the same number of
    tokens at once: the fast path's per-row positions and mask against the textbook, row by row."""
    config = case[0]
    with checkpoint(case) as (model, tensors, _):
        B = data.draw(st.integers(2, 3))
        S = data.draw(st.integers(1, config.n_positions - 1))  # tokens every row takes at once
        prefixes = data.draw(
            st.lists(st.integers(0, config.n_positions - S), min_size=B, max_size=B)
        )
        rng = np.random.default_rng(sum(prefixes) + S)
        rows = [rng.integers(0, config.vocab_size, p + S) for p in prefixes]
        last_only = data.draw(st.booleans())
        cache = model.new_cache(B)
        for b, (row, p) in enumerate(zip(rows, prefixes)):
            if p:
                model.forward(row[None, :p], cache.row(b))
        got = model.forward(np.stack([row[p:] for row, p in zip(rows, prefixes)]), cache, last_only)
        for b, (row, p) in enumerate(zip(rows, prefixes)):
            exact = published_gpt2(tensors, config, row[None])
            tol = 2 * float32_tolerance(config, len(row), exact)
            want = forward_textbook.gpt2_forward(model.params, config, row[None])[0, p:]
            want = want[-1:] if last_only else want
            assert report(f"row {b} after {p} cached", got[b], want, tol) <= tol


# -- The bundled model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    directory = resolve_model_dir("minigpt-tiny")
    return minigpt.load(directory), load_file(str(directory / "model.safetensors"))


def test_both_paths_compute_gpt2_on_the_bundled_model(bundled):
    """Trained weights: real biases, peaked attention, and the whole context (256 tokens, so
    the fast path's attention runs in its real 64-query blocks)."""
    model, tensors = bundled
    rng = np.random.default_rng(0)
    compare_all_three(model, tensors, rng.integers(0, model.config.vocab_size, (2, 256)))
    compare_all_three(model, tensors, rng.integers(0, model.config.vocab_size, (1, 37)))


def test_cached_decoding_steps_on_the_bundled_model(bundled):
    """A prompt, then one token at a time, as a decoder runs it: each step's logits."""
    model, tensors = bundled
    ids = np.random.default_rng(1).integers(0, model.config.vocab_size, (2, 48))
    exact = published_gpt2(tensors, model.config, ids)
    tol = 2 * float32_tolerance(model.config, ids.shape[1], exact)
    textbook = forward_textbook.gpt2_forward(model.params, model.config, ids)
    cache = model.new_cache(2)
    got = [model.forward(ids[:, :40], cache, last_only=True)]
    got += [model.forward(ids[:, t : t + 1], cache, last_only=True) for t in range(40, 48)]
    assert report("prompt + 8 steps", np.concatenate(got, axis=1), textbook[:, 39:], tol) <= tol


# -- The yardstick can tell GPT-2 from near misses ------------------------------------------


def gelu64(x: np.ndarray, cubic: float = GELU_CUBIC) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + cubic * x**3)))


@pytest.mark.parametrize(
    "gelu", [forward_textbook.gelu, forward_fast.gelu], ids=["textbook", "fast"]
)
def test_both_gelus_are_the_tanh_approximation(gelu):
    """Each formula's ~10 operations round within U of their result, which is below |x| + 1."""
    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    got = gelu(x)
    assert got.dtype == np.float32
    exact = gelu64(x.astype(np.float64))
    err = np.abs(got - exact) / (np.abs(x) + 1.0)
    worst = int(err.argmax())
    print(f"gelu({x[worst]}) = {got[worst]} vs {exact[worst]}: {err[worst] / U:.1f} U")
    assert err.max() <= 10 * U


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    config = GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=64, vocab_size=101,
                        bos_token_id=None, eos_token_id=None)  # fmt: skip
    return random_checkpoint(tmp_path_factory.mktemp("yardstick"), config, 7, 0.2, "hub")


@pytest.mark.parametrize("which", ["bundled", "random"])
def test_the_tolerance_tells_gpt2_from_its_mutants(which, bundled, random_model):
    """GELU's 0.044715 as 0.05, or attention scaled by 1/head_size instead of 1/sqrt(head_size),
    moves the logits by far more than the float32 tolerance: a path with either mistake fails
    the comparisons above. (Without this, a loose tolerance would let every mutant through.)"""
    model, tensors = bundled if which == "bundled" else random_model
    config = model.config
    ids = np.random.default_rng(2).integers(0, config.vocab_size, (2, config.n_positions))
    exact = published_gpt2(tensors, config, ids)
    tol = float32_tolerance(config, ids.shape[1], exact)
    mutants = {
        "gelu 0.05": published_gpt2(tensors, config, ids, gelu_cubic=0.05),
        "scale 1/head_size": published_gpt2(tensors, config, ids, scale=1 / config.head_size),
    }
    for name, mutant in mutants.items():
        moved = float(np.abs(mutant - exact).max())
        print(
            f"{which}, {name}: logits move {moved:.2e}, {moved / tol:.0f}x the tolerance {tol:.2e}"
        )
        assert moved > 10 * tol
