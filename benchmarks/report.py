"""The results as people read them (the table and its footer, the profile) and as JSON.

Each line of the table is one `Figure`: its label, both sides' values, how to print them and,
when it has one, its `Target` from issue 6 with the verdict. `figures` builds them all from
the measured results, so a figure's label, value and target are written in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

MB = 1e6


@dataclass
class Target:
    """A speed or memory target: the value it judges, the limit, and the table's text."""

    name: str  # its key under "targets" in --json
    value: float | None  # None: it compares with HF, which did not run
    op: str  # ">=" or "<="
    limit: float
    text: str  # the table's target column

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.op == ">=" else self.value <= self.limit

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "n/a (no HF)"
        return "PASS" if self.passed else "FAIL"

    def to_json(self) -> dict:
        return {"value": self.value, "op": self.op, "limit": self.limit, "pass": self.passed,
                "text": self.text}  # fmt: skip


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@dataclass
class Figure:
    """One line of the table: minigpt's value, HF's (None: not measured), and its target."""

    label: str
    minigpt: float
    hf: float | None
    spec: str  # the format of both values, such as ".1f"
    target: Target | None = None

    def line(self) -> str:
        ratio = fmt(self.minigpt / self.hf, ".2f") + "x" if self.hf else "-"
        target = f"{self.target.text:<22} {self.target.verdict}" if self.target else ""
        return (
            f"{self.label:<42} {fmt(self.minigpt, self.spec):>9} {fmt(self.hf, self.spec):>9} "
            f"{ratio:>7}   {target}"
        )


def figures(ours: dict, hf: dict | None, bound: dict, s: dict) -> list[Figure]:
    """Every line of the table, in order, from the measured figures and the settings `s`."""

    def theirs(key):
        return hf.get(key) if hf else None

    def vs_hf(key):
        return ours[key] / hf[key] if hf else None

    def figure(label, key, spec, target=None):
        return Figure(label, ours[key], theirs(key), spec, target)

    # Greedy against the mean of as many one-row passes in a row as it makes tokens: both pay
    # for the same hiccups of a shared machine, so what is left is greedy's work outside the
    # products. (Against the best single pass, a run of 128 tokens can never come close.)
    sustained_ratio = (1.0 / ours["greedy_tok_s"]) / bound["sustained_s"]
    rss_limit = 1.1 * s["file_bytes"] + 100 * MB  # the weights' file, plus 10% and 100 MB
    return [
        figure(f"greedy tok/s ({s['prompt_tokens']} + {s['new_tokens']})", "greedy_tok_s", ".1f",
               Target("greedy tok/s vs HF", vs_hf("greedy_tok_s"), ">=", 1.9, ">= 1.9x HF")),
        figure("greedy ms/token", "greedy_ms", ".1f",
               Target("greedy s/token vs sustained bound", sustained_ratio, "<=", 1.15,
                      f"<=1.15x passes: {sustained_ratio:.2f}x")),
        figure(f"beam steps/s ({s['num_beams']} beams, {s['beam_new_tokens']} new)",
               "beam_steps_s", ".1f",
               Target("beam steps/s vs HF", vs_hf("beam_steps_s"), ">=", 2.0, ">= 2.0x HF")),
        figure(f"sampling tok/s ({s['batch']} prompts x {s['new_tokens']}, sum)",
               "sampling_tok_s", ".1f",
               Target("sampling tok/s vs HF", vs_hf("sampling_tok_s"), ">=", 2.0,
                      ">= 2.0x HF")),
        figure(f"prefill tok/s ({s['prefill_tokens']} tokens)", "prefill_tok_s", ".0f",
               Target("prefill tok/s vs HF", vs_hf("prefill_tok_s"), ">=", 1.1, ">= 1.1x HF")),
        figure("load s", "load_s", ".3f", Target("load s", ours["load_s"], "<=", 1.0, "<= 1 s")),
        figure("load + first token s", "first_token_s", ".3f"),
        figure("peak RSS MB (load + greedy)", "peak_rss_mb", ".0f",
               Target("peak RSS bytes", ours["peak_rss_bytes"], "<=", rss_limit,
                      f"<= {rss_limit / MB:.0f} MB")),
        figure("uncached reference path tok/s", "uncached_tok_s", ".2f"),
    ]  # fmt: skip


def targets(table: list[Figure]) -> dict:
    """--json's "targets": {name: {"value", "op", "limit", "pass", "text"}}."""
    return {f.target.name: f.target.to_json() for f in table if f.target}


def print_json(results: dict) -> None:
    print(json.dumps(results, indent=2, default=str))


