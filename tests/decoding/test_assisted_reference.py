"""Parity with Hugging Face: assisted greedy search (a draft model, prompt lookup) against
`generate(assistant_model=..., do_sample=False)` and `generate(prompt_lookup_num_tokens=...)`.

Both sides load the same random checkpoints, built by tests/checkpoints.py; the draft is a
smaller random model with the target's vocabulary, or the target's first layer alone, or
the target itself. Assistance never changes greedy tokens, so
HF's assisted text must equal ours token for token, and both equal plain greedy search. The
weights are large (std 0.2) so the next-token distributions are peaky: an argmax decided by
float32 rounding, where the two sides could honestly differ, does not occur in these runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from checkpoints import build
from reference import require_reference

from decoding import assisted_greedy_search, greedy_search
from minigpt import GPT2Config, NextTokenLogits
from minigpt.gpt2 import load_model_dir

pytestmark = pytest.mark.reference

VOCAB, EOS = 211, 210
TARGET = GPT2Config(n_layer=3, n_head=4, n_embd=64, n_positions=128, vocab_size=VOCAB,
                    bos_token_id=EOS, eos_token_id=EOS)  # fmt: skip
DRAFT = GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=128, vocab_size=VOCAB,
                   bos_token_id=EOS, eos_token_id=EOS)  # fmt: skip
PROMPTS = [[5, 9, 12, 5, 9], [40, 2, 7, 40, 2, 7, 40], [17]]


def truncated(path: Path, out_dir: Path, n_layer: int) -> Path:
    """The checkpoint at `path` with only its first n_layer blocks: an early-exit draft that
    shares the target's embeddings and agrees with it more often than chance."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(path / "model.safetensors")
    kept = {k: v for k, v in tensors.items()
            if not k.startswith("h.") or int(k.split(".")[1]) < n_layer}  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(kept, out_dir / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((path / "config.json").read_text())
    (out_dir / "config.json").write_text(json.dumps({**config, "n_layer": n_layer}))
    return out_dir


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """{name: (ours, HF's)}: the target; "random", a smaller random model; "early", the
    target's first layer alone; "same", the target itself (every draft accepted)."""
    torch, transformers = require_reference()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a busy machine
    target = build(tmp_path_factory.mktemp("target"), TARGET, seed=1, std=0.2)
    paths = {
        "target": target,
        "random": build(tmp_path_factory.mktemp("random"), DRAFT, seed=2, std=0.2),
        "early": truncated(target, tmp_path_factory.mktemp("early"), 1),
        "same": target,
    }
    made = {}
    for name, path in paths.items():
        hf = transformers.GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32).eval()
        made[name] = (load_model_dir(path), hf)
    return made


def hf_assisted(hf, prompt, max_new_tokens, eos, **kwargs):
    torch, _ = require_reference()
    ids = torch.tensor([prompt])
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                          max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=0,
                          **kwargs)  # fmt: skip
    return out[0].tolist()


def cut(ids: list[int], prompt_length: int, eos: int | None) -> list[int]:
    new = ids[prompt_length:]
    if eos is not None and eos in new:
        new = new[: new.index(eos) + 1]
    return ids[:prompt_length] + new


def configure_assistant(hf_draft, num_tokens: int, schedule: str, threshold: float = 0.0) -> None:
    """HF reads these from the assistant's own generation config (and "heuristic" writes the
    final count back there); a threshold of 0 turns off its early stop on low confidence."""
    hf_draft.generation_config.num_assistant_tokens = num_tokens
    hf_draft.generation_config.num_assistant_tokens_schedule = schedule
    hf_draft.generation_config.assistant_confidence_threshold = threshold


class ForwardCounter:
    """Counts a HF model's forward calls: the target's are assisted decoding's rounds, the
    assistant's its drafted tokens (one forward per drafted token)."""

    def __init__(self, hf):
        self.calls = 0
        hf.register_forward_hook(self.count)

    def count(self, module, args, output):
        self.calls += 1


