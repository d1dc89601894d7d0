"""From logits to probabilities: softmax and log_softmax, float32 and -inf aware; and
`largest`, the ranking every decoder and the recorder share.

A removed token (logit -inf, as every warper leaves it) gets probability 0 and log-probability
-inf. A row where *every* entry is -inf has no distribution at all; we raise rather than
return NaNs that would surface three functions later.
"""

from __future__ import annotations

import numpy as np


def _shifted(logits: np.ndarray, axis: int) -> np.ndarray:
    """Subtract the row maximum so exp() cannot overflow (the result is unchanged)."""
    x = np.asarray(logits, dtype=np.float32)
    row_max = np.max(x, axis=axis, keepdims=True)
    if np.isnan(row_max).any():  # a NaN anywhere in a row makes that row's max NaN
        raise ValueError("logits contain NaN: check the model output or the processors")
    if np.isneginf(row_max).any():
        raise ValueError("every logit in a row is -inf: no token is left to choose from")
    return x - row_max  # the max entry becomes 0, -inf entries stay -inf


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities along `axis`, float32.

    >>> softmax(np.array([0.0, np.log(3.0), -np.inf])).round(2).tolist()
    [0.25, 0.75, 0.0]
    """
    e = np.exp(_shifted(logits, axis))  # exp(-inf) = 0: removed tokens get no mass
    e /= np.sum(e, axis=axis, keepdims=True)  # Speed: in place, no second [B, V] array
    return e


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Log-probabilities along `axis`, float32: x - max - log(sum(exp(x - max))).

    Computed directly, not as log(softmax(x)), so a tiny probability keeps its precision
    instead of rounding to log(0) = -inf.

    >>> bool(np.allclose(log_softmax(np.array([0.0, 0.0])), np.log(0.5)))
    True
    """
    z = _shifted(logits, axis)
    z -= np.log(np.sum(np.exp(z), axis=axis, keepdims=True))  # Speed: in place, as softmax
    return z


SAMPLE_STRIDE = 16  # kth_largest first looks at every 16th value of a row


def kth_largest(x: np.ndarray, k: int) -> np.ndarray:
    """The k-th largest value of each row, shape [..., 1]; k >= V gives the smallest.

    >>> kth_largest(np.array([[1.0, 3.0, 2.0, 3.0]]), 2).tolist()
    [[3.0]]

    Speed: np.partition of whole rows costs 0.27 ms a row of gpt2's 50257 logits; this takes
    0.04 (top-k 50 on 8 rows: 2.2 -> 0.34 ms), and finds the same value. `low`, the k-th
    largest of every SAMPLE_STRIDE-th value, is at most the row's k-th largest (the row holds
    those k values too), so the values >= low are the row's largest ones, k or more of them,
    and their k-th largest is the row's. Only these few hundred are partitioned.
    """
    V = x.shape[-1]
    k = min(k, V)
    rows = x.reshape(-1, V)  # [..., V] -> [rows, V]
    if len(rows) == 0 or k > V // SAMPLE_STRIDE // 4:  # small rows or large k: no gain
        return np.partition(x, -k, axis=-1)[..., -k, None]
    low = np.partition(rows[:, ::SAMPLE_STRIDE], -k, axis=-1)[:, -k, None]  # [rows, 1]
    above = rows >= low  # [rows, V]: each row's k or more largest values
    kth = np.array([np.partition(row[keep], -k)[-k] for row, keep in zip(rows, above)])
    return kth.astype(x.dtype).reshape(*x.shape[:-1], 1)


def largest(values: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest values of a 1-D array, largest first, ties to the lower index.

    The same order as a stable argsort of -values, without sorting all of them (a beam step
    ranks K * 50257 numbers to keep 2K).

    >>> largest(np.array([1.0, 3.0, 2.0, 3.0]), 3).tolist()
    [1, 3, 2]
    """
    n = min(n, values.size)
    if n <= 0:
        return np.array([], dtype=np.int64)
    nth = kth_largest(values, n)[0]  # the n-th largest value
    best = np.flatnonzero(values >= nth)  # every index at least that large, in index order
    return best[np.argsort(-values[best], kind="stable")][:n]
