"""Speculative decoding on a CPU: what a draft model buys greedy search, measured and predicted.

`decoding.assisted.assisted_greedy_search` lets a small draft model guess γ tokens, one step
each, and checks them all in one forward pass of the target over γ + 1 positions (the verify
pass). It makes exactly greedy_search's tokens; the question is only whether it is faster.
For each pair of models this measures:

- α, the acceptance rate: drafted tokens kept / drafted tokens;
- tokens per round (one round = γ draft steps + one verify pass), next to what α predicts if
  every drafted token were kept independently with probability α: (1 - α^(γ+1)) / (1 - α);
- the pass costs, each against one target step (one token through the KV cache): the verify
  pass of γ + 1 positions, and one draft step, each the mean of as many calls in a row as a
  run makes tokens;
- the wall-clock speed-up of assisted greedy search over plain greedy search, both through
  `minigpt.NextTokenLogits`, timed in turns, with every round drafting γ tokens (confidence
  threshold 0, as the cost model assumes), and with HF's default threshold 0.4, which ends a
  round early after a guess the draft model doubts;
- and the speed-up the cost model predicts from the measured costs and α alone, with the α
  from which it pays (none, if a round costs more than the γ + 1 steps it can at best save):

      time per token, plain:    t_step
      time per round, assisted: γ t_draft + t_verify, making (1 - α^(γ+1)) / (1 - α) tokens
      predicted speed-up = tokens per round * t_step / (γ t_draft + t_verify)

  and the same with what the decoder itself spends around each call of a model, o: plain
  greedy's time per token beyond its model step (greedy_s / tokens - t_step), paid once per
  call, by each of the γ draft steps and by the verify pass as by every plain step:

      model speed-up = measured tokens per round * (t_step + o) / (γ (t_draft + o) + t_verify + o)

  This is the figure issue 13's "within 15%" is judged on: on a small model the decoder's own
  work per call is a quarter of a step, and the first formula leaves it out.

Plain greedy, the assisted runs and the passes take turns, round after round. Every timed
figure, measured or predicted, is worked out within each round from that round's times, and
the median over the rounds is reported (`round_figures`).

Two pairs: the bundled one (minigpt-tiny, drafted by minigpt-tiny-draft), and the gpt2-shaped
random checkpoint drafted by a distilgpt2-shaped model made of its own first 6 blocks with its
embeddings, final layer norm and head (`early_exit_draft`). Random weights would make an
independent draft agree by chance alone (1 in 50,257); a draft made of the target's own
blocks agrees often, since random blocks change the residual stream little.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

import minigpt
from benchmarks import timing
from decoding import greedy_search
from decoding.assisted import assisted_greedy_search
from decoding.drafters import DEFAULT_CONFIDENCE_THRESHOLD
from minigpt.config import GPT2Config
from minigpt.safetensors_file import load_arrays

DRAFT_LAYERS = 6  # distilgpt2's depth
BUNDLED_PROMPT = "Once upon a time, there was a little girl named"


@dataclass
class Pair:
    """A target model, its draft model and the prompt they continue."""

    name: str
    target: object  # minigpt.GPT2
    draft: object
    prompt: list[int]


# ----------------------------------------------------------------------------- the draft


def early_exit_draft(target_dir: Path, out_dir: Path, n_layer: int = DRAFT_LAYERS) -> Path:
    """Write a checkpoint of the target's first `n_layer` blocks, embeddings, ln_f and head.

    Rebuilt when missing or older than the target's file. Returns out_dir.
    """
    source = target_dir / "model.safetensors"
    weights = out_dir / "model.safetensors"
    if weights.exists() and weights.stat().st_mtime >= source.stat().st_mtime:
        return out_dir
    config = GPT2Config.from_json(target_dir / "config.json")
    block = re.compile(r"(?:^|\.)h\.(\d+)\.")  # h.N. in either file layout

    def kept(name: str) -> bool:
        found = block.search(name)
        return found is None or int(found.group(1)) < n_layer

    tensors = {name: np.ascontiguousarray(t) for name, t in load_arrays(source).items()}
    tensors = {name: t for name, t in tensors.items() if kept(name)}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = weights.with_name(weights.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    config_text = json.dumps(replace(config, n_layer=n_layer).to_json(), indent=2) + "\n"
    (out_dir / "config.json").write_text(config_text)
    os.replace(tmp, weights)  # last: a half-written draft is never taken as built
    return out_dir


def make_pairs(model, args, prompt: list[int]) -> list[Pair]:
    """The bundled pair, and the benchmark's checkpoint (`model`) with its early-exit draft."""
    target = minigpt.load("minigpt-tiny")
    tokenizer = minigpt.load_tokenizer("minigpt-tiny")
    pairs = [Pair("minigpt-tiny + minigpt-tiny-draft", target, minigpt.load("minigpt-tiny-draft"),
                  tokenizer.encode(BUNDLED_PROMPT))]  # fmt: skip
    layers = min(DRAFT_LAYERS, model.config.n_layer - 1)  # a tiny test checkpoint has fewer
    draft_dir = args.checkpoint.parent / f"{args.checkpoint.name}-first{layers}"
    draft = minigpt.load(early_exit_draft(args.checkpoint, draft_dir, layers))
    pairs.append(Pair(f"{args.checkpoint.name} + its first {layers} blocks", model, draft, prompt))
    return pairs


