"""How fast is minigpt? Side by side with Hugging Face transformers, in one run, on one machine.

On a random checkpoint of the full gpt2 (124M) shape (built once into weights/random-gpt2/ by
weights/scripts/make_random.py), this measures greedy, beam search, batched sampling, prefill,
load time and peak memory for minigpt and, when torch + transformers are installed, for HF's
GPT2LMHeadModel loaded from the same file with the same number of threads. Two figures are
for learners: how much the KV cache saves over recomputing the whole sequence every token, and
the "bandwidth bound": one token's matrix products over every weight and nothing else, the
time a decoding step cannot beat because it must read every weight once.

    .venv/bin/python benchmarks/bench_generate.py            # the table (about 3 minutes, 2 cores)
    .venv/bin/python benchmarks/bench_generate.py --json     # a dict for machines
    .venv/bin/python benchmarks/bench_generate.py --profile  # + where the decoders spend time

Every figure is the best of --repeats runs after a warm-up, minigpt and HF taking turns, so
a burst of other work lands on both sides. Tokens come from the decoders' real path:
`decoding.greedy_search` etc. over `minigpt.NextTokenLogits`, exactly what a user runs. On a
machine busy with other jobs, more threads than idle cores makes both sides several times
slower (BLAS threads wait for each other at every call): compare with --threads 1 there.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = ROOT / "weights" / "random-gpt2"
MB = 1e6


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=DEFAULT_CHECKPOINT,
        help="model directory; the default is built with --preset gpt2 if missing",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads for NumPy's BLAS and for torch (default: every CPU)",
    )
    p.add_argument("--repeats", type=int, default=3, help="timed runs per figure; best is kept")
    p.add_argument("--prompt-tokens", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=128, help="greedy, sampling, uncached")
    p.add_argument("--beam-new-tokens", type=int, default=32)
    p.add_argument("--num-beams", type=int, default=4)
    p.add_argument("--batch", type=int, default=8, help="prompts sampled at once")
    p.add_argument("--prefill-tokens", type=int, default=512)
    p.add_argument("--no-hf", action="store_true", help="skip transformers even if installed")
    p.add_argument("--json", action="store_true", help="print a JSON dict instead of the table")
    p.add_argument("--profile", action="store_true", help="also profile the decoders (+1 min)")
    # Internal: measure_in_child runs this script again with --child to measure in a fresh process.
    p.add_argument("--child", choices=["minigpt", "hf"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def limit_threads(n: int) -> None:
    """BLAS libraries read their thread count once, when loaded: set it before importing numpy."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


if __name__ == "__main__":
    ARGS = parse_args()
    limit_threads(ARGS.threads)

import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(ROOT))  # run from anywhere, installed or not
import minigpt  # noqa: E402
from decoding import beam_search, greedy_search, sample  # noqa: E402

# ----------------------------------------------------------------------------- timing


def timed(run, repeats: int) -> float:
    """The best of `repeats` timed calls of `run()`."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        runs.append(time.perf_counter() - start)
    return min(runs)


def timed_mean(run, repeats: int) -> float:
    """The mean time of `repeats` calls of `run()` in a row."""
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


def race(contestants: dict, repeats: int) -> dict:
    """Warm each contestant up once, then time them in turns for `repeats` rounds.

    contestants: {name: (run, warmup)}. Taking turns keeps the ratios fair on a shared machine:
    a burst of someone else's work lands on both sides, not on one. Returns per name
    {"best": s, "median": s, "runs": [s, ...], "results": what each run returned}.
    """
    for _, warmup in contestants.values():
        warmup()
    runs = {name: [] for name in contestants}
    results = {name: [] for name in contestants}
    for _ in range(repeats):
        for name, (run, _) in contestants.items():
            start = time.perf_counter()
            results[name].append(run())
            runs[name].append(time.perf_counter() - start)
    return {
        name: {"best": min(r), "median": statistics.median(r), "runs": r, "results": results[name]}
        for name, r in runs.items()
    }


_STARTED = time.perf_counter()


def progress(stage: str) -> None:
    """One line on stderr per stage, so a slow machine shows where it is (stdout stays clean)."""
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {stage}", file=sys.stderr, flush=True)


def peak_rss_bytes() -> int:
    """The most resident memory this process has had.

    Linux: VmHWM of /proc/self/status. Not getrusage's ru_maxrss, which a child started by
    fork + exec inherits from its parent: a child of this big process would report our peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # macOS: bytes, others: KiB
    return peak if sys.platform == "darwin" else peak * 1024


