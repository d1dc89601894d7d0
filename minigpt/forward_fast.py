"""GPT-2's forward pass as minigpt runs it: forward_textbook.py's formulas rewritten for speed,
plus the KV cache. Read forward_textbook.py first; this file computes the same logits
(tests/test_forward_textbook.py holds the two within float32 rounding of each other).

Every rewrite is marked `Speed:` where it is made, with what it bought, measured on the
2-vCPU machine of the README's Speed table with gpt2 (124M) shapes; "a prompt" is 512 tokens,
"a step" one new token per row. The first round of them (gelu's power, 2-D products, the mask
built once, scaled q, in-place softmax) took the benchmark's prompt from 258 to 592 tokens/s,
the second (query blocks, last_only, in-place gelu and layer_norm) to about 880. The third
(weights in the layout OpenBLAS reads fastest: head_columns, narrowing_matmul, few_rows_*)
took a greedy step of gpt2's shape from 20.1 to about 16.5 ms on a 2-vCPU AMD EPYC (Zen 4).

B = batch, T = tokens in this call, C = n_embd, V = vocab size, H = n_head, hs = head_size,
Tk = keys attended over, the cached ones included.
"""

from __future__ import annotations

import weakref

import numpy as np

from minigpt.config import GPT2Config
from minigpt.errors import MiniGPTError
from minigpt.kv_cache import KVCache
from minigpt.safetensors_file import release_pages
from minigpt.weights import Block, GPT2Params, LayerNorm, Linear

_GELU_C = np.float32(np.sqrt(2.0 / np.pi))


def gelu(x: np.ndarray) -> np.ndarray:
    """0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))), as forward_textbook.gelu.

    Speed: a prompt's [B, T, 4C] activations are large, so the formula is evaluated operator by
    operator into one buffer (3.2 -> 0.9 ms a layer on a prompt), and x^3 as two multiplications,
    because NumPy's float32 power is 20-60x slower (75 -> 3.2 ms a layer on a prompt).
    """
    inner = x * x
    inner *= x
    inner *= np.float32(0.044715)
    inner += x
    inner *= _GELU_C
    np.tanh(inner, out=inner)
    inner += np.float32(1.0)
    inner *= x
    inner *= np.float32(0.5)
    return inner


def layer_norm(x: np.ndarray, ln: LayerNorm, eps: float) -> np.ndarray:
    """Each position's C features to mean 0 and biased variance 1, then scaled and shifted.

    Speed: sums times 1/C instead of .mean() and np.var (which makes its own pass for the mean),
    then in place, with no new [B, T, C] arrays: 13 -> 7 us on one row, paid 25 times a step.
    """
    inv_C = np.float32(1 / x.shape[-1])
    centered = x - x.sum(axis=-1, keepdims=True) * inv_C
    var = (centered * centered).sum(axis=-1, keepdims=True) * inv_C  # biased, as in training
    centered /= np.sqrt(var + np.float32(eps))
    centered *= ln.weight
    centered += ln.bias
    return centered


def linear(x: np.ndarray, p: Linear) -> np.ndarray:
    """x @ weight + bias; GPT-2 stores weight as [in, out], so no transpose."""
    y = matmul_2d(x, p.weight)  # [..., in] -> [..., out]
    y += p.bias  # Speed: in place, no second [..., out] array
    return y


# Up to this many rows, a product is made one row at a time (see few_rows_product).
FEW_ROWS = 6


