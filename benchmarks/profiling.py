"""--profile: where greedy, beam search and batched sampling spend their time, part by part.

cProfile times every Python function call; `PARTS` sums those times into the model's parts
(layer norm, attention, the KV cache ...). Each part names its functions by reference, the
function objects themselves, never by their names as strings. So renaming one in minigpt
breaks this module at import, with an AttributeError, instead of quietly printing 0 ms on its
row; and a function that still exists but is no longer called makes `profile_decoders` fail,
because every function in `PARTS` must run at least once.

NumPy's operators (@, +, *) are not Python calls, so their time lands in the function that uses
them: `linear`'s time is the four weight products plus the bias adds.
"""

from __future__ import annotations

import cProfile
import time

from benchmarks.workloads import Prompts, our_beam, our_greedy, our_sampling
from minigpt import forward_fast as fast
from minigpt.adapter import NextTokenLogits
from minigpt.gpt2 import GPT2
from minigpt.kv_cache import KVCache

OWN, ALL = "own", "all"  # a function's time in its own lines; or with the functions it calls
ADAPTER_CALL = NextTokenLogits.__call__  # everything the model does for a decoder is under it

# Each row of the breakdown: its label and the times it adds (+1) or takes away (-1).
PARTS = [
    ("matmuls c_attn/c_proj/c_fc/c_proj + bias",
     [(+1, ALL, fast.linear), (+1, ALL, fast.narrowing_linear)]),
    ("embeddings, mask (gpt2_forward itself)", [(+1, OWN, fast.gpt2_forward)]),
    ("layer_norm", [(+1, ALL, fast.layer_norm)]),
    # causal_attention's own time is stitching a long prompt's query blocks together.
    ("attention (scores, mask, softmax, @v)",
     [(+1, ALL, fast.attention), (+1, OWN, fast.causal_attention)]),
    ("gelu", [(+1, ALL, fast.gelu)]),
    ("kv cache store", [(+1, ALL, KVCache.store)]),
    ("kv cache reorder (beam copies)", [(+1, ALL, KVCache.reorder)]),
    ("split/merge heads", [(+1, ALL, fast.split_heads), (+1, ALL, fast.merge_heads)]),
    ("block glue (split qkv, residuals)",
     [(+1, OWN, fast.causal_self_attention), (+1, OWN, fast.transformer_block),
      (+1, OWN, fast.mlp)]),
    # head: one row or many through matmul_2d, a few rows in blocks (few_rows_head).
    ("lm_head matmul", [(+1, ALL, fast.head)]),
    ("GPT2.forward checks (check_ids ...)",
     [(+1, ALL, GPT2.forward), (-1, ALL, fast.gpt2_forward)]),
    ("adapter bookkeeping (prefix match, rows)",
     [(+1, ALL, ADAPTER_CALL), (-1, ALL, GPT2.forward), (-1, ALL, KVCache.reorder)]),
]  # fmt: skip
DECODER = "decoder (log_softmax, top-k, lists ...)"  # the whole run minus the adapter's calls
PROFILED = {function for _, terms in PARTS for _, _, function in terms}


def profile_run(run, steps: int) -> tuple[dict, set]:
    """Seconds per part of one run of `run()` under cProfile (which slows Python calls a little).

    Returns ({"total_s", "steps", "parts_s": {label: s}}, the functions of PARTS that ran).
    """
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(run)
    total = time.perf_counter() - start
    # One entry per function that ran; `code` is the function's code object itself.
    entries = {e.code: e for e in profiler.getstats() if e.callcount > 0}

    def seconds(kind: str, function) -> float:
        entry = entries.get(function.__code__)
        if entry is None:
            return 0.0
        return entry.inlinetime if kind == OWN else entry.totaltime

    parts = {
        label: sum(sign * seconds(kind, function) for sign, kind, function in terms)
        for label, terms in PARTS
    }
    parts[DECODER] = total - seconds(ALL, ADAPTER_CALL)
    ran = {function for function in PROFILED if function.__code__ in entries}
    return {"total_s": total, "steps": steps, "parts_s": parts}, ran


def check_every_part_ran(ran: set) -> None:
    """Fail if a profiled function never ran: its row would read 0 ms and look like news."""
    missing = sorted(f"{f.__module__}.{f.__qualname__}" for f in PROFILED - ran)
    if missing:
        raise RuntimeError(
            f"--profile: {', '.join(missing)} never ran in any decoder; renamed, replaced or "
            "no longer called? Point PARTS in benchmarks/profiling.py at what runs now"
        )


def profile_decoders(model, args, prompts: Prompts) -> dict:
    """Where greedy, beam search and batched sampling spend their time (weights already warm)."""
    n, beams, beam_n = args.new_tokens, args.num_beams, args.beam_new_tokens
    sample_n = min(n, 32)  # batched sampling is the slowest run: a shorter one shows the same
    runs = {
        f"greedy, 1 x {n} tokens": (lambda: our_greedy(model, prompts.one, n), n),
        f"beam search, {beams} beams x {beam_n} steps": (
            lambda: our_beam(model, prompts.one, beams, beam_n),
            beam_n,
        ),
        f"sampling, {len(prompts.batch)} prompts x {sample_n} tokens": (
            lambda: our_sampling(model, prompts.batch, sample_n),
            sample_n,
        ),
    }
    profiles, ran = {}, set()
    for name, (run, steps) in runs.items():
        profiles[name], ran_here = profile_run(run, steps)
        ran |= ran_here
    check_every_part_ran(ran)
    return profiles