# ----------------------------------------------------------------------------- inputs


def ensure_checkpoint(path: Path) -> Path:
    """Build the random gpt2-shaped checkpoint the first time (about 550 MB, a few seconds)."""
    if not (path / "model.safetensors").exists():
        script = ROOT / "weights" / "scripts" / "make_random.py"
        print(f"building {path} with {script.name} --preset gpt2 ...", file=sys.stderr)
        subprocess.run([sys.executable, str(script), str(path), "--preset", "gpt2"], check=True)
    return path


def random_prompts(n: int, length: int, vocab_size: int, seed: int = 0) -> list[list[int]]:
    """n prompts of equal length (so HF needs no padding), fixed by the seed."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, vocab_size, (n, length)).tolist()


# ----------------------------------------------------------------------------- minigpt


def our_greedy(model, prompt: list[int], n: int) -> list[int]:
    """Greedy through the real path: a fresh adapter (empty cache) and the decoder."""
    decoded = greedy_search(minigpt.NextTokenLogits(model), prompt, max_new_tokens=n)
    return decoded[0].best.new_ids


def our_uncached_greedy(model, prompt: list[int], n: int) -> list[int]:
    """The same decoder over the reference path: the whole sequence through the model each step."""

    def next_token_logits(sequences):
        return model.forward(np.array(sequences))[:, -1]  # [B, T, V] -> last position [B, V]

    return greedy_search(next_token_logits, prompt, max_new_tokens=n)[0].best.new_ids


def our_beam(model, prompt: list[int], beams: int, n: int) -> list[int]:
    decoded = beam_search(minigpt.NextTokenLogits(model), prompt, num_beams=beams, max_new_tokens=n)
    return decoded[0].best.new_ids


def our_sampling(model, prompts: list[list[int]], n: int) -> list[list[int]]:
    """Every prompt in one batch; top-k 50 as HF's default, the same on both sides."""
    rng = np.random.default_rng(0)
    decoded = sample(minigpt.NextTokenLogits(model), prompts, rng=rng, max_new_tokens=n, top_k=50)
    return [d.best.new_ids for d in decoded]


def our_prefill(model, prompt: list[int]) -> np.ndarray:
    """The adapter's first call on a long prompt: all but the last token in one forward."""
    return minigpt.NextTokenLogits(model)([prompt])


def weight_matrices(params) -> list[np.ndarray]:
    """Every matrix a decoding step multiplies by, as stored: 4 per layer, [in, out]."""
    mats = []
    for block in params.h:
        mats += [block.attn.c_attn.weight, block.attn.c_proj.weight]
        mats += [block.mlp.c_fc.weight, block.mlp.c_proj.weight]
    return mats


def matmul_pass(params, rows: int = 1):
    """One step's matrix products over every weight, for `rows` rows at once (no attention,
    layer norm, bias or Python around them).

    Returns a function doing one such pass. Inputs are constant and outputs thrown away: only
    the weights' bytes matter. Each weight is read from memory once, so the time of a one-row
    pass is the floor under a decoding step's: the bandwidth bound. With more rows (beam
    search, a batch of samples) the same bytes are read; what a pass costs beyond the one-row
    pass is the BLAS's own cost of multiplying several rows.
    """
    mats = weight_matrices(params)
    x = {n: np.full((rows, n), 0.01, np.float32) for n in {w.shape[0] for w in mats}}

    def one_pass():
        for w in mats:
            x[w.shape[0]] @ w  # [rows, in] @ [in, out]
        x[params.lm_head.shape[1]] @ params.lm_head.T  # [rows, C] @ [C, V], as the model does

    return one_pass


def weight_bytes(params) -> int:
    return sum(w.nbytes for w in weight_matrices(params)) + params.lm_head.nbytes


