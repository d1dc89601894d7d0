"""The benchmark still runs: tiny checkpoint, tiny settings, nothing compared for speed.

benchmarks/bench_generate.py is run as users run it (a subprocess, flags, --json), so a renamed
decoder argument or a changed model API breaks this test instead of the next release's table.
Each of its modules is also exercised on its own, in this process: timing's race, every
workload on both paths, the table's lines and verdicts from fixed figures, and --profile's
breakdown, which must fail loudly when a function it times is renamed or no longer runs.
"""

from __future__ import annotations

import importlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from checkpoints import TINY, build
from reference import require_reference

import minigpt
from benchmarks import bench_generate, measure, report, speculative, timing, workloads
from minigpt import forward_fast
from minigpt.kv_cache import KVCache

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_generate.py"
TINY_SETTINGS = [
    "--threads", "1",
    "--repeats", "1",
    "--prompt-tokens", "3",
    "--new-tokens", "4",
    "--beam-new-tokens", "3",
    "--num-beams", "2",
    "--batch", "3",
    "--prefill-tokens", "20",
    "--num-assistant-tokens", "2",
    "--spec-new-tokens", "4",
    "--spec-min-seconds", "0",
    "--spec-rounds", "1",
]  # fmt: skip


def run_benchmark(checkpoint: Path, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), "--checkpoint", str(checkpoint), *TINY_SETTINGS]
    done = subprocess.run([*command, *flags], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("bench") / "tiny", TINY)


@pytest.fixture(scope="module")
def model(tiny):
    return minigpt.load(tiny)


@pytest.fixture(scope="module")
def args(tiny):
    return bench_generate.parse_args(["--checkpoint", str(tiny), *TINY_SETTINGS])


@pytest.fixture(scope="module")
def prompts(args):
    return workloads.make_prompts(args, TINY.vocab_size)


# ----------------------------------------------------------------------------- the whole script


def check_figures(side: dict) -> None:
    for key in ("greedy_tok_s", "beam_steps_s", "sampling_tok_s", "prefill_tok_s", "load_s"):
        assert side[key] > 0, key
    assert side["peak_rss_bytes"] > side["rss_before_load_bytes"] > 0


def test_json_has_every_figure_and_target(tiny):
    """--json without HF: every minigpt figure is a positive number and every target judged."""
    results = json.loads(run_benchmark(tiny, "--json", "--no-hf").stdout)
    assert results["hf"] is None
    check_figures(results["minigpt"])
    assert results["minigpt"]["cached_speedup"] > 0
    assert results["bound"]["s"] > 0 and results["bound"]["weight_bytes"] > 0
    assert results["bound"]["beam_pass_s"] > 0 and results["bound"]["sampling_pass_s"] > 0
    assert results["bound"]["sustained_s"] > 0
    assert results["checks"]["cached_equals_uncached"]
    assert results["checks"]["beam_ran_all_steps"]
    assert len(results["targets"]) == 7
    judged = {name: t["pass"] for name, t in results["targets"].items()}
    assert judged["greedy tok/s vs HF"] is None  # no HF: not judged, not failed
    assert isinstance(judged["load s"], bool)
    pairs = results["speculative"]
    assert len(pairs) == 2 and all(f["same_tokens"] for f in pairs.values())
    for f in pairs.values():
        assert 0 <= f["alpha"] <= 1 and f["rounds"] >= 1 and f["race_rounds"] >= 1
        speeds = (
            "step_s",
            "verify_s",
            "draft_step_s",
            "measured_speedup",
            "threshold_speedup",
            "predicted_speedup_full",
        )
        assert min(f[k] for k in speeds) > 0


def test_table_and_profile_print(tiny):
    """The human-readable table and the --profile breakdown render without HF."""
    out = run_benchmark(tiny, "--no-hf", "--profile").stdout
    assert "greedy tok/s" in out and "bandwidth bound" in out and "passes in a row" in out
    assert "the same pass for 2 rows" in out and "the same pass for 3 rows" in out
    assert out.count("spends its time") == 3 and "layer_norm" in out
    assert "speculative greedy: assisted_greedy_search, 2 drafted tokens a round" in out
    assert "minigpt-tiny + minigpt-tiny-draft" in out and "tiny + its first 1 blocks" in out
    assert "the median over its rounds is shown" in out


@pytest.mark.reference
def test_hf_side_runs(tiny):
    """With transformers installed, the HF column is filled and HF made the same greedy tokens."""
    require_reference()
    results = json.loads(run_benchmark(tiny, "--json").stdout)
    check_figures(results["hf"])
    assert results["checks"]["greedy_equals_hf"]
    assert all(t["pass"] is not None for t in results["targets"].values())


# ----------------------------------------------------------------------------- timing.py