def matmul_2d(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x @ w with x flattened to 2-D first.

    Speed: the same product, but NumPy then makes one BLAS call instead of one per leading
    index: the 48 weight products of an 8-row step went from 27 to 17 ms.
    """
    x2 = x.reshape(-1, x.shape[-1])  # [..., in] -> [rows, in]
    y = few_rows_product(x2, w) if 2 <= len(x2) <= FEW_ROWS else x2 @ w
    return y.reshape(*x.shape[:-1], w.shape[-1])  # [rows, out] -> [..., out]


def few_rows_product(x2: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x2 @ w for a few rows (a beam step, a verify pass), one matrix-vector product per row.

    Speed: from 2 rows on, OpenBLAS copies ("packs") w before multiplying, and the copy costs
    more than the multiplying. A matrix-vector product reads w as it is; the first row brings
    w from memory, and the next rows find it still in the CPU's cache (gpt2's largest, c_fc,
    is 9.4 MB). The blocks' 48 products, measured on a 2-vCPU AMD EPYC (Zen 5): 4 rows 20 ->
    16 ms, 6 rows 28 -> 20 ms; from 8 rows on the packed product is faster again (17 ms).
    """
    y = np.empty((len(x2), w.shape[1]), np.float32)
    for i, row in enumerate(x2):
        np.matmul(row, w, out=y[i])  # [in] @ [in, out] -> [out]
    return y


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis. Speed: computed in x's own memory (x is overwritten and
    returned), since attention's [B, H, T, Tk] scores are large and not needed afterwards."""
    x -= x.max(axis=-1, keepdims=True)  # exp of at most 0: no overflow
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Scaled dot-product attention. `mask[.., t, j]` is 0 where query t may see key j and -inf
    where it may not, so adding it removes the forbidden keys from the softmax.

    Speed: scaling q (T x hs numbers) instead of the scores (T x Tk), adding a mask built once
    per forward instead of np.where in every layer, and the in-place softmax took one layer on
    a prompt from 15-24 ms to 7.5.
    """
    scale = np.float32(1.0 / np.sqrt(q.shape[-1]))  # a float32 scalar keeps float32 (NEP 50)
    scores = (q * scale) @ k.swapaxes(-1, -2)  # [B, H, T, hs] @ [B, H, hs, Tk] -> [B, H, T, Tk]
    scores += mask
    return softmax(scores) @ v  # [B, H, T, Tk] @ [B, H, Tk, hs] -> [B, H, T, hs]


QUERY_BLOCK = 64  # queries per block in causal_attention


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """attention(q, k, v, mask) for a causal mask, skipping the keys no query may see.

    Speed: the last T keys belong to the T queries, so query t sees none of the keys after its
    own, and half of a long prompt's [T, T] scores would be masked out. Taking the queries a
    block at a time, each block against only the keys up to its last query, skips most of that
    half: 7.5 -> 5 ms a layer on a prompt. One query (a decoding step) is one block: the plain
    `attention`.
    """
    T, Tk = q.shape[-2], k.shape[-2]
    if T <= QUERY_BLOCK:
        return attention(q, k, v, mask)
    out = np.empty(q.shape, np.float32)  # [B, H, T, hs]
    for start in range(0, T, QUERY_BLOCK):
        stop = min(start + QUERY_BLOCK, T)
        seen = Tk - T + stop  # keys up to the block's last query
        out[..., start:stop, :] = attention(
            q[..., start:stop, :], k[..., :seen, :], v[..., :seen, :], mask[..., start:stop, :seen]
        )
    return out


def split_heads(x: np.ndarray, n_head: int) -> np.ndarray:
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).transpose(0, 2, 1, 3)  # -> [B, H, T, hs]


def merge_heads(x: np.ndarray) -> np.ndarray:
    B, H, T, hs = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * hs)  # [B, H, T, hs] -> [B, T, C]


def causal_self_attention(
    x: np.ndarray,
    block: Block,
    n_head: int,
    mask: np.ndarray,
    cache: KVCache | None = None,
    layer: int = 0,
    last_only: bool = False,
) -> np.ndarray:
    """Each position attends to the positions `mask` allows: itself and earlier ones.

    `last_only`: every position's key and value still go to the cache, but only the last
    position's output is computed and returned ([B, 1, C]).
    """
    C = x.shape[-1]
    qkv = linear(x, block.attn.c_attn)  # [B, T, C] -> [B, T, 3C]
    q, k, v = (split_heads(qkv[..., i * C : (i + 1) * C], n_head) for i in range(3))
    if cache is not None:  # Speed: the KV cache. Earlier calls' keys and values, not recomputed
        k, v = cache.store(layer, k, v)
    if last_only:
        q, mask = q[..., -1:, :], mask[..., -1:, :]  # [B, H, T, hs] -> [B, H, 1, hs]
    out = causal_attention(q, k, v, mask)
    return linear(merge_heads(out), block.attn.c_proj)  # [B, T, C] -> [B, T, C]


def mlp(x: np.ndarray, block: Block) -> np.ndarray:
    h = gelu(linear(x, block.mlp.c_fc))  # [B, T, C] -> [B, T, 4C]
    return narrowing_linear(h, block.mlp.c_proj)  # [B, T, 4C] -> [B, T, C]


def narrowing_linear(x: np.ndarray, p: Linear) -> np.ndarray:
    """linear(x, p) for a weight with many more inputs than outputs (the MLP's c_proj: 4C -> C)."""
    y = narrowing_matmul(x, p.weight)  # [..., in] -> [..., out]
    y += p.bias
    return y


def narrowing_matmul(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """matmul_2d(x, w), for a w of [in, out] with in much larger than out.

    Speed: for a few rows, a matrix-vector product by the weight stored [out, in] (each output
    a dot product with one contiguous row) beats the file's [in, out] on such a weight: gpt2's
    12 c_proj for one row 4.1 -> 3.3 ms, for 4 rows 7.4 -> 6.8, on a 2-vCPU AMD EPYC (Zen 4);
    a greedy step 18.3 -> 16.3 ms. So up to FEW_ROWS rows use a transposed copy (made once by
    transposed_copy, which gives back the file's pages it copied: 113 MB for gpt2); more rows
    keep the file's layout, which OpenBLAS's packed product reads faster (8 rows: 8.1 against
    10.0 ms).
    """
    x2 = x.reshape(-1, x.shape[-1])  # [..., in] -> [rows, in]
    if len(x2) > FEW_ROWS:
        return matmul_2d(x, w)
    rows_major = transposed_copy(w)  # [in, out] -> [out, in]
    y = np.empty((len(x2), rows_major.shape[0]), np.float32)
    for i, row in enumerate(x2):
        np.matmul(rows_major, row, out=y[i])  # [out, in] @ [in] -> [out]
    return y.reshape(*x.shape[:-1], -1)  # [rows, out] -> [..., out]


def transformer_block(
    x: np.ndarray,
    block: Block,
    config: GPT2Config,
    mask: np.ndarray,
    cache: KVCache | None = None,
    layer: int = 0,
    last_only: bool = False,
) -> np.ndarray:
    """Pre-LayerNorm residual block: x + attn(ln_1(x)), then + mlp(ln_2(x)).

    `last_only` (the last block, when only the last logits are wanted): the output is the
    last position's alone, [B, 1, C]; the other positions only add their keys to the cache.
    """
    eps = config.layer_norm_epsilon
    attn = causal_self_attention(
        layer_norm(x, block.ln_1, eps), block, config.n_head, mask, cache, layer, last_only
    )
    x = (x[:, -1:] if last_only else x) + attn
    return x + mlp(layer_norm(x, block.ln_2, eps), block)


def gpt2_forward(
    params: GPT2Params,
    config: GPT2Config,
    ids: np.ndarray,
    cache: KVCache | None = None,
    last_only: bool = False,
) -> np.ndarray:
    """Logits [B, T, V] of the token after each position of `ids` [B, T].

    With a cache, `ids` are the tokens that follow what the cache holds (row b continues at
    position cache.lengths[b]) and the cache is extended by them. `last_only` returns just the
    last position's logits [B, 1, V]. Speed: that is all a decoder needs from a prompt, and it
    cuts a prompt's vocabulary projection from 170-190 ms to 4-7 ms, plus the last block's
    work on the other positions.
    """
    B, T = ids.shape
    past = np.zeros(B, np.int64) if cache is None else cache.lengths
    positions = past[:, None] + np.arange(T)  # [B, T]
    if positions.max() >= config.n_positions:
        raise MiniGPTError(
            f"sequence of {positions.max() + 1} tokens is longer than the model's "
            f"context of {config.n_positions}; shorten the prompt or max_new_tokens"
        )
    x = params.wte[ids] + params.wpe[positions]  # [B, T] -> [B, T, C]
    # Speed: the causal mask, built once for every layer: query t sees key j iff j <= t's
    # position. Rows of a cached batch may sit at different positions, hence [B, 1, T, Tk].
    key_positions = np.arange(positions.max() + 1)  # [Tk]: every key attended to
    allowed = key_positions <= positions[:, None, :, None]  # [B, 1, T, Tk]
    mask = np.where(allowed, np.float32(0), np.float32(-np.inf))  # added to the scores
    for layer, block in enumerate(params.h):
        last = last_only and layer == config.n_layer - 1  # the last block's other outputs go unused
        x = transformer_block(x, block, config, mask, cache, layer, last)
    if cache is not None:
        cache.advance(T)
    x = layer_norm(x, params.ln_f, config.layer_norm_epsilon)
    return head(x, params)  # [B, T, C] -> [B, T, V]


def head(x: np.ndarray, params: GPT2Params) -> np.ndarray:
    """The vocabulary projection: x @ lm_head.T, [..., C] @ [C, V] -> [..., V]."""
    columns = head_columns(params.lm_head)  # lm_head.T as its own [C, V] array
    rows = x.size // x.shape[-1]
    if 2 <= rows <= FEW_ROWS:
        return few_rows_head(x, columns)
    return matmul_2d(x, columns)


HEAD_BLOCK = 2048  # vocabulary columns per block of few_rows_head: 6.3 MB of gpt2's head


def few_rows_head(x: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """The head for a few rows, a block of the vocabulary at a time, row by row.

    Speed: as few_rows_product, but the head (154 MB for gpt2) does not fit in a cache, so it
    is read in blocks of HEAD_BLOCK vocabulary columns, each multiplied by every row of x while
    it is in the cache. Measured on a 2-vCPU AMD EPYC (Zen 4), against one packed product:
    2 rows 10.2 -> 6.5 ms, 4 rows 10.4 -> 8.8, 6 rows 12.7 -> 10.9 (one row: 3.9 ms); blocks
    of 1024 or 4096 columns took 0.5-1 ms more.
    """
    x2 = x.reshape(-1, x.shape[-1])  # [..., C] -> [rows, C]
    V = columns.shape[1]
    y = np.empty((len(x2), V), np.float32)
    for start in range(0, V, HEAD_BLOCK):
        block = columns[:, start : start + HEAD_BLOCK]  # [C, b], a strided view
        for i, row in enumerate(x2):
            np.matmul(row, block, out=y[i, start : start + HEAD_BLOCK])  # [C] @ [C, b] -> [b]
    return y.reshape(*x.shape[:-1], V)  # [rows, V] -> [..., V]


# Transposed copies of weights, made on first use: {id(weight): copy}.
_TRANSPOSED: dict[int, np.ndarray] = {}
COPY_BLOCK = 256  # rows of a weight per block of transposed_copy


def transposed_copy(w: np.ndarray) -> np.ndarray:
    """w.T as a C-contiguous array, made once per w and kept beside it (freed with it).

    The copy is made COPY_BLOCK rows of w at a time (Speed: the transposed read stays in the CPU's
    cache; 0.06 s for gpt2's head, 0.12 in blocks of 4096), and the mapped file's pages of
    each block are handed back to the OS as it is copied (safetensors_file.release_pages):
    the fast path reads the copy from then on, so the weight is in memory once, not twice.
    Should w itself be read again (narrowing_matmul for many rows), its pages come back
    from the file.
    """
    key = id(w)
    copy = _TRANSPOSED.get(key)
    if copy is None:
        copy = np.empty(w.shape[::-1], np.float32)
        for start in range(0, len(w), COPY_BLOCK):
            rows = w[start : start + COPY_BLOCK]  # [b, n]
            copy[:, start : start + COPY_BLOCK] = rows.T  # [b, n] -> [n, b]
            release_pages(rows)
        _TRANSPOSED[key] = copy
        weakref.finalize(w, _TRANSPOSED.pop, key, None)
    return copy


def head_columns(lm_head: np.ndarray) -> np.ndarray:
    """lm_head.T [C, V], C-contiguous: the head's operand for any number of rows.

    Speed: the file stores the head as [V, C] (it is wte, the embeddings), and x @ lm_head.T
    multiplies by a transposed view of it. OpenBLAS is faster on the copy for any number of
    rows. One row (every greedy step): 5.1 -> 3.9 ms on a 2-vCPU AMD EPYC of family 25 (Zen 4,
    SkylakeX kernels; an earlier, loaded machine measured 3.8 ms either way). From 2 rows
    on, the matrix-matrix product repacks the view (the strided `sgemm_incopy`) on every call
    and packs the copy about twice as fast: 22-37 -> 11-23 ms for 2-8 rows.
    Memory: only the copy is read, so the file's pages of the head are given back and the
    head is in memory once (154 MB for gpt2), not twice.
    """
    return transposed_copy(lm_head)
