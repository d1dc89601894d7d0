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

Every figure of the table is the best of --repeats runs after a warm-up, minigpt and HF
taking turns, so a burst of other work lands on both sides, each turn after a pause that lets
the other side's threads go idle (timing.SETTLE_S; the speculative section's figures are
medians over rounds: speculative.round_figures). Tokens come from the decoders' real path:
`decoding.greedy_search` etc. over `minigpt.NextTokenLogits`, exactly what a user runs. On a
machine busy with other jobs, more threads than idle cores makes both sides several times
slower (BLAS threads wait for each other at every call): compare with --threads 1 there.

This file only reads the flags and prints; the work is in the modules next to it:
measure.py runs everything in order, workloads.py says what each side runs, timing.py times it
(and holds the bandwidth-bound passes), speculative.py measures assisted greedy search
against plain greedy search, report.py prints the table or the JSON, and profiling.py is
--profile's breakdown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = ROOT / "weights" / "random-gpt2"


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
    p.add_argument(
        "--num-assistant-tokens",
        type=int,
        default=4,
        help="speculative: tokens the draft model guesses a round (γ)",
    )
    p.add_argument("--spec-new-tokens", type=int, default=64, help="speculative: new tokens")
    p.add_argument(
        "--spec-min-seconds",
        type=float,
        default=3.0,
        help="speculative: race each pair for at least this long (more rounds for a fast pair)",
    )
    p.add_argument(
        "--spec-rounds",
        type=int,
        default=5,
        help="speculative: race each pair for at least this many rounds (medians are shown)",
    )
    p.add_argument("--no-speculative", action="store_true", help="skip the speculative section")
    p.add_argument("--no-hf", action="store_true", help="skip transformers even if installed")
    p.add_argument("--json", action="store_true", help="print a JSON dict instead of the table")
    p.add_argument("--profile", action="store_true", help="also profile the decoders (+1 min)")
    # Internal: measure.measure_in_child runs this script again with --child, in a fresh process.
    p.add_argument("--child", choices=["minigpt", "hf"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def limit_threads(n: int) -> None:
    """BLAS libraries read their thread count once, when loaded: set it before importing numpy."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    limit_threads(args.threads)
    # Everything below imports NumPy, so it is imported only now, after limit_threads; and from
    # this checkout (minigpt, decoding, benchmarks), wherever the script is run from.
    sys.path.insert(0, str(ROOT))
    # minigpt before NumPy, as a user's program would: on AMD CPUs with AVX-512 it picks
    # OpenBLAS's kernels, which only works before NumPy loads (minigpt/blas_kernels.py).
    import minigpt  # noqa: F401

    if args.child:  # load time and peak RSS, in the fresh process measure.py started
        from benchmarks.workloads import load_and_generate

        figures = load_and_generate(
            args.child, args.checkpoint, args.threads, args.prompt_tokens, args.new_tokens
        )
        print(json.dumps(figures))
        return
    from benchmarks import measure, report

    results = measure.run(args)
    if args.json:
        report.print_json(results)
    else:
        report.print_table(results)
        if results["profile"]:
            report.print_profile(results["profile"])


if __name__ == "__main__":
    main()