def test_race_warms_up_once_then_takes_turns():
    calls = []

    def contestant(name):
        return (lambda: calls.append(name) or name, lambda: calls.append(f"warm {name}"))

    raced = timing.race({"a": contestant("a"), "b": contestant("b")}, repeats=2)
    assert calls == ["warm a", "warm b", "a", "b", "a", "b"]
    assert raced["a"]["results"] == ["a", "a"] and len(raced["b"]["runs"]) == 2
    assert raced["a"]["best"] == min(raced["a"]["runs"]) <= raced["a"]["median"]


def test_race_goes_on_for_min_seconds():
    """One round asked for, but the rounds go on until 50 ms have passed."""
    calls = []
    start = time.perf_counter()
    raced = timing.race({"a": (lambda: calls.append(1), lambda: None)}, 1, min_seconds=0.05)
    assert time.perf_counter() - start >= 0.05
    assert len(calls) > 2 and len(raced["a"]["runs"]) == len(calls)


def test_race_pauses_before_each_turn_outside_its_time():
    """settle_s: 4 turns of 20 ms pauses take 80 ms or more, and no turn's time includes one."""
    start = time.perf_counter()
    raced = timing.race({n: (lambda: None, lambda: None) for n in "ab"}, 2, settle_s=0.02)
    assert time.perf_counter() - start >= 0.08
    assert all(t < 0.02 for n in "ab" for t in raced[n]["runs"])


def test_timers_call_as_often_as_asked():
    calls = []
    assert timing.timed(lambda: calls.append(1), 3) >= 0 and len(calls) == 3
    assert timing.timed_mean(lambda: calls.append(1), 4) >= 0 and len(calls) == 7


def test_bound_pass_reads_every_weight(model):
    """4 matrices per layer plus the head; a pass for several rows runs on the same weights."""
    params = model.params
    assert len(timing.weight_matrices(params)) == 4 * TINY.n_layer
    expected = sum(w.nbytes for w in timing.weight_matrices(params)) + params.lm_head.nbytes
    assert timing.weight_bytes(params) == expected
    for rows in (1, 3):
        assert timing.timed(timing.matmul_pass(params, rows), 1) > 0


# ----------------------------------------------------------------------------- workloads.py


def test_workloads_make_what_they_count(model, args, prompts):
    """Every race's minigpt run and warm-up work, and `units` is what a run makes."""
    races = workloads.build_workloads(model, None, args, prompts)
    assert [r.name for r in races] == ["greedy", "beam", "sampling", "prefill"]
    assert [r.rows for r in races] == [1, args.num_beams, args.batch, None]
    assert all(r.hf is None for r in races)  # no HF loaded: no HF side
    made = {r.name: r.minigpt[0]() for r in races}
    for race in races:
        race.minigpt[1]()  # the warm-up runs too
    by_name = {r.name: r for r in races}
    assert len(made["greedy"]) == by_name["greedy"].units == args.new_tokens
    assert len(made["beam"]) == by_name["beam"].units == args.beam_new_tokens
    assert sum(map(len, made["sampling"])) == by_name["sampling"].units
    assert made["prefill"].shape == (1, TINY.vocab_size)
    assert by_name["prefill"].units == args.prefill_tokens
    uncached = workloads.uncached_workload(model, args, prompts)
    assert uncached.minigpt[0]() == made["greedy"]  # the KV cache changes speed, not tokens


def test_load_and_generate_reports_time_and_memory(tiny):
    """The fresh process's job, run here: positive times, the peak above the start."""
    figures = workloads.load_and_generate("minigpt", tiny, 1, 3, 4)
    assert 0 < figures["load_s"] <= figures["first_token_s"]
    assert figures["peak_rss_bytes"] >= figures["rss_before_load_bytes"] > 0


# ----------------------------------------------------------------------------- measure.py


def test_race_all_summarizes_every_race(model, args, prompts):
    measured = measure.race_all(model, None, args, prompts, progress=lambda stage: None)
    assert measured["hf"] is None
    ours = measured["minigpt"]
    for key in ("greedy_tok_s", "beam_steps_s", "sampling_tok_s", "prefill_tok_s"):
        assert ours[key] > 0, key
    assert ours["uncached_tok_s"] > 0 and ours["cached_speedup"] > 0
    assert ours["greedy_ms"] == pytest.approx(1e3 / ours["greedy_tok_s"])
    assert set(measured["bound"]) == {
        "s", "weight_bytes", "gb_per_s", "sustained_s", "beam_pass_s", "sampling_pass_s"
    }  # fmt: skip
    assert all(measured["checks"].values())


# ----------------------------------------------------------------------------- speculative.py