def print_table(results: dict) -> None:
    ours, hf, bound, s = results["minigpt"], results["hf"], results["bound"], results["settings"]
    print(
        f"\nminigpt vs HF transformers: {s['checkpoint_name']} ({s['file_bytes'] / MB:.0f} MB "
        f"file), {s['threads']} thread(s), best of {s['repeats']}"
    )
    if "cpu" in s:  # JSON saved before these two were recorded has neither
        print(f"CPU: {s['cpu']}, {s['cpu_count']} CPUs; OpenBLAS kernels: {s['blas_kernels']}")
    print(f"{'':<42} {'minigpt':>9} {'HF':>9} {'min/HF':>7}   target")
    for figure in figures(ours, hf, bound, s):
        print(figure.line())
    print_bound(ours, bound, s)
    print_batched_passes(ours, bound, s)
    print(f"KV cache: greedy {ours['cached_speedup']:.1f}x faster than the uncached reference path")
    if results.get("speculative"):
        print_speculative(results["speculative"])
    for check, ok in results["checks"].items():
        if not ok:
            print(f"note: check {check} failed")
    print(f"total benchmark time {results['elapsed_s']:.0f} s")


def print_bound(ours: dict, bound: dict, s: dict) -> None:
    """The one-row pass: its best (the bound) and its mean over as many passes as greedy makes
    tokens, which pays for the same hiccups a run of tokens pays for."""
    print(
        f"\nbandwidth bound: {bound['s'] * 1e3:.1f} ms/token, one pass over "
        f"{bound['weight_bytes'] / MB:.0f} MB of weights at {bound['gb_per_s']:.1f} GB/s"
    )
    sustained = bound["sustained_s"]
    print(
        f"  {s['new_tokens']} passes in a row: {sustained * 1e3:.1f} ms each on average; greedy "
        f"ms/token is {ours['greedy_ms'] / 1e3 / sustained:.2f}x that"
    )


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


def print_speculative(pairs: dict) -> None:
    """The speculative section: per pair, α, tokens per round, the pass costs against one
    target step, and the speed-up of assisted over plain greedy, predicted and measured."""
    first = next(iter(pairs.values()))
    print(
        f"\nspeculative greedy: assisted_greedy_search, {first['gamma']} drafted tokens a round, "
        f"{first['new_tokens']} new tokens"
    )
    print(f"{'':<36} {'alpha':>5} {'tok/round':>9} {'(from α)':>8} {'verify':>7} {'draft':>6} "
          f"{'predicted':>9} {'model':>6} {'measured':>8} {'pays from α':>11} "
          f"{'at 0.4':>6}")  # fmt: skip
    for name, f in pairs.items():
        even = f["break_even_alpha"]
        print(
            f"{name:<36} {f['alpha']:>5.2f} {f['tokens_per_round']:>9.2f} "
            f"{f['expected_tokens_per_round']:>8.2f} {f['verify_vs_step']:>6.2f}x "
            f"{f['draft_vs_step']:>5.2f}x {f['predicted_speedup']:>8.2f}x "
            f"{f['predicted_speedup_full']:>5.2f}x "
            f"{f['measured_speedup']:>7.2f}x {'never' if even is None else format(even, '.2f'):>11}"
            f" {f['threshold_speedup']:>5.2f}x" + ("" if f["same_tokens"] else "  TOKENS DIFFER")
        )
    print(
        "  verify: one pass over γ + 1 positions, draft: one draft-model step, each against one"
        " target step;\n  predicted = tok/round (from α) * step / (γ draft + verify); model = "
        "measured tok/round * (step + o) / (γ (draft + o) + verify + o),\n  o = plain greedy's "
        "time per token beyond its step (the decoder's own work per model call); predicted "
        "with the measured tok/round: "
        + ", ".join(f"{f['predicted_speedup_measured_tokens']:.2f}x" for f in pairs.values())
        + ";\n  at 0.4: measured with HF's default assistant_confidence_threshold (the others"
        " draft γ every round)"
    )
    rounds = [f.get("race_rounds") for f in pairs.values()]
    if None not in rounds:  # results of an older benchmark have best runs instead
        counts = ", ".join(map(str, rounds))
        print(
            "  each timed figure is worked out within each round of a pair's race, from that"
            f" round's times, and the median over its rounds is shown ({counts} rounds)"
        )


def print_profile(profiles: dict) -> None:
    """--profile's breakdown: per decoder, each part's time per step and share, largest first."""
    for name, profile in profiles.items():
        total, steps = profile["total_s"], profile["steps"]
        print(f"\nwhere {name} spends its time (cProfile, {total:.2f} s, {steps} steps)")
        parts = sorted(profile["parts_s"].items(), key=lambda kv: -kv[1])
        parts.append(("(not attributed)", total - sum(profile["parts_s"].values())))
        for label, s in parts:
            print(f"  {label:<44} {s * 1e3 / steps:7.2f} ms/step  {100 * s / total:5.1f}%")