def minigpt_runs(model, args, prompts: dict) -> dict:
    """{figure: (run, warmup)} for minigpt; the warm-ups are short runs of the same path."""
    one, batch, beams = prompts["one"], prompts["batch"], args.num_beams
    n, beam_n = args.new_tokens, args.beam_new_tokens
    return {
        "greedy": (lambda: our_greedy(model, one, n), lambda: our_greedy(model, one, 2)),
        "beam": (
            lambda: our_beam(model, one, beams, beam_n),
            lambda: our_beam(model, one, beams, 2),
        ),
        "sampling": (lambda: our_sampling(model, batch, n), lambda: our_sampling(model, batch, 2)),
        "prefill": (lambda: our_prefill(model, prompts["long"]),) * 2,
    }


# ----------------------------------------------------------------------------- HF transformers


def hf_available() -> bool:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def load_hf(path: Path, threads: int):
    import torch
    import transformers

    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers.GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32).eval()


def hf_generate(hf, prompts: list[list[int]], n: int, **options) -> list[list[int]]:
    """HF generate with EOS disabled, so it runs all n steps as ours does; new ids per prompt."""
    import torch

    ids = torch.tensor(prompts)
    out = hf.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=n,
        eos_token_id=None,
        pad_token_id=0,
        **options,
    )
    if out.shape[1] != ids.shape[1] + n:
        raise RuntimeError(f"HF generated {out.shape[1] - ids.shape[1]} tokens, not {n}")
    return out[:, ids.shape[1] :].tolist()


def hf_prefill(hf, prompt: list[int]):
    """One forward over the prompt keeping only the last logits, as generate's first step."""
    import torch

    with torch.inference_mode():
        return hf(torch.tensor([prompt]), use_cache=True, logits_to_keep=1).logits


def hf_runs(hf, args, prompts: dict) -> dict:
    """{figure: (run, warmup)} for HF generate, the same workloads as minigpt_runs."""
    one, batch, beams = [prompts["one"]], prompts["batch"], args.num_beams
    n, beam_n = args.new_tokens, args.beam_new_tokens

    def greedy(k):
        return hf_generate(hf, one, k, do_sample=False)[0]

    def beam(k):
        return hf_generate(hf, one, k, do_sample=False, num_beams=beams)[0]

    def sampling(k):
        return hf_generate(hf, batch, k, do_sample=True, top_k=50, top_p=1.0)

    return {
        "greedy": (lambda: greedy(n), lambda: greedy(2)),
        "beam": (lambda: beam(beam_n), lambda: beam(2)),
        "sampling": (lambda: sampling(n), lambda: sampling(2)),
        "prefill": (lambda: hf_prefill(hf, prompts["long"]),) * 2,
    }


def measure(model, hf, args, prompts: dict) -> dict:
    """Race minigpt against HF (when loaded) figure by figure; the bound races with greedy.

    Returns {"minigpt": {...}, "hf": {...} or None, "bound": {...}, "checks": {...}}.
    """
    ours = minigpt_runs(model, args, prompts)
    theirs = hf_runs(hf, args, prompts) if hf else {}
    # The matrix products alone for as many rows as each decoder runs at once: a best-of-10
    # pass per round, next to the runs it bounds.
    passes = {
        "greedy": matmul_pass(model.params),
        "beam": matmul_pass(model.params, args.num_beams),
        "sampling": matmul_pass(model.params, len(prompts["batch"])),
    }
    timings = {}
    for figure in ours:
        progress(f"{figure}: minigpt" + (" and HF, in turns" if hf else ""))
        contestants = {"minigpt": ours[figure], **({"hf": theirs[figure]} if hf else {})}
        if figure in passes:
            one_pass = passes[figure]
            contestants["bound"] = (lambda p=one_pass: timed(p, 10), one_pass)
        if figure == "greedy":  # as many passes in a row as greedy makes tokens: their mean
            contestants["sustained"] = (lambda p=one_pass: timed_mean(p, args.new_tokens), one_pass)
        timings[figure] = race(contestants, args.repeats)
    progress("minigpt uncached reference path (once: it is slow)")
    one, n = prompts["one"], args.new_tokens
    timings["uncached"] = race(
        {"minigpt": (lambda: our_uncached_greedy(model, one, n), lambda: None)}, 1
    )
    units = {
        "greedy": n,
        "beam": args.beam_new_tokens,
        "sampling": len(prompts["batch"]) * n,
        "prefill": len(prompts["long"]),
        "uncached": n,
    }
    return summarize(timings, units, weight_bytes(model.params), with_hf=bool(hf))