def test_tokens_per_round_and_the_cost_model():
    assert speculative.expected_tokens_per_round(0.0, 4) == 1.0  # only the target's own token
    assert speculative.expected_tokens_per_round(1.0, 4) == 5.0  # every draft kept, plus one
    assert speculative.expected_tokens_per_round(0.5, 2) == pytest.approx(1.75)  # 1 + .5 + .25
    # A round of 2 draft steps (0.1 each) and a verify (1.3) against a step of 1: 1.5 steps.
    assert speculative.predicted_speedup(0.5, 2, 1.0, 0.1, 1.3) == pytest.approx(1.75 / 1.5)
    alpha = speculative.break_even_alpha(2, 1.0, 0.1, 1.3)
    assert speculative.predicted_speedup(alpha, 2, 1.0, 0.1, 1.3) == pytest.approx(1.0)
    assert speculative.break_even_alpha(2, 1.0, 0.5, 2.5) is None  # a round costs 3.5 > 3 steps


def test_early_exit_draft_is_the_targets_first_blocks(tiny, model, tmp_path):
    out = speculative.early_exit_draft(tiny, tmp_path / "draft", n_layer=1)
    draft = minigpt.load(out)
    assert draft.config.n_layer == 1 and len(draft.params.h) == 1
    assert (draft.params.h[0].mlp.c_fc.weight == model.params.h[0].mlp.c_fc.weight).all()
    assert (draft.params.wte == model.params.wte).all()
    built = (out / "model.safetensors").stat().st_mtime_ns
    speculative.early_exit_draft(tiny, out, n_layer=1)  # up to date: not written again
    assert (out / "model.safetensors").stat().st_mtime_ns == built


def fake_race(rounds: list[dict]) -> dict:
    """timing.race's answer for measure_pair's contestants, from each round's times."""
    runs = ("greedy", "assisted", "with_threshold")
    raced = {k: {"runs": [r[k] for r in rounds], "results": [None] * len(rounds)} for k in runs}
    for k in ("step", "verify", "draft"):  # a pass's result is its mean time, its run longer
        raced[k] = {"runs": [64 * r[k] for r in rounds], "results": [r[k] for r in rounds]}
    return raced


def test_a_rounds_figures_come_from_its_own_times():
    quiet = {"greedy": 1.28, "assisted": 1.6, "with_threshold": 1.5,
             "step": 0.018, "verify": 0.04, "draft": 0.01}  # fmt: skip
    slow = {k: 1.5 * v for k, v in quiet.items()}  # the host slower for the whole round
    burst = {**quiet, "assisted": 3.2}  # one run hit by a burst
    rounds = speculative.race_rounds(fake_race([quiet, slow, burst]))
    assert rounds == [quiet, slow, burst]
    figures = [speculative.round_figures(r, 0.5, 4, 64, 2.0) for r in rounds]
    print("per round:", [(round(f["measured_speedup"], 3), round(f["predicted_speedup_full"], 3))
                         for f in figures])  # fmt: skip
    assert figures[0]["measured_speedup"] == pytest.approx(1.28 / 1.6)
    assert figures[0]["decoder_overhead_s"] == pytest.approx(0.002)  # 1.28 s / 64 - step
    # 2 tokens a round * (step + o) / (4 (draft + o) + verify + o)
    assert figures[0]["predicted_speedup_full"] == pytest.approx(2 * 0.02 / (4 * 0.012 + 0.042))
    for key in ("measured_speedup", "predicted_speedup_full"):  # ratios within a round:
        assert figures[1][key] == pytest.approx(figures[0][key])  # a slow round leaves them
    assert figures[2]["measured_speedup"] == pytest.approx(figures[0]["measured_speedup"] / 2)
    median = statistics.median(f["measured_speedup"] for f in figures)
    assert median == pytest.approx(figures[0]["measured_speedup"])  # the burst is dropped


def test_measure_pair_on_a_tiny_pair(tiny, model, tmp_path):
    draft = minigpt.load(speculative.early_exit_draft(tiny, tmp_path / "draft", n_layer=1))
    pair = speculative.Pair("tiny", model, draft, [1, 2, 3])
    f = speculative.measure_pair(pair, gamma=2, new_tokens=5, repeats=1)
    assert f["same_tokens"] and f["rounds"] >= 2  # at most 3 tokens a round
    assert f["tokens_per_round"] == pytest.approx(5 / f["rounds"])
    assert f["verify_vs_step"] == pytest.approx(f["verify_s"] / f["step_s"])


# ----------------------------------------------------------------------------- report.py


