"""Measure everything bench_generate.py reports, and gather it into one results dict.

In this order: each workload raced side by side (with the matrix-product pass that bounds
it), the uncached path, the speculative section (speculative.py), the profile if asked for,
then load time and peak memory, each side in a fresh process of its own. Import this only
after the BLAS thread count is set (see bench_generate.py): it imports NumPy.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import minigpt
from benchmarks import report, speculative, timing, workloads
from benchmarks.workloads import Workload
from minigpt import blas_kernels

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve().with_name("bench_generate.py")  # run again with --child


class Progress:
    """One line on stderr per stage, so a slow machine shows where it is (stdout stays clean)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def __call__(self, stage: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {stage}", file=sys.stderr, flush=True)


def ensure_checkpoint(path: Path) -> Path:
    """Build the random gpt2-shaped checkpoint the first time (about 550 MB, a few seconds)."""
    if not (path / "model.safetensors").exists():
        script = ROOT / "weights" / "scripts" / "make_random.py"
        print(f"building {path} with {script.name} --preset gpt2 ...", file=sys.stderr)
        subprocess.run([sys.executable, str(script), str(path), "--preset", "gpt2"], check=True)
    return path


def limit_threadpools(n: int) -> None:
    """threadpoolctl, when installed, also limits a BLAS that ignored the environment."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(n)


def contestants(race: Workload, params, new_tokens: int) -> dict:
    """Who runs in `race`: minigpt, HF if loaded, and the matrix products alone for its rows.

    The bound is a best-of-10 pass in every round, next to the runs it bounds. Greedy also gets
    the mean of as many passes in a row as it makes tokens.
    """
    runs = {"minigpt": race.minigpt, **({"hf": race.hf} if race.hf else {})}
    if race.rows:
        one_pass = timing.matmul_pass(params, race.rows)
        runs["bound"] = (lambda: timing.timed(one_pass, 10), one_pass)
        if race.name == "greedy":
            runs["sustained"] = (lambda: timing.timed_mean(one_pass, new_tokens), one_pass)
    return runs


def race_all(model, hf, args, prompts, progress: Progress) -> dict:
    """Race minigpt against HF (when loaded) workload by workload, then the uncached path.

    Returns {"minigpt": {...}, "hf": {...} or None, "bound": {...}, "checks": {...}}.
    """
    races = workloads.build_workloads(model, hf, args, prompts)
    timings = {}
    for race in races:
        progress(f"{race.name}: minigpt" + (" and HF, in turns" if hf else ""))
        runs = contestants(race, model.params, args.new_tokens)
        settle_s = timing.SETTLE_S if hf else 0.0  # each side's turn starts on idle cores
        timings[race.name] = timing.race(runs, args.repeats, settle_s=settle_s)
    progress("minigpt uncached reference path (once: it is slow)")
    uncached = workloads.uncached_workload(model, args, prompts)
    timings[uncached.name] = timing.race({"minigpt": uncached.minigpt}, 1)
    bytes_read = timing.weight_bytes(model.params)
    return summarize(timings, [*races, uncached], bytes_read, with_hf=hf is not None)


def summarize(timings: dict, races: list[Workload], bytes_read: int, with_hf: bool) -> dict:
    """Times of the races -> rates, the bound, and the checks that both sides agreed."""
    units = {race.name: race.units for race in races}

    def figures(side: str) -> dict:
        out = {}
        for race in races:
            if side in timings[race.name]:  # HF has no uncached path
                out[race.key] = race.units / timings[race.name][side]["best"]  # best run's rate
        out["greedy_s"] = timings["greedy"][side]["best"]
        out["greedy_ms"] = 1e3 * out["greedy_s"] / units["greedy"]
        out["greedy_median_s"] = timings["greedy"][side]["median"]
        return out

    def last(name: str, side: str = "minigpt"):
        return timings[name][side]["results"][-1]

    bound_s = min(timings["greedy"]["bound"]["results"])  # each result: a best-of-10 pass
    bound = {"s": bound_s, "weight_bytes": bytes_read, "gb_per_s": bytes_read / bound_s / 1e9}
    bound["sustained_s"] = min(timings["greedy"]["sustained"]["results"])
    for name in ("beam", "sampling"):  # the same pass for the rows these decoders run
        bound[f"{name}_pass_s"] = min(timings[name]["bound"]["results"])
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


def measure_in_child(which: str, args, progress: Progress) -> dict:
    """Run workloads.load_and_generate in a new interpreter, so the other library's memory is
    not counted. Returns its figures: load_s, first_token_s and the RSS bytes."""
    progress(f"{which} load time and peak RSS (fresh process)")
    command = [sys.executable, str(SCRIPT), "--child", which, "--checkpoint", str(args.checkpoint)]
    command += ["--threads", str(args.threads), "--new-tokens", str(args.new_tokens)]
    command += ["--prompt-tokens", str(args.prompt_tokens)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{which} child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
        "num_assistant_tokens": args.num_assistant_tokens,
        "spec_new_tokens": args.spec_new_tokens,
        "spec_rounds": args.spec_rounds,
        "n_layer": model.config.n_layer,
        "n_embd": model.config.n_embd,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu_description(),
        "blas_kernels": blas_kernels.loaded_kernels(),
    }


def cpu_description() -> str:
    """The CPU's model name with its family and model numbers, which tell apart CPUs that
    share a model name ("AMD EPYC" is Zen 3, 4 or 5 on these VMs); Linux only."""
    fields = blas_kernels.first_cpu(blas_kernels.first_cpu_text())
    if not fields:
        return platform.processor() or "unknown"
    name = fields.get("model name", "unknown")
    return f"{name} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"


def run(args) -> dict:
    """Every figure of the benchmark, as the dict --json prints."""
    progress = Progress()
    ensure_checkpoint(args.checkpoint)
    limit_threadpools(args.threads)
    model = minigpt.load(args.checkpoint)
    file_bytes = (args.checkpoint / "model.safetensors").stat().st_size
    prompts = workloads.make_prompts(args, model.config.vocab_size)
    hf = None
    if not args.no_hf and workloads.hf_available():
        progress("loading HF transformers")
        hf = workloads.load_hf(args.checkpoint, args.threads)
    measured = race_all(model, hf, args, prompts, progress)
    ours, theirs, bound = measured["minigpt"], measured["hf"], measured["bound"]
    spec = None
    if not args.no_speculative:
        spec = speculative.measure(model, args, prompts.one, progress)
    profile = None
    if args.profile:
        # Imported only here: it names minigpt's functions, and a renamed one should stop
        # --profile, not every run of the benchmark.
        from benchmarks import profiling

        progress("profile of greedy, beam search and batched sampling")
        profile = profiling.profile_decoders(model, args, prompts)
    del hf  # free its memory before the children run
    ours.update(measure_in_child("minigpt", args, progress))
    if theirs:
        theirs.update(measure_in_child("hf", args, progress))
    for side in filter(None, (ours, theirs)):
        side["peak_rss_mb"] = side["peak_rss_bytes"] / report.MB
    s = settings(args, model, file_bytes)
    return {
        "settings": s,
        "minigpt": ours,
        "hf": theirs,
        "bound": bound,
        "targets": report.targets(report.figures(ours, theirs, bound, s)),
        "checks": measured["checks"],
        "speculative": spec,
        "profile": profile,
        "elapsed_s": progress.elapsed(),
    }
