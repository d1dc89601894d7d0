"""Parity with Hugging Face `generate` for the newer processors and the stopping criteria,
through the decoders: min_new_tokens, bad_words_ids, stop_strings (and the other processor
options) in greedy search, beam search and sampling at top_k=1, against `model.generate` on
the same random checkpoint.

Both sides load one random checkpoint with GPT-2's vocabulary (built by tests/checkpoints.py,
weights std 0.2 so every argmax is far from a tie); HF's side gets GPT-2's tokenizer from the
vendored files, ours the token bytes of minigpt's. The settings are cut from what the model
does unconstrained, so that they bite: the EOS is a token the model emits early, the bad
words are pieces of its own output, the stop strings pieces of its own text that straddle
tokens or end inside one. Tokens must be equal.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from checkpoints import build
from reference import require_reference

from decoding import beam_search, greedy_search, sample
from minigpt import GPT2Config, NextTokenLogits
from minigpt.gpt2 import load_model_dir
from minigpt.tokenizer import load_tokenizer

pytestmark = pytest.mark.reference

VOCAB = 50257
CONFIG = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=128, vocab_size=VOCAB,
                    bos_token_id=50256, eos_token_id=50256)  # fmt: skip
PROMPTS = [[464, 3290], [40, 423, 257, 4320], [1135]]
NEW = 12


@pytest.fixture(scope="module")
def sides(tmp_path_factory):
    """(our seam, HF's model, HF's tokenizer, our token bytes)."""
    torch, transformers = require_reference()
    torch.set_num_threads(1)
    path = build(tmp_path_factory.mktemp("gpt2-vocab"), CONFIG, seed=5, std=0.2)
    hf = transformers.GPT2LMHeadModel.from_pretrained(path, dtype=torch.float32).eval()
    folder = Path(load_tokenizer("gpt2").source)
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    hf_tokenizer = transformers.GPT2Tokenizer(
        vocab=vocab, merges=[tuple(line.split()) for line in lines if line]
    )
    ours = load_tokenizer("gpt2")
    table = [ours.token_bytes(i) for i in range(VOCAB)]
    return NextTokenLogits(load_model_dir(path)), hf, hf_tokenizer, table


def hf_generate(hf, prompt, **kwargs) -> list[int]:
    torch, _ = require_reference()
    ids = torch.tensor([prompt])
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=0,
                          max_new_tokens=NEW, **kwargs)  # fmt: skip
    return out[0].tolist()


def cut(ids: list[int], prompt_length: int, eos: int | None) -> list[int]:
    """HF's row up to its first generated EOS (it pads after; beam search may too)."""
    new = ids[prompt_length:]
    if eos is not None and eos in new:
        new = new[: new.index(eos) + 1]
    return ids[:prompt_length] + new


def plain_greedy(seam, prompt) -> list[int]:
    return greedy_search(seam, prompt, max_new_tokens=NEW)[0].best.new_ids


def early_eos(seam, prompt) -> int:
    """A token the unconstrained model emits at its 2nd step: as EOS, min_new_tokens bites."""
    return plain_greedy(seam, prompt)[1]


def ours_greedy(seam, prompt, **kwargs) -> list[int]:
    return greedy_search(seam, prompt, max_new_tokens=NEW, **kwargs)[0].best.ids


def ours_top1_sample(seam, prompt, **kwargs) -> list[int]:
    rng = np.random.default_rng(0)
    return sample(seam, prompt, rng=rng, max_new_tokens=NEW, top_k=1, **kwargs)[0].best.ids


def ours_beam(seam, prompt, **kwargs) -> list[int]:
    return beam_search(seam, prompt, num_beams=3, max_new_tokens=NEW, **kwargs)[0].best.ids


@pytest.mark.parametrize("n", [1, 3, 8])
def test_min_new_tokens_matches_generate(sides, n):
    seam, hf, _, _ = sides
    for prompt in PROMPTS:
        eos = early_eos(seam, prompt)
        unconstrained = ours_greedy(seam, prompt, eos_token_id=eos)
        assert len(unconstrained) == len(prompt) + 2  # it stops at its EOS at step 2
        expected = cut(hf_generate(hf, prompt, do_sample=False, eos_token_id=eos,
                                   min_new_tokens=n), len(prompt), eos)  # fmt: skip
        assert ours_greedy(seam, prompt, eos_token_id=eos, min_new_tokens=n) == expected
        assert eos not in expected[len(prompt) : len(prompt) + n]  # no EOS among the first n
        top1 = cut(hf_generate(hf, prompt, do_sample=True, top_k=1, eos_token_id=eos,
                               min_new_tokens=n), len(prompt), eos)  # fmt: skip
        assert ours_top1_sample(seam, prompt, eos_token_id=eos, min_new_tokens=n) == top1
        beams = cut(hf_generate(hf, prompt, do_sample=False, num_beams=3, eos_token_id=eos,
                                min_new_tokens=n), len(prompt), eos)  # fmt: skip
        assert ours_beam(seam, prompt, eos_token_id=eos, min_new_tokens=n) == beams