# ----------------------------------------------------------------------------- the cost model


def expected_tokens_per_round(alpha: float, gamma: int) -> float:
    """(1 - α^(γ+1)) / (1 - α): tokens a round makes when each of γ drafted tokens is kept
    with probability α, independently, until the first refused (then the target's own)."""
    if alpha >= 1.0:
        return gamma + 1.0
    return (1.0 - alpha ** (gamma + 1)) / (1.0 - alpha)


def predicted_speedup(
    alpha: float, gamma: int, step_s: float, draft_s: float, verify_s: float
) -> float:
    """round_speedup with the tokens per round that α predicts."""
    return round_speedup(expected_tokens_per_round(alpha, gamma), gamma, step_s, draft_s, verify_s)


def round_speedup(
    tokens: float, gamma: int, step_s: float, draft_s: float, verify_s: float, overhead_s=0.0
) -> float:
    """Plain greedy's time for a round's `tokens`, over that round's time: γ draft steps and a
    verify pass, with the decoder's own `overhead_s` paid by every call of a model."""
    plain_s = tokens * (step_s + overhead_s)
    return plain_s / (gamma * (draft_s + overhead_s) + verify_s + overhead_s)


def break_even_alpha(gamma: int, step_s: float, draft_s: float, verify_s: float) -> float | None:
    """The α from which speculation pays (predicted speed-up 1), or None if no α does: a round
    costs more than γ + 1 plain steps, the most it can make."""
    needed = (gamma * draft_s + verify_s) / step_s  # tokens a round must make to break even
    if needed > gamma + 1:
        return None
    low, high = 0.0, 1.0  # expected_tokens_per_round grows with α: bisect
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if expected_tokens_per_round(mid, gamma) < needed else (low, mid)
    return high


# ----------------------------------------------------------------------------- measuring


def pass_runs(model, prompt: list[int], gamma: int) -> dict:
    """One target step (1 token) and one verify pass (γ + 1 tokens, every position's logits,
    as the adapter's logits_at_positions runs it), each after the prompt in the KV cache;
    the cache is set back to the prompt before each run."""
    cache = model.new_cache(1)
    model.forward(np.array([prompt]), cache, last_only=True)
    held = len(prompt)
    one = np.array([prompt[-1:]])
    several = np.array([(prompt * (gamma + 1))[: gamma + 1]])

    def step():
        cache.lengths[:] = held
        return model.forward(one, cache, last_only=True)

    def verify():
        cache.lengths[:] = held
        return model.forward(several, cache)

    return {"step": step, "verify": verify}