# The JSON name of each figure: runs per second in the unit that figure counts.
KEYS = {
    "greedy": "greedy_tok_s",
    "beam": "beam_steps_s",
    "sampling": "sampling_tok_s",
    "prefill": "prefill_tok_s",
    "uncached": "uncached_tok_s",
}


def summarize(timings: dict, units: dict, bytes_read: int, with_hf: bool) -> dict:
    """Times of the races -> throughputs, the bound, and the checks that both sides agreed."""

    def figures(side: str) -> dict:
        out = {KEYS[f]: units[f] / timings[f][side]["best"] for f in timings if side in timings[f]}
        out["greedy_s"] = timings["greedy"][side]["best"]
        out["greedy_ms"] = 1e3 * out["greedy_s"] / units["greedy"]
        out["greedy_median_s"] = timings["greedy"][side]["median"]
        return out

    def last(figure: str, side: str = "minigpt"):
        return timings[figure][side]["results"][-1]

    bound_s = min(timings["greedy"]["bound"]["results"])  # each result: a best-of-10 pass
    bound = {"s": bound_s, "weight_bytes": bytes_read, "gb_per_s": bytes_read / bound_s / 1e9}
    bound["sustained_s"] = min(timings["greedy"]["sustained"]["results"])
    for figure in ("beam", "sampling"):  # the same pass for the rows these decoders run
        bound[f"{figure}_pass_s"] = min(timings[figure]["bound"]["results"])
    checks = {
        "cached_equals_uncached": last("greedy") == last("uncached"),
        "beam_ran_all_steps": len(last("beam")) == units["beam"],
    }
    if with_hf:
        checks["greedy_equals_hf"] = last("greedy") == last("greedy", "hf")
    ours = figures("minigpt")
    ours["cached_speedup"] = timings["uncached"]["minigpt"]["best"] / ours["greedy_s"]
    theirs = figures("hf") if with_hf else None
    return {"minigpt": ours, "hf": theirs, "bound": bound, "checks": checks}


# ----------------------------------------------------------------------------- memory, load time