def bad_words_from(seam, prompt) -> list[list[int]]:
    """A bigram and a single token of the model's own unconstrained output."""
    new = plain_greedy(seam, prompt)
    return [[new[2], new[3]], [new[5]]]


def test_bad_words_ids_match_generate(sides):
    seam, hf, _, _ = sides
    for prompt in PROMPTS:
        words = bad_words_from(seam, prompt)
        unconstrained = ours_greedy(seam, prompt)
        for run, hf_kwargs in [(ours_greedy, {"do_sample": False}),
                               (ours_top1_sample, {"do_sample": True, "top_k": 1}),
                               (ours_beam, {"do_sample": False, "num_beams": 3})]:  # fmt: skip
            expected = hf_generate(hf, prompt, bad_words_ids=words, **hf_kwargs)
            got = run(seam, prompt, bad_words_ids=words)
            assert got == expected, (run.__name__, words)
        assert ours_greedy(seam, prompt, bad_words_ids=words) != unconstrained  # it bites


@pytest.mark.parametrize(
    "options",
    [
        {"sequence_bias": [[[1], 3.0]]},
        {"suppress_tokens": [0, 1, 2]},
        {"begin_suppress_tokens": [0, 1, 2]},
        {"exponential_decay_length_penalty": (2, 1.6)},
        {"min_length": 9},
        {"renormalize_logits": True, "repetition_penalty": 1.4},
    ],
)
def test_other_processor_options_match_generate(sides, options):
    """Each option with an argument cut from the unconstrained output, through greedy and
    beam search; the EOS is a token the model emits early, so the EOS processors bite."""
    seam, hf, _, _ = sides
    for prompt in PROMPTS:
        new = plain_greedy(seam, prompt)
        eos = early_eos(seam, prompt)
        concrete = json.loads(json.dumps(options).replace("[0, 1, 2]", json.dumps(new[:3])))
        if "sequence_bias" in concrete:
            concrete["sequence_bias"] = [[[new[4]], 3.0]]
        if "exponential_decay_length_penalty" in concrete:
            concrete["exponential_decay_length_penalty"] = (2, 1.6)
        for run, hf_kwargs in [(ours_greedy, {"do_sample": False}),
                               (ours_beam, {"do_sample": False, "num_beams": 3})]:  # fmt: skip
            expected = cut(hf_generate(hf, prompt, eos_token_id=eos, **concrete, **hf_kwargs),
                           len(prompt), eos)  # fmt: skip
            got = run(seam, prompt, eos_token_id=eos, **concrete)
            assert got == expected, (run.__name__, concrete)


def stop_strings_from(table, new: list[int]) -> list[str]:
    """Pieces of the model's own text: the end of token 3 with the start of token 4 (spans
    two tokens), the middle of token 6 (ends inside it), tokens 8-9 whole. Bytes that are not
    UTF-8 on their own (the text is random) are left out."""
    pieces = [table[new[3]][-2:] + table[new[4]][:2], table[new[6]][1:-1] or table[new[6]],
              table[new[8]] + table[new[9]]]  # fmt: skip
    strings = []
    for piece in pieces:
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text:
            strings.append(text)
    return strings


def test_stop_strings_match_generate(sides):
    seam, hf, hf_tokenizer, table = sides
    stopped_early = 0
    for prompt in PROMPTS:
        new = plain_greedy(seam, prompt)
        for stop in stop_strings_from(table, new):
            for run, hf_kwargs in [(ours_greedy, {"do_sample": False}),
                                   (ours_top1_sample, {"do_sample": True, "top_k": 1}),
                                   (ours_beam, {"do_sample": False, "num_beams": 3})]:  # fmt: skip
                expected = hf_generate(hf, prompt, stop_strings=[stop], tokenizer=hf_tokenizer,
                                       **hf_kwargs)  # fmt: skip
                got = run(seam, prompt, stop_strings=[stop], token_strings=table)
                assert got == expected, (run.__name__, stop)
                stopped_early += len(got) < len(prompt) + NEW
    assert stopped_early >= 3  # the stop strings do stop generation
