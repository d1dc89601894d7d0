"""GPT-2's forward pass as the formulas are written: no cache, no speed tricks, one formula a line.

Read this file first. `forward_fast.py` computes the same logits (tests/test_forward_textbook.py
holds the two within float32 rounding of each other) but rewrites these lines for speed.
Parameters carry their checkpoint names: `h.attn.c_attn.weight` below is the tensor
`h.0.attn.c_attn.weight` of model.safetensors for the first block. B = rows of the batch,
T = tokens, C = n_embd, V = vocab size. Every array stays float32: Python floats (math.sqrt,
not np.sqrt, whose float64 result would widen the arrays under NumPy 2's rules) keep it so.
"""

from __future__ import annotations

import math

import numpy as np

from minigpt.config import GPT2Config
from minigpt.weights import MLP, Attention, Block, GPT2Params, LayerNorm, Linear


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU's tanh approximation, the one GPT-2 was trained with (not the exact erf form)."""
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))  # the shift cancels out; exp cannot overflow
    return e / e.sum(axis=-1, keepdims=True)


def layer_norm(x: np.ndarray, ln: LayerNorm, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)  # [B, T, C] -> [B, T, 1]
    var = x.var(axis=-1, keepdims=True)  # [B, T, C] -> [B, T, 1], biased (/ C) as in training
    return (x - mean) / np.sqrt(var + eps) * ln.weight + ln.bias


def linear(x: np.ndarray, p: Linear) -> np.ndarray:
    return x @ p.weight + p.bias  # [B, T, in] -> [B, T, out]: GPT-2 stores weight as [in, out]


def attention(x: np.ndarray, attn: Attention, n_head: int) -> np.ndarray:
    """Causal self-attention: each position takes a weighted mean of its own and earlier values,
    n_head times over, each head on its own head_size slice of the features."""
    B, T, C = x.shape
    head_size = C // n_head
    q, k, v = np.split(linear(x, attn.c_attn), 3, axis=-1)  # [B, T, C] -> 3 x [B, T, C]
    q = q.reshape(B, T, n_head, head_size).swapaxes(1, 2)  # [B, T, C] -> [B, n_head, T, head_size]
    k = k.reshape(B, T, n_head, head_size).swapaxes(1, 2)  # [B, T, C] -> [B, n_head, T, head_size]
    v = v.reshape(B, T, n_head, head_size).swapaxes(1, 2)  # [B, T, C] -> [B, n_head, T, head_size]
    scores = q @ k.swapaxes(2, 3) / math.sqrt(head_size)  # q k^T: -> [B, n_head, T, T]
    scores = np.where(np.tri(T, dtype=bool), scores, -np.inf)  # query t sees keys 0..t only
    out = softmax(scores) @ v  # [B, n_head, T, T] @ v -> [B, n_head, T, head_size]
    out = out.swapaxes(1, 2).reshape(B, T, C)  # -> [B, T, n_head, head_size] -> [B, T, C]
    return linear(out, attn.c_proj)


def mlp(x: np.ndarray, p: MLP) -> np.ndarray:
    hidden = gelu(linear(x, p.c_fc))  # [B, T, C] -> [B, T, 4C]
    return linear(hidden, p.c_proj)  # [B, T, 4C] -> [B, T, C]


def block(x: np.ndarray, h: Block, config: GPT2Config) -> np.ndarray:
    """Layer norm before each half; each half adds its output to the residual stream x."""
    x = x + attention(layer_norm(x, h.ln_1, config.layer_norm_epsilon), h.attn, config.n_head)
    return x + mlp(layer_norm(x, h.ln_2, config.layer_norm_epsilon), h.mlp)


def gpt2_forward(params: GPT2Params, config: GPT2Config, ids: np.ndarray) -> np.ndarray:
    """Logits [B, T, V] of the token after each position of `ids` [B, T]."""
    T = ids.shape[-1]
    x = params.wte[ids] + params.wpe[np.arange(T)]  # [B, T] -> [B, T, C]
    for h in params.h:
        x = block(x, h, config)
    x = layer_norm(x, params.ln_f, config.layer_norm_epsilon)
    return x @ params.lm_head.T  # [B, T, C] -> [B, T, V]; GPT-2's lm_head is wte itself (tied)