@pytest.mark.parametrize("threshold", [0.4, 0.8])
@pytest.mark.parametrize("draft", ["random", "early", "same"])
def test_the_confidence_threshold_drafts_as_many_tokens_as_hf(pairs, draft, threshold,
                                                              monkeypatch):  # fmt: skip
    """assistant_confidence_threshold: the same rounds and the same number of drafted tokens
    as HF, counted as forward calls of HF's target and draft. HF re-tunes the threshold after
    every round when scikit-learn is installed; without it the threshold is fixed, as ours."""
    from transformers.generation import candidate_generator

    monkeypatch.setattr(candidate_generator, "is_sklearn_available", lambda: False)
    (target, hf_target), (small, hf_small) = pairs["target"], pairs[draft]
    rounds, drafted = ForwardCounter(hf_target), ForwardCounter(hf_small)
    doubted = 0
    for prompt in PROMPTS:
        configure_assistant(hf_small, 6, "constant", threshold)
        before = rounds.calls, drafted.calls
        theirs = cut(hf_assisted(hf_target, prompt, 24, None, assistant_model=hf_small),
                     len(prompt), None)  # fmt: skip
        (ours,) = assisted_greedy_search(
            NextTokenLogits(target), prompt, max_new_tokens=24,
            assistant_model=NextTokenLogits(small), num_assistant_tokens=6,
            assistant_confidence_threshold=threshold,
        )  # fmt: skip
        (full,) = assisted_greedy_search(
            NextTokenLogits(target), prompt, max_new_tokens=24,
            assistant_model=NextTokenLogits(small), num_assistant_tokens=6,
            assistant_confidence_threshold=0,
        )  # fmt: skip
        hf_stats = (rounds.calls - before[0], drafted.calls - before[1])
        print(f"{draft} {threshold} {prompt}: ours {ours.assistant}, HF rounds/drafted {hf_stats}")
        assert ours.best.ids == theirs
        assert (ours.assistant.rounds, ours.assistant.drafted) == hf_stats
        doubted += full.assistant.drafted - ours.assistant.drafted
    assert doubted > 0  # the threshold did cut some drafts short: the test can tell


@pytest.mark.parametrize("draft", ["random", "early", "same"])
@pytest.mark.parametrize(("num_tokens", "schedule"), [(5, "constant"), (3, "heuristic")])
@pytest.mark.parametrize("eos", [EOS, None])
def test_assisted_greedy_equals_hf_with_an_assistant_model(pairs, draft, num_tokens, schedule,
                                                           eos):  # fmt: skip
    (target, hf_target), (small, hf_small) = pairs["target"], pairs[draft]
    for prompt in PROMPTS:
        configure_assistant(hf_small, num_tokens, schedule)
        theirs = cut(hf_assisted(hf_target, prompt, 24, eos, assistant_model=hf_small),
                     len(prompt), eos)  # fmt: skip
        (ours,) = assisted_greedy_search(
            NextTokenLogits(target), prompt, max_new_tokens=24, eos_token_id=eos,
            assistant_model=NextTokenLogits(small), num_assistant_tokens=num_tokens,
            num_assistant_tokens_schedule=schedule,
        )  # fmt: skip
        (plain,) = greedy_search(NextTokenLogits(target), prompt, max_new_tokens=24,
                                 eos_token_id=eos)  # fmt: skip
        assert ours.best.ids == theirs == plain.best.ids, (prompt, draft)
        print(f"{draft} {schedule} {prompt}: {ours.assistant}")