def child_main(args) -> None:
    """In a fresh process: load, time the first token, generate; print load time and peak RSS."""
    if args.child == "hf":
        hf_available()  # import torch + transformers now: their import is not load time
    rss_before = peak_rss_bytes()  # the interpreter and libraries, before any weight
    prompt = random_prompts(1, args.prompt_tokens, 50257)[0]
    start = time.perf_counter()
    if args.child == "minigpt":
        model = minigpt.load(args.checkpoint)
        loaded = time.perf_counter()
        prompt = [t % model.config.vocab_size for t in prompt]
        minigpt.NextTokenLogits(model)([prompt])
        first = time.perf_counter()
        our_greedy(model, prompt, args.new_tokens)
    else:
        hf = load_hf(args.checkpoint, args.threads)
        loaded = time.perf_counter()
        prompt = [t % hf.config.vocab_size for t in prompt]
        hf_prefill(hf, prompt)
        first = time.perf_counter()
        hf_generate(hf, [prompt], args.new_tokens, do_sample=False)
    figures = {
        "load_s": loaded - start,
        "first_token_s": first - start,
        "rss_before_load_bytes": rss_before,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    print(json.dumps(figures))


def measure_in_child(which: str, args) -> dict:
    """Run child_main in a new interpreter, so the other library's memory is not counted."""
    progress(f"{which} load time and peak RSS (fresh process)")
    command = [sys.executable, __file__, "--child", which, "--checkpoint", str(args.checkpoint)]
    command += ["--threads", str(args.threads), "--new-tokens", str(args.new_tokens)]
    command += ["--prompt-tokens", str(args.prompt_tokens)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{which} child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- profile


# (label, module file, function name, which time): "ct" includes callees, "tt" is its own time.
PROFILE_PARTS = [
    ("matmuls c_attn/c_proj/c_fc/c_proj + bias", "forward_fast.py", "linear", "ct"),
    ("embeddings, mask (gpt2_forward itself)", "forward_fast.py", "gpt2_forward", "tt"),
    ("layer_norm", "forward_fast.py", "layer_norm", "ct"),
    ("attention (scores, mask, softmax, @v)", "forward_fast.py", "attention", "ct"),
    ("attention (scores, mask, softmax, @v)", "forward_fast.py", "causal_attention", "tt"),
    ("gelu", "forward_fast.py", "gelu", "ct"),
    ("kv cache store", "kv_cache.py", "store", "ct"),
    ("kv cache reorder (beam copies)", "kv_cache.py", "reorder", "ct"),
    ("split/merge heads", "forward_fast.py", "split_heads", "ct"),
    ("split/merge heads", "forward_fast.py", "merge_heads", "ct"),
    ("block glue (split qkv, residuals)", "forward_fast.py", "causal_self_attention", "tt"),
    ("block glue (split qkv, residuals)", "forward_fast.py", "transformer_block", "tt"),
    ("block glue (split qkv, residuals)", "forward_fast.py", "mlp", "tt"),
]


def profile_run(run, steps: int) -> dict:
    """Seconds per part of one run of `run()` under cProfile (which slows Python calls a little).

    NumPy's operators (@, +, *) are not Python calls, so their time lands in the function
    that uses them: `linear` is the four weight matmuls plus bias adds.
    """
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(run)
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}

    def seconds(file: str, name: str, kind: str) -> float:
        hits = [v for (f, _, fn), v in stats.items() if f.endswith(file) and fn == name]
        return sum(v[2] if kind == "tt" else v[3] for v in hits)

    parts: dict[str, float] = {}
    for label, file, name, kind in PROFILE_PARTS:
        parts[label] = parts.get(label, 0.0) + seconds(file, name, kind)
    # The head's product runs in matmul_2d called by gpt2_forward; the weights' run inside linear.
    in_linear = seconds("forward_fast.py", "linear", "ct") - seconds(
        "forward_fast.py", "linear", "tt"
    )
    parts["lm_head matmul"] = seconds("forward_fast.py", "matmul_2d", "ct") - in_linear
    model_forward = seconds("gpt2.py", "forward", "ct")
    adapter = seconds("adapter.py", "__call__", "ct")
    reorder = seconds("kv_cache.py", "reorder", "ct")
    parts["GPT2.forward checks (check_ids ...)"] = model_forward - seconds(
        "forward_fast.py", "gpt2_forward", "ct"
    )
    parts["adapter bookkeeping (prefix match, rows)"] = adapter - model_forward - reorder
    parts["decoder (log_softmax, top-k, lists ...)"] = total - adapter
    return {"total_s": total, "steps": steps, "parts_s": parts}


def profile_decoders(model, args, prompts: dict) -> dict:
    """Where greedy, beam search and batched sampling spend their time (weights already warm)."""
    n, beams, beam_n = args.new_tokens, args.num_beams, args.beam_new_tokens
    sample_n = min(n, 32)  # batched sampling is the slowest run: a shorter one shows the same
    return {
        f"greedy, 1 x {n} tokens": profile_run(lambda: our_greedy(model, prompts["one"], n), n),
        f"beam search, {beams} beams x {beam_n} steps": profile_run(
            lambda: our_beam(model, prompts["one"], beams, beam_n), beam_n
        ),
        f"sampling, {len(prompts['batch'])} prompts x {sample_n} tokens": profile_run(
            lambda: our_sampling(model, prompts["batch"], sample_n), sample_n
        ),
    }


def print_profile(profiles: dict) -> None:
    for name, profile in profiles.items():
        total, steps = profile["total_s"], profile["steps"]
        print(f"\nwhere {name} spends its time (cProfile, {total:.2f} s, {steps} steps)")
        parts = sorted(profile["parts_s"].items(), key=lambda kv: -kv[1])
        parts.append(("(not attributed)", total - sum(profile["parts_s"].values())))
        for label, s in parts:
            print(f"  {label:<44} {s * 1e3 / steps:7.2f} ms/step  {100 * s / total:5.1f}%")


# ----------------------------------------------------------------------------- targets, table


def targets(ours: dict, hf: dict | None, bound: dict, file_bytes: int) -> dict:
    """The issue's targets by name: measured value, limit, verdict (None: needs HF) and a text."""
    per_token = 1.0 / ours["greedy_tok_s"]
    rss_limit = 1.1 * file_bytes + 100 * MB

    def target(value, op, limit, text):
        passed = None if value is None else (value >= limit if op == ">=" else value <= limit)
        return {"value": value, "op": op, "limit": limit, "pass": passed, "text": text}

    def vs_hf(key):
        return ours[key] / hf[key] if hf else None

    sampling = ours["sampling_tok_s"] / ours["greedy_tok_s"]
    bound_ratio = per_token / bound["s"]
    return {
        "greedy tok/s vs HF": target(vs_hf("greedy_tok_s"), ">=", 1.9, ">= 1.9x HF"),
        "greedy s/token vs bound": target(
            bound_ratio, "<=", 1.1, f"<= 1.1x bound: {bound_ratio:.2f}x"
        ),
        "beam steps/s vs HF": target(vs_hf("beam_steps_s"), ">=", 2.0, ">= 2.0x HF"),
        "sampling tok/s vs greedy": target(sampling, ">=", 5.0, f">= 5x greedy: {sampling:.2f}x"),
        "prefill tok/s vs HF": target(vs_hf("prefill_tok_s"), ">=", 1.1, ">= 1.1x HF"),
        "peak RSS bytes": target(
            ours["peak_rss_bytes"], "<=", rss_limit, f"<= {rss_limit / MB:.0f} MB"
        ),
        "load s": target(ours["load_s"], "<=", 1.0, "<= 1 s"),
    }


def verdict(target: dict) -> str:
    if target["pass"] is None:
        return "n/a (no HF)"
    return "PASS" if target["pass"] else "FAIL"


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# (label, key in the results, format, target name): one line of the table each.
TABLE = [
    ("greedy tok/s ({prompt_tokens} + {new_tokens})", "greedy_tok_s", ".1f", "greedy tok/s vs HF"),
    ("greedy ms/token", "greedy_ms", ".1f", "greedy s/token vs bound"),
    ("beam steps/s ({num_beams} beams, {beam_new_tokens} new)", "beam_steps_s", ".1f",
     "beam steps/s vs HF"),
    ("sampling tok/s ({batch} prompts x {new_tokens}, sum)", "sampling_tok_s", ".1f",
     "sampling tok/s vs greedy"),
    ("prefill tok/s ({prefill_tokens} tokens)", "prefill_tok_s", ".0f", "prefill tok/s vs HF"),
    ("load s", "load_s", ".3f", "load s"),
    ("load + first token s", "first_token_s", ".3f", None),
    ("peak RSS MB (load + greedy)", "peak_rss_mb", ".0f", "peak RSS bytes"),
    ("uncached reference path tok/s", "uncached_tok_s", ".2f", None),
]  # fmt: skip


def print_table(results: dict) -> None:
    ours, hf, bound, s = results["minigpt"], results["hf"], results["bound"], results["settings"]
    print(
        f"\nminigpt vs HF transformers: {s['checkpoint_name']} ({s['file_bytes'] / MB:.0f} MB "
        f"file), {s['threads']} thread(s), best of {s['repeats']}"
    )
    print(f"{'':<42} {'minigpt':>9} {'HF':>9} {'min/HF':>7}   target")
    for label, key, spec, name in TABLE:
        theirs = hf.get(key) if hf else None
        ratio = fmt(ours[key] / theirs, ".2f") + "x" if theirs else "-"
        target = results["targets"][name] if name else None
        text = f"{target['text']:<22} {verdict(target)}" if target else ""
        print(
            f"{label.format(**s):<42} {fmt(ours[key], spec):>9} {fmt(theirs, spec):>9} "
            f"{ratio:>7}   {text}"
        )
    print(
        f"\nbandwidth bound: {bound['s'] * 1e3:.1f} ms/token, one pass over "
        f"{bound['weight_bytes'] / MB:.0f} MB of weights at {bound['gb_per_s']:.1f} GB/s"
    )
    sustained = bound["sustained_s"]
    print(
        f"  {s['new_tokens']} passes in a row: {sustained * 1e3:.1f} ms each on average; greedy "
        f"ms/token is {ours['greedy_ms'] / 1e3 / sustained:.2f}x that"
    )
    print_batched_passes(ours, bound, s)
    print(f"KV cache: greedy {ours['cached_speedup']:.1f}x faster than the uncached reference path")
    for check, ok in results["checks"].items():
        if not ok:
            print(f"note: check {check} failed")
    print(f"total benchmark time {results['elapsed_s']:.0f} s")


def print_batched_passes(ours: dict, bound: dict, s: dict) -> None:
    """What one step of several rows costs in matrix products alone, and what that allows.

    Beam search and batched sampling read the same weights as greedy, for more rows. If the
    BLAS multiplied several rows for the price of one, a step would cost no more than
    greedy's; the passes show what it really costs on this machine and BLAS.
    """
    one = bound["s"]
    beam, sampling = bound["beam_pass_s"], bound["sampling_pass_s"]
    beam_step = 1.0 / ours["beam_steps_s"]
    sampling_step = s["batch"] / ours["sampling_tok_s"]
    ceiling = s["batch"] * (1.0 / ours["greedy_tok_s"]) / sampling
    print(
        f"the same pass for {s['num_beams']} rows: {beam * 1e3:.1f} ms ({beam / one:.2f}x one "
        f"row); a beam step takes {beam_step * 1e3:.1f} ms ({beam_step / beam:.2f}x its pass)"
    )
    print(
        f"the same pass for {s['batch']} rows: {sampling * 1e3:.1f} ms ({sampling / one:.2f}x "
        f"one row); a sampling step takes {sampling_step * 1e3:.1f} ms "
        f"({sampling_step / sampling:.2f}x its pass)"
    )
    print(
        f"  -> with steps as fast as their passes, sampling would reach {ceiling:.2f}x greedy "
        f"tok/s on this machine"
    )


# ----------------------------------------------------------------------------- main


def settings(args, model, file_bytes: int) -> dict:
    return {
        "checkpoint_name": args.checkpoint.name,
        "file_bytes": file_bytes,
        "threads": args.threads,
        "repeats": args.repeats,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "beam_new_tokens": args.beam_new_tokens,
        "num_beams": args.num_beams,
        "batch": args.batch,
        "prefill_tokens": args.prefill_tokens,
        "n_layer": model.config.n_layer,
        "n_embd": model.config.n_embd,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def main(args) -> dict:
    started = time.perf_counter()
    ensure_checkpoint(args.checkpoint)
    _limit_threadpools(args.threads)
    model = minigpt.load(args.checkpoint)
    file_bytes = (args.checkpoint / "model.safetensors").stat().st_size
    vocab = model.config.vocab_size
    prompts = {
        "one": random_prompts(1, args.prompt_tokens, vocab, seed=1)[0],
        "batch": random_prompts(args.batch, args.prompt_tokens, vocab, seed=2),
        "long": random_prompts(1, args.prefill_tokens, vocab, seed=3)[0],
    }
    hf = None
    if not args.no_hf and hf_available():
        progress("loading HF transformers")
        hf = load_hf(args.checkpoint, args.threads)
    measured = measure(model, hf, args, prompts)
    ours, theirs, bound = measured["minigpt"], measured["hf"], measured["bound"]
    profile = None
    if args.profile:
        progress("profile of greedy, beam search and batched sampling")
        profile = profile_decoders(model, args, prompts)
    del hf  # free its memory before the children run
    ours.update(measure_in_child("minigpt", args))
    if theirs:
        theirs.update(measure_in_child("hf", args))
    for side in filter(None, (ours, theirs)):
        side["peak_rss_mb"] = side["peak_rss_bytes"] / MB
    results = {
        "settings": settings(args, model, file_bytes),
        "minigpt": ours,
        "hf": theirs,
        "bound": bound,
        "targets": targets(ours, theirs, bound, file_bytes),
        "checks": measured["checks"],
        "profile": profile,
    }
    results["elapsed_s"] = time.perf_counter() - started
    return results


def _limit_threadpools(n: int) -> None:
    """threadpoolctl, when installed, also limits a BLAS that ignored the environment."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(n)


if __name__ == "__main__":
    if ARGS.child:
        child_main(ARGS)
        sys.exit(0)
    RESULTS = main(ARGS)
    if ARGS.json:
        print(json.dumps(RESULTS, indent=2, default=str))
    else:
        print_table(RESULTS)
        if RESULTS["profile"]:
            print_profile(RESULTS["profile"])
