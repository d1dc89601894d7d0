"""Known greedy outputs of the published gpt2 weights (docs/decoding-semantics.md, at the end).

The weights cannot be downloaded everywhere, so these run only where `weights/gpt2/` holds them
(`python weights/scripts/download.py gpt2`) and are reported as skipped otherwise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import minigpt
from decoding import greedy_search

GPT2_DIR = Path(__file__).resolve().parents[1] / "weights" / "gpt2"
pytestmark = [
    pytest.mark.real_weights,
    pytest.mark.skipif(
        not (GPT2_DIR / "model.safetensors").exists(),
        reason="needs the published gpt2 weights: python weights/scripts/download.py gpt2",
    ),
]


@pytest.fixture(scope="module")
def gpt2():
    return minigpt.load(GPT2_DIR), minigpt.load_tokenizer(GPT2_DIR)


@pytest.mark.parametrize(
    "prompt, new_tokens, expected_ids",
    [
        ([40, 423, 257, 4320], 5, [40, 423, 257, 4320, 286, 852, 257, 6253, 13]),
        (
            [464, 3290],
            18,
            [
                464,
                3290,
                373,
                1043,
                287,
                257,
                2214,
                1474,
                262,
                16246,
                286,
                2688,
                290,
                2688,
                27262,
                13,
                198,
                198,
                464,
                3290,
            ],
        ),
    ],
)
def test_known_greedy_ids(gpt2, prompt, new_tokens, expected_ids):
    """Greedy ids equal HF generate's on the published weights."""
    model, _ = gpt2
    out = greedy_search(
        minigpt.NextTokenLogits(model), prompt, max_new_tokens=new_tokens, eos_token_id=50256
    )
    assert out[0].best.ids == expected_ids


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("I have a dream", "I have a dream of being a doctor."),
        ("In a word, the cake is a", "In a word, the cake is a bit of a mess."),
    ],
)
def test_known_greedy_text(gpt2, prompt, expected):
    """The seed post's headline: greedy on "I have a dream" gives "... of being a doctor."."""
    model, tok = gpt2
    out = greedy_search(
        minigpt.NextTokenLogits(model),
        tok.encode(prompt),
        max_new_tokens=5,
        eos_token_id=tok.eos_token_id,
    )
    assert tok.decode(out[0].best.ids) == expected


def test_published_file_facts():
    """The file is the hub's: 548,105,171 bytes, with the per-layer mask buffers."""
    from minigpt.safetensors_file import read_header

    path = GPT2_DIR / "model.safetensors"
    header, _ = read_header(path)
    assert path.stat().st_size == 548_105_171
    assert "h.0.attn.bias" in header and "wte.weight" in header
    assert not any(name.startswith("transformer.") for name in header)
