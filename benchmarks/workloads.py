"""What each side runs: the same jobs for minigpt and for HF transformers, one record per race.

minigpt runs the decoders' real path, `decoding.greedy_search` etc. over a fresh
`minigpt.NextTokenLogits` (so every run starts with an empty cache): exactly what a user runs.
HF runs `generate` with EOS switched off, so both sides make every token they are asked for.
Prompts are random ids of one length, so HF needs no padding.

The last section is the job of the fresh process that load time and peak memory come from.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import minigpt
from decoding import beam_search, greedy_search, sample

# ----------------------------------------------------------------------------- inputs


def random_prompts(n: int, length: int, vocab_size: int, seed: int = 0) -> list[list[int]]:
    """n prompts of equal length (so HF needs no padding), fixed by the seed."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, vocab_size, (n, length)).tolist()


@dataclass
class Prompts:
    one: list[int]  # greedy and beam search
    batch: list[list[int]]  # batched sampling: --batch prompts
    long: list[int]  # prefill: --prefill-tokens ids


def make_prompts(args, vocab_size: int) -> Prompts:
    return Prompts(
        one=random_prompts(1, args.prompt_tokens, vocab_size, seed=1)[0],
        batch=random_prompts(args.batch, args.prompt_tokens, vocab_size, seed=2),
        long=random_prompts(1, args.prefill_tokens, vocab_size, seed=3)[0],
    )


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


# ----------------------------------------------------------------------------- HF transformers
# torch and transformers are imported inside these functions: minigpt's side, and its fresh
# process for load time and memory, must run without them.


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


def hf_greedy(hf, prompt: list[int], n: int) -> list[int]:
    return hf_generate(hf, [prompt], n, do_sample=False)[0]


def hf_beam(hf, prompt: list[int], beams: int, n: int) -> list[int]:
    return hf_generate(hf, [prompt], n, do_sample=False, num_beams=beams)[0]


def hf_sampling(hf, prompts: list[list[int]], n: int) -> list[list[int]]:
    """top-k 50 and nothing else (top_p=1.0 keeps every token), as our_sampling."""
    return hf_generate(hf, prompts, n, do_sample=True, top_k=50, top_p=1.0)


def hf_prefill(hf, prompt: list[int]):
    """One forward over the prompt keeping only the last logits, as generate's first step."""
    import torch

    with torch.inference_mode():
        return hf(torch.tensor([prompt]), use_cache=True, logits_to_keep=1).logits


# ----------------------------------------------------------------------------- the races

Run = Callable[[], object]


@dataclass
class Workload:
    """One job raced side by side: each side's (run, warm-up) and what one run counts."""

    name: str  # in the progress lines and the checks: "greedy", "beam", ...
    key: str  # its figure in --json: `units` per second of the best run
    units: int  # what one run makes: tokens (every prompt's, summed) or beam steps
    minigpt: tuple[Run, Run]  # the timed run, and a short warm-up along the same path
    hf: tuple[Run, Run] | None  # the same with HF generate; None when HF is not loaded
    rows: int | None = None  # rows a decoding step multiplies at once: its bandwidth pass


def build_workloads(model, hf, args, prompts: Prompts) -> list[Workload]:
    """Greedy, beam search, batched sampling and prefill, for minigpt and (if loaded) HF.

    Each warm-up is a short run along the same path (2 new tokens); a prefill has no new
    tokens to make fewer of, so its warm-up is the run itself.
    """
    one, batch, long = prompts.one, prompts.batch, prompts.long
    n, beams, beam_n = args.new_tokens, args.num_beams, args.beam_new_tokens
    races = [
        Workload(
            "greedy", "greedy_tok_s", units=n, rows=1,
            minigpt=(lambda: our_greedy(model, one, n), lambda: our_greedy(model, one, 2)),
            hf=(lambda: hf_greedy(hf, one, n), lambda: hf_greedy(hf, one, 2)),
        ),
        Workload(
            "beam", "beam_steps_s", units=beam_n, rows=beams,
            minigpt=(lambda: our_beam(model, one, beams, beam_n),
                     lambda: our_beam(model, one, beams, 2)),
            hf=(lambda: hf_beam(hf, one, beams, beam_n), lambda: hf_beam(hf, one, beams, 2)),
        ),
        Workload(
            "sampling", "sampling_tok_s", units=len(batch) * n, rows=len(batch),
            minigpt=(lambda: our_sampling(model, batch, n), lambda: our_sampling(model, batch, 2)),
            hf=(lambda: hf_sampling(hf, batch, n), lambda: hf_sampling(hf, batch, 2)),
        ),
        Workload(
            "prefill", "prefill_tok_s", units=len(long),
            minigpt=(lambda: our_prefill(model, long),) * 2,
            hf=(lambda: hf_prefill(hf, long),) * 2,
        ),
    ]  # fmt: skip
    if hf is None:
        for race in races:
            race.hf = None
    return races


def uncached_workload(model, args, prompts: Prompts) -> Workload:
    """Greedy without the KV cache, minigpt only. It is slow: run once, with no warm-up."""
    n = args.new_tokens
    run = lambda: our_uncached_greedy(model, prompts.one, n)  # noqa: E731
    return Workload("uncached", "uncached_tok_s", units=n, minigpt=(run, lambda: None), hf=None)


# ----------------------------------------------------------------------------- load, memory


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


def load_and_generate(
    which: str, checkpoint: Path, threads: int, prompt_tokens: int, new_tokens: int
) -> dict:
    """Load, time the first token, generate greedily; load time and peak RSS.

    Run it in a fresh process (bench_generate.py --child), so that only one library's memory
    is counted.
    """
    if which == "hf":
        hf_available()  # import torch + transformers now: their import is not load time
    rss_before = peak_rss_bytes()  # the interpreter and libraries, before any weight
    prompt = random_prompts(1, prompt_tokens, 50257)[0]  # GPT-2's vocabulary; cut to the model's
    start = time.perf_counter()
    if which == "minigpt":
        model = minigpt.load(checkpoint)
        loaded = time.perf_counter()
        prompt = [t % model.config.vocab_size for t in prompt]
        minigpt.NextTokenLogits(model)([prompt])
        first = time.perf_counter()
        our_greedy(model, prompt, new_tokens)
    else:
        hf = load_hf(checkpoint, threads)
        loaded = time.perf_counter()
        prompt = [t % hf.config.vocab_size for t in prompt]
        hf_prefill(hf, prompt)
        first = time.perf_counter()
        hf_greedy(hf, prompt, new_tokens)
    return {
        "load_s": loaded - start,
        "first_token_s": first - start,
        "rss_before_load_bytes": rss_before,
        "peak_rss_bytes": peak_rss_bytes(),
    }