def measure_pair(
    pair: Pair, gamma: int, new_tokens: int, repeats: int, min_seconds: float = 0.0
) -> dict:
    """Every figure of the module's docstring for one pair, raced for at least `repeats`
    rounds (--spec-rounds) and `min_seconds` (--spec-min-seconds); the timed ones are medians
    over the rounds (`round_figures`).

    The bundled pair's round takes 0.25 s: with 3 rounds the cost model missed the measured
    speed-up by 19-99% in 3 of 8 tries after an HF run, with 15 (3.5 s) by 21% in 1. The gpt2
    pair's round takes about 11 s. Its rounds' own figures scatter by 10-15% (45 rounds with
    γ = 4), and in draws of rounds from them the median missed by more than 15% for 7.9% of 3
    rounds, 2.3% of 5 and 0.7% of 7: hence 5."""
    target, draft, prompt = pair.target, pair.draft, pair.prompt

    def plain():
        return greedy_search(minigpt.NextTokenLogits(target), prompt, max_new_tokens=new_tokens)

    def assisted(threshold: float = 0.0):
        # The cost model drafts γ tokens every round: threshold 0 turns off HF's early end of
        # a round after a doubted guess. `with_threshold` runs HF's default, 0.4, as a user gets.
        return assisted_greedy_search(
            minigpt.NextTokenLogits(target), prompt, max_new_tokens=new_tokens,
            assistant_model=minigpt.NextTokenLogits(draft), num_assistant_tokens=gamma,
            assistant_confidence_threshold=threshold,
        )  # fmt: skip

    def with_threshold():
        return assisted(DEFAULT_CONFIDENCE_THRESHOLD)

    ours = pass_runs(target, prompt, gamma)
    theirs = pass_runs(draft, prompt, gamma)
    # Each pass cost is the mean of as many calls in a row as a run makes tokens, like the
    # runs' own times: a best single call escapes the host's hiccups that every run pays for,
    # and the cost model mixed the two. After an HF run, with best-of-3 calls it missed by
    # more than 15% for 3 of 10 pairs (by up to 50%), with means for 1 of 10 (18%, a slow
    # assisted run); in the benchmark's misses the bundled pair's 0.44 ms step came out 0.58-0.72.
    calls = new_tokens
    runs = {
        "greedy": (plain, plain),
        "assisted": (assisted, assisted),
        "with_threshold": (with_threshold, with_threshold),
        "step": (lambda: timing.timed_mean(ours["step"], calls), ours["step"]),
        "verify": (lambda: timing.timed_mean(ours["verify"], calls), ours["verify"]),
        "draft": (lambda: timing.timed_mean(theirs["step"], calls), theirs["step"]),
    }
    raced = timing.race(runs, repeats, min_seconds)
    decoded = raced["assisted"]["results"][-1][0]
    stats = decoded.assistant
    alpha = stats.accepted / stats.drafted if stats.drafted else 0.0
    tokens_per_round = len(decoded.best.new_ids) / stats.rounds
    per_round = [
        round_figures(r, alpha, gamma, new_tokens, tokens_per_round) for r in race_rounds(raced)
    ]
    med = {key: statistics.median(r[key] for r in per_round) for key in per_round[0]}
    step_s, verify_s, draft_s = med["step_s"], med["verify_s"], med["draft_step_s"]
    return {
        "gamma": gamma,
        "new_tokens": new_tokens,
        "race_rounds": len(per_round),
        "target_layers": target.config.n_layer,
        "draft_layers": draft.config.n_layer,
        "alpha": alpha,
        "rounds": stats.rounds,
        "tokens_per_round": tokens_per_round,
        "expected_tokens_per_round": expected_tokens_per_round(alpha, gamma),
        **med,
        "verify_vs_step": verify_s / step_s,
        "draft_vs_step": draft_s / step_s,
        "break_even_alpha": break_even_alpha(gamma, step_s, draft_s, verify_s),
        "same_tokens": decoded.best.new_ids == raced["greedy"]["results"][-1][0].best.new_ids,
    }


def race_rounds(raced: dict) -> list[dict]:
    """measure_pair's race, round by round: {"greedy", "assisted", "with_threshold": the run's
    seconds; "step", "verify", "draft": the mean seconds of a pass}."""
    runs = ("greedy", "assisted", "with_threshold")
    passes = ("step", "verify", "draft")
    n = len(raced["greedy"]["runs"])
    return [
        {**{k: raced[k]["runs"][i] for k in runs}, **{k: raced[k]["results"][i] for k in passes}}
        for i in range(n)
    ]


def round_figures(
    r: dict, alpha: float, gamma: int, new_tokens: int, tokens_per_round: float
) -> dict:
    """The timed figures of one round of the race (see race_rounds), from its own times alone.

    measure_pair reports the median of each over the rounds. A round's runs and passes follow
    each other within seconds, so a slow phase of the host that spans the round slows both
    sides of each ratio, and the median drops the rounds a short burst hit. Before, the
    speed-up was the best plain run over the best assisted run and the pass costs the fastest
    of their rounds, each from a different moment: with a background process burning the CPU
    in bursts, the cost model missed the gpt2 pair's measured speed-up by more than 15% in 4
    of 20 races, against 1 of 20 for the medians of the rounds' own figures.
    """
    step_s, verify_s, draft_s = r["step"], r["verify"], r["draft"]
    # The decoder's own time per model call, from plain greedy: per token beyond its step.
    overhead_s = max(0.0, r["greedy"] / new_tokens - step_s)
    return {
        "step_s": step_s,
        "verify_s": verify_s,
        "draft_step_s": draft_s,
        "greedy_s": r["greedy"],
        "assisted_s": r["assisted"],
        "measured_speedup": r["greedy"] / r["assisted"],
        "threshold_speedup": r["greedy"] / r["with_threshold"],
        "predicted_speedup": predicted_speedup(alpha, gamma, step_s, draft_s, verify_s),
        # The same cost model with the tokens per round measured instead of derived from α:
        # acceptances come in runs, not independently, so the two can differ.
        "predicted_speedup_measured_tokens": round_speedup(
            tokens_per_round, gamma, step_s, draft_s, verify_s
        ),
        "decoder_overhead_s": overhead_s,
        "predicted_speedup_full": round_speedup(
            tokens_per_round, gamma, step_s, draft_s, verify_s, overhead_s
        ),
    }


def measure(model, args, prompt: list[int], progress) -> dict:
    """{pair name: its figures}, for the bundled pair and the benchmark's checkpoint."""
    out = {}
    for pair in make_pairs(model, args, prompt):
        progress(f"speculative: {pair.name}, plain and assisted greedy in turns")
        out[pair.name] = measure_pair(pair, args.num_assistant_tokens, args.spec_new_tokens,
                                      args.spec_rounds, args.spec_min_seconds)  # fmt: skip
    return out