def readme_figures() -> dict:
    """The figures of an earlier Speed table of README.md (whose lines that run printed are
    known), so the table's lines can be checked exactly."""
    settings = {"checkpoint_name": "random-gpt2", "file_bytes": 548e6, "threads": 2,
                "repeats": 3, "prompt_tokens": 8, "new_tokens": 128, "beam_new_tokens": 32,
                "num_beams": 4, "batch": 8, "prefill_tokens": 512}  # fmt: skip
    ours = {"greedy_tok_s": 72.4, "greedy_ms": 13.8, "beam_steps_s": 35.0,
            "sampling_tok_s": 245.4, "prefill_tok_s": 980, "load_s": 0.026,
            "first_token_s": 0.070, "peak_rss_bytes": 548e6, "peak_rss_mb": 548,
            "uncached_tok_s": 8.92, "cached_speedup": 8.1}  # fmt: skip
    hf = {"greedy_tok_s": 36.6, "greedy_ms": 27.3, "beam_steps_s": 18.0,
          "sampling_tok_s": 126.7, "prefill_tok_s": 819, "load_s": 1.422,
          "first_token_s": 1.518, "peak_rss_bytes": 885e6, "peak_rss_mb": 885}  # fmt: skip
    bound = {"s": 0.0113, "weight_bytes": 494e6, "gb_per_s": 43.6, "sustained_s": 0.0119,
             "beam_pass_s": 0.0239, "sampling_pass_s": 0.0236}  # fmt: skip
    return {"settings": settings, "minigpt": ours, "hf": hf, "bound": bound}


def test_table_lines_and_verdicts():
    r = readme_figures()
    lines = [f.line() for f in report.figures(r["minigpt"], r["hf"], r["bound"], r["settings"])]
    assert lines[0] == (
        "greedy tok/s (8 + 128)                          72.4      36.6   1.98x   "
        ">= 1.9x HF             PASS"
    )
    assert lines[1].endswith("<=1.15x passes: 1.16x  FAIL")
    assert lines[3].endswith("245.4     126.7   1.94x   >= 2.0x HF             FAIL")
    assert lines[4].endswith("980       819   1.20x   >= 1.1x HF             PASS")
    assert lines[7].endswith("548       885   0.62x   <= 703 MB              PASS")
    assert lines[8] == "uncached reference path tok/s                   8.92         -       -   "


def test_targets_without_hf_are_not_judged():
    r = readme_figures()
    table = report.figures(r["minigpt"], None, r["bound"], r["settings"])
    targets = report.targets(table)
    assert len(targets) == 7 and targets["greedy tok/s vs HF"]["pass"] is None
    assert targets["load s"] == {"value": 0.026, "op": "<=", "limit": 1.0, "pass": True,
                                 "text": "<= 1 s"}  # fmt: skip
    assert table[0].line().endswith("72.4         -       -   >= 1.9x HF             n/a (no HF)")


def test_print_table_has_every_footer_line(capsys):
    results = readme_figures()
    results.update(checks={"beam_ran_all_steps": False}, elapsed_s=154.0)
    report.print_table(results)
    out = capsys.readouterr().out
    assert "random-gpt2 (548 MB file), 2 thread(s), best of 3" in out
    assert "bandwidth bound: 11.3 ms/token, one pass over 494 MB of weights at 43.6 GB/s" in out
    assert "the same pass for 8 rows: 23.6 ms (2.09x one row)" in out
    assert "note: check beam_ran_all_steps failed" in out and "total benchmark time 154 s" in out


# ----------------------------------------------------------------------------- profiling.py


def test_profile_attributes_every_part(model, args, prompts):
    from benchmarks import profiling

    profiles = profiling.profile_decoders(model, args, prompts)
    assert len(profiles) == 3
    labels = [label for label, _ in profiling.PARTS] + [profiling.DECODER]
    for profile in profiles.values():
        assert list(profile["parts_s"]) == labels
        assert profile["parts_s"]["layer_norm"] > 0 and profile["parts_s"]["gelu"] > 0


@pytest.mark.parametrize("owner, name", [(forward_fast, "attention"), (KVCache, "store")])
def test_profiler_import_fails_on_a_renamed_function(monkeypatch, owner, name):
    """The parts are function objects: a rename is an AttributeError, not a row of 0 ms."""
    monkeypatch.delattr(owner, name)
    monkeypatch.delitem(sys.modules, "benchmarks.profiling", raising=False)
    with pytest.raises(AttributeError, match=name):
        importlib.import_module("benchmarks.profiling")


def test_profile_fails_when_a_profiled_function_no_longer_runs(monkeypatch, model, args, prompts):
    """The model calling another gelu leaves the profiled one unrun: the profile refuses."""
    profiling = importlib.import_module("benchmarks.profiling")
    monkeypatch.setattr(forward_fast, "gelu", lambda x: np.maximum(x, 0))
    with pytest.raises(RuntimeError, match=r"minigpt\.forward_fast\.gelu never ran"):
        profiling.profile_decoders(model, args, prompts)
    with pytest.raises(RuntimeError, match=r"KVCache\.reorder"):
        profiling.check_every_part_ran(set())