@pytest.mark.parametrize(("num_tokens", "ngram"), [(3, None), (10, 1), (2, 3)])
@pytest.mark.parametrize(("penalty", "no_repeat"), [(None, None), (1.3, None), (None, 2)])
def test_assisted_greedy_equals_hf_with_prompt_lookup(pairs, num_tokens, ngram, penalty,
                                                      no_repeat):  # fmt: skip
    target, hf_target = pairs["target"]
    processors = {"repetition_penalty": penalty, "no_repeat_ngram_size": no_repeat}
    hf_processors = {k: v for k, v in processors.items() if v is not None}
    lookup = {"prompt_lookup_num_tokens": num_tokens}
    if ngram is not None:
        lookup["max_matching_ngram_size"] = ngram
    for prompt in PROMPTS:
        theirs = cut(hf_assisted(hf_target, prompt, 24, EOS, **lookup, **hf_processors),
                     len(prompt), EOS)  # fmt: skip
        (ours,) = assisted_greedy_search(NextTokenLogits(target), prompt, max_new_tokens=24,
                                         eos_token_id=EOS, **lookup, **processors)  # fmt: skip
        assert ours.best.ids == theirs, (prompt, lookup, processors)
        print(f"lookup {lookup} {processors} {prompt}: {ours.assistant}")


def test_the_checkpoints_make_assistance_worth_testing(pairs):
    """Every acceptance path is exercised: the random draft is seldom right, the early-exit
    draft sometimes, the target itself always; prompt lookup finds the loops greedy falls into."""
    target, _ = pairs["target"]
    rates = {}
    for name in ("random", "early", "same"):
        stats = [assisted_greedy_search(NextTokenLogits(target), p, max_new_tokens=24,
                                        assistant_model=NextTokenLogits(pairs[name][0]),
                                        num_assistant_tokens=4)[0].assistant
                 for p in PROMPTS]  # fmt: skip
        rates[name] = sum(s.accepted for s in stats) / sum(s.drafted for s in stats)
    lookup = [assisted_greedy_search(NextTokenLogits(target), p, max_new_tokens=24,
                                     prompt_lookup_num_tokens=3)[0].assistant
              for p in PROMPTS]  # fmt: skip
    print(rates, lookup)
    assert sum(s.accepted for s in lookup) > 0
    assert rates["random"] < rates["early"] < rates["same"] == 1.0
    assert 0 < rates["early"] < 1


def test_prompt_lookup_proposes_what_hf_proposes():
    """decoding.drafters.lookup against HF's PromptLookupCandidateGenerator.get_candidates on
    random repetitive sequences: the same guess, token for token (which occurrence, which
    n-gram, the no-repeat-ngram ban, the EOS cut)."""
    torch, transformers = require_reference()
    from transformers.generation.candidate_generator import PromptLookupCandidateGenerator
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        NoRepeatNGramLogitsProcessor,
    )

    from decoding import Processors
    from decoding.drafters import PromptLookup

    rng = np.random.default_rng(0)
    found = 0
    for _ in range(400):
        V = int(rng.integers(2, 6))
        seq = rng.integers(0, V, int(rng.integers(1, 16))).tolist()
        k, n = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        eos = int(rng.integers(0, V)) if rng.random() < 0.5 else None
        ngram = int(rng.integers(2, 4)) if rng.random() < 0.3 else None
        processors = [NoRepeatNGramLogitsProcessor(ngram)] if ngram else []
        hf = PromptLookupCandidateGenerator(
            eos_token_id=None if eos is None else torch.tensor([eos]), num_output_tokens=k,
            max_matching_ngram_size=n, max_length=len(seq) + 100,
            logits_processor=LogitsProcessorList(processors), vocab_size=V,
        )  # fmt: skip
        candidates, _ = hf.get_candidates(torch.tensor([seq]))
        theirs = candidates[0, len(seq) :].tolist()
        ours = PromptLookup(k, n, Processors(no_repeat_ngram_size=ngram), eos).propose(seq, 100)
        assert ours.tokens == theirs, (seq, k, n, eos, ngram)
        found += bool(theirs)
    assert found > 100, "the sequences repeat often enough to test the rules"
