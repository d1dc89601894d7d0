"""Timers, and the matrix-product passes that bound a decoding step.

Every figure is the best of a few runs: the best run is the one the rest of the machine
disturbed least, so it is the one that says most about the code. `race` times several
contestants in turns, so that a burst of someone else's work lands on all of them.

The "bandwidth bound" is a pass of nothing but the matrix products of one decoding step. A step
must read every weight once, so no step can be faster than this pass.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from minigpt import forward_fast


def timed(run: Callable[[], object], repeats: int) -> float:
    """The best of `repeats` timed calls of `run()`."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        runs.append(time.perf_counter() - start)
    return min(runs)


def timed_mean(run: Callable[[], object], repeats: int) -> float:
    """The mean time of `repeats` calls of `run()` in a row.

    Unlike `timed`, this keeps the slow calls: a run of calls pays for every hiccup.
    """
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


# Seconds a turn waits before it starts, in a race with HF. After a call, OpenBLAS's threads
# wait for the next one by spinning for about 0.1 s: with the main thread asleep right after a
# product, the process still used 0.10 s of CPU. On 2 cores that took a core from whoever
# ran next: HF's 512-token prefill took 742 ms (median of 15) right after minigpt's and 673 ms
# 0.3 s later, while minigpt's took 642 and 635 after HF's (torch's threads stop sooner).
SETTLE_S = 0.2


def race(contestants: dict, repeats: int, min_seconds: float = 0.0, settle_s: float = 0.0) -> dict:
    """Warm each contestant up once, then time them in turns for `repeats` rounds, and for more
    rounds while fewer than `min_seconds` have passed.

    contestants: {name: (run, warmup)}. Taking turns keeps the ratios fair on a shared machine:
    a burst of someone else's work lands on both sides, not on one. `min_seconds` is for
    contestants that take milliseconds: three rounds of them fit inside one burst, and then
    even the best of each is slow. `settle_s`: a pause before every timed turn, so that the
    previous turn's idle threads have stopped spinning (SETTLE_S). Returns per name
    {"best": s, "median": s, "runs": [s, ...], "results": what each run returned}.
    """
    for _, warmup in contestants.values():
        warmup()
    runs = {name: [] for name in contestants}
    results = {name: [] for name in contestants}
    began, rounds = time.perf_counter(), 0
    while rounds < repeats or time.perf_counter() - began < min_seconds:
        for name, (run, _) in contestants.items():
            time.sleep(settle_s)
            start = time.perf_counter()
            results[name].append(run())
            runs[name].append(time.perf_counter() - start)
        rounds += 1
    return {
        name: {"best": min(r), "median": statistics.median(r), "runs": r, "results": results[name]}
        for name, r in runs.items()
    }


def weight_products(params) -> list[tuple[Callable, np.ndarray]]:
    """Every matrix a decoding step multiplies by, as stored ([in, out], 4 per layer), with
    the product the model uses for it (the MLP's c_proj has its own, see narrowing_matmul)."""
    products = []
    for block in params.h:
        products += [(forward_fast.matmul_2d, block.attn.c_attn.weight)]
        products += [(forward_fast.matmul_2d, block.attn.c_proj.weight)]
        products += [(forward_fast.matmul_2d, block.mlp.c_fc.weight)]
        products += [(forward_fast.narrowing_matmul, block.mlp.c_proj.weight)]
    return products


def weight_matrices(params) -> list[np.ndarray]:
    """Every matrix a decoding step multiplies by, as stored: 4 per layer, [in, out]."""
    return [w for _, w in weight_products(params)]


def weight_bytes(params) -> int:
    """The bytes one pass reads: the blocks' matrices and the head."""
    return sum(w.nbytes for w in weight_matrices(params)) + params.lm_head.nbytes


def matmul_pass(params, rows: int = 1) -> Callable[[], None]:
    """One step's matrix products over every weight, for `rows` rows at once (no attention,
    layer norm, bias or Python around them).

    Returns a function doing one such pass. Inputs are constant and outputs thrown away: only
    the weights' bytes matter. Each weight is read from memory once, so the time of a one-row
    pass is the floor under a decoding step's: the bandwidth bound. With more rows (beam
    search, a batch of samples) the same bytes are read; what a pass costs beyond the one-row
    pass is the BLAS's own cost of multiplying several rows.
    """
    products = weight_products(params)
    x = {n: np.full((rows, n), 0.01, np.float32) for n in {w.shape[0] for _, w in products}}
    C = params.lm_head.shape[1]

    def one_pass():
        # The model's own products: one BLAS call, or a few rows one at a time, as it does.
        for product, w in products:
            product(x[w.shape[0]], w)  # [rows, in] @ [in, out]
        forward_fast.head(x[C], params)  # [rows, C] -> [rows, V], as the model does for `rows`

    return one_pass
