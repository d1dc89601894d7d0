"""The vocabulary head for several rows gives each row the logits the one-row head gives it.

forward_fast.head multiplies by a C-contiguous copy of lm_head.T: one row in a matrix-vector
product, a few rows (up to FEW_ROWS) one row at a time on blocks of its columns (matrix-vector
products), more rows in a matrix-matrix product. The BLAS
kernels add a row's C products in different orders, so the logits need not agree bit for bit;
each is a float32 dot product of C terms, which by the standard bound lies within
gamma_C * sum_i |x_i w_i| of the exact value (gamma_C = C U / (1 - C U), whatever the order
of the sum, fused multiply-adds included), so the two lie within twice that of each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from resident import resident_bytes

import minigpt
from minigpt import forward_fast

U = 2.0**-24  # float32's unit roundoff


def dot_bound(x: np.ndarray, lm_head: np.ndarray) -> np.ndarray:
    """Twice gamma_C * |x| @ |lm_head|.T: how far two float32 evaluations of x @ lm_head.T, in
    any order of summation, can lie apart, logit by logit."""
    C = x.shape[-1]
    gamma = C * U / (1 - C * U)
    return 2 * gamma * (np.abs(x.astype(np.float64)) @ np.abs(lm_head.astype(np.float64)).T)


def check_rows(x: np.ndarray, logits: np.ndarray, lm_head: np.ndarray, params) -> int:
    """Each row of `logits` (the several-row head of x) against the one-row head of that row;
    returns how many logits agree bit for bit."""
    x, logits = x.reshape(-1, x.shape[-1]), logits.reshape(-1, logits.shape[-1])
    same = 0
    for i in range(len(x)):
        alone = forward_fast.head(x[i : i + 1], params)[0]
        diff = np.abs(logits[i].astype(np.float64) - alone)
        assert (diff <= dot_bound(x[i], lm_head)).all(), f"row {i}: max |diff| {diff.max():.2e}"
        same += int((logits[i] == alone).sum())
    return same


@pytest.fixture(scope="module")
def model():
    return minigpt.load("minigpt-tiny")


@pytest.mark.parametrize("rows", [1, 2, 4, forward_fast.FEW_ROWS, forward_fast.FEW_ROWS + 1, 8])
def test_head_of_several_rows_is_the_head_of_each(rows):
    """Random hidden states on a head of gpt2's width (C = 768) and an odd vocabulary."""
    rng = np.random.default_rng(rows)
    lm_head = rng.standard_normal((3001, 768)).astype(np.float32)
    params = type("Params", (), {"lm_head": lm_head})()
    x = rng.standard_normal((rows, 768)).astype(np.float32)
    logits = forward_fast.head(x, params)
    assert logits.shape == (rows, 3001) and logits.dtype == np.float32
    same = check_rows(x, logits, lm_head, params)
    print(f"{rows} rows: {same} of {logits.size} logits bit for bit equal to the one-row head's")
    if rows == 1:
        assert same == logits.size


ROW_COUNTS = [1, 2, 3, forward_fast.FEW_ROWS, forward_fast.FEW_ROWS + 1]


@pytest.mark.parametrize("rows", ROW_COUNTS)
@pytest.mark.parametrize("shape", [(50, 70), (200, 50)])
@pytest.mark.parametrize("name", ["matmul_2d", "narrowing_matmul"])
def test_the_products_are_the_product(name, shape, rows):
    """matmul_2d (a few rows one at a time) and narrowing_matmul (the MLP's c_proj: up to
    FEW_ROWS rows by a transposed copy, more by the weight as stored) against float64, within
    the bound of any order of summation ([1, rows, in] inputs: leading axes flattened and back)."""
    rng = np.random.default_rng(rows)
    w = rng.standard_normal(shape).astype(np.float32)  # [in, out]
    x = rng.standard_normal((1, rows, shape[0])).astype(np.float32)
    y = getattr(forward_fast, name)(x, w)
    assert y.shape == (1, rows, shape[1]) and y.dtype == np.float32
    exact = x.astype(np.float64) @ w.astype(np.float64)
    C = x.shape[-1]
    bound = C * U / (1 - C * U) * (np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)))
    assert (np.abs(y - exact) <= bound).all(), f"max |diff| {np.abs(y - exact).max():.2e}"
    copied = id(w) in forward_fast._TRANSPOSED
    assert copied == (name == "narrowing_matmul" and rows <= forward_fast.FEW_ROWS)


def test_the_copy_is_made_once_per_head():
    lm_head = np.arange(12, dtype=np.float32).reshape(4, 3)
    columns = forward_fast.head_columns(lm_head)
    assert columns.flags.c_contiguous and (columns == lm_head.T).all()
    assert forward_fast.head_columns(lm_head) is columns  # made once per head
    key = id(lm_head)
    del lm_head, columns
    assert key not in forward_fast._TRANSPOSED  # freed with the head it copies


def spy_on_head(monkeypatch) -> list:
    """Record every (x, logits) of forward_fast.head as the model calls it."""
    calls, real = [], forward_fast.head

    def spy(x, params):
        logits = real(x, params)
        calls.append((x.copy(), logits.copy()))
        return logits

    monkeypatch.setattr(forward_fast, "head", spy)
    return calls


@pytest.mark.parametrize("rows", [1, 2, 4, 8])
def test_the_model_without_the_cache(monkeypatch, model, rows):
    """One sequence of `rows` positions, every position's logits: a several-row head call."""
    calls = spy_on_head(monkeypatch)
    ids = np.random.default_rng(rows).integers(0, model.config.vocab_size, (1, rows))
    model.forward(ids)
    ((x, logits),) = calls
    assert x.shape == (1, rows, model.config.n_embd)
    check_rows(x, logits, model.params.lm_head, model.params)


@pytest.mark.parametrize("rows", [1, 2, 4, 8])
def test_the_model_with_the_cache(monkeypatch, model, rows):
    """`rows` sequences after a cached prompt, one new token each, as beam search and batched
    sampling step: each row's logits as if it had been stepped alone."""
    ids = np.random.default_rng(10 + rows).integers(0, model.config.vocab_size, (rows, 6))
    cache = model.new_cache(rows)
    model.forward(ids[:, :5], cache, last_only=True)
    calls = spy_on_head(monkeypatch)
    model.forward(ids[:, 5:], cache, last_only=True)
    ((x, logits),) = calls
    assert x.shape == (rows, 1, model.config.n_embd)
    check_rows(x, logits, model.params.lm_head, model.params)


def test_copied_weights_are_in_memory_once():
    """After a forward pass the mapped file's pages of the weights the fast path copies (the
    head, each MLP's c_proj) are given back: only the copies count in the process's memory
    (the Rss of the file's mapping, from /proc/self/smaps)."""
    fresh = minigpt.load("minigpt-tiny")  # not yet run: no copy made
    fresh.forward([1, 2, 3])  # 3 rows: the c_proj copies too (up to FEW_ROWS rows)
    copied = [fresh.params.lm_head] + [block.mlp.c_proj.weight for block in fresh.params.h]
    resident = resident_bytes(fresh.params.lm_head)  # the whole file's mapping
    file_bytes = (
        (Path(minigpt.__file__).parent / "data/minigpt-tiny/model.safetensors").stat().st_size
    )
    copied_bytes = sum(w.nbytes for w in copied)
    print(f"mapping resident: {resident} bytes; file {file_bytes}; copied {copied_bytes}")
    assert resident <= file_bytes - copied_bytes + 2 * 4096 * len(copied)
