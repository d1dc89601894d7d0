"""The bundled draft model, minigpt/data/minigpt-tiny-draft/: small, speaking minigpt-tiny's ids.

Speculative decoding lets a cheap draft model propose tokens that the target (the bundled
minigpt-tiny) then checks. That only works if both read and write the same token ids, so these
tests check that the draft shares the target's tokenizer file, vocabulary, end-of-text id and
context length, that it really is small, and that its card's figures hold: its held-out loss,
and how often its greedy token is the target's (the acceptance rate of greedy speculative
decoding), re-measured here with minigpt on stories that training held out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_bundled_model import expected_shapes, load_make_corpus

import minigpt
from minigpt.installation import data_dir

REPO = Path(__file__).resolve().parents[1]
DRAFT = data_dir("minigpt-tiny-draft")
TARGET = data_dir("minigpt-tiny")
FILES = ["config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md"]
MAX_MODEL_BYTES = 3 * 1024 * 1024


def card() -> str:
    return (DRAFT / "MODEL_CARD.md").read_text()


def stated_agreement() -> float:
    """The card's greedy agreement, as a fraction."""
    found = re.search(r"Greedy agreement on held-out stories: \*\*(\d+\.\d)%\*\*", card())
    assert found, "the card states the greedy agreement with minigpt-tiny"
    return float(found.group(1)) / 100


@pytest.fixture(scope="module")
def configs() -> tuple[dict, dict]:
    return tuple(json.loads((d / "config.json").read_text()) for d in (DRAFT, TARGET))


@pytest.fixture(scope="module")
def draft():
    return minigpt.load(DRAFT)


@pytest.fixture(scope="module")
def target():
    return minigpt.load(TARGET)


@pytest.fixture(scope="module")
def held_out() -> list[str]:
    """The stories that training held out (the last 2% of the cards' corpus)."""
    corpus = load_make_corpus()
    text = corpus.make_corpus(12000, seed=0)
    stories = [s.strip() for s in text.split(corpus.END_OF_STORY) if s.strip()]
    return stories[-(len(stories) // 50) :]


# -- Files, size, packaging ---------------------------------------------------------------------


def test_draft_files_exist_and_the_weights_fit_in_3_mb():
    assert DRAFT == REPO / "minigpt" / "data" / "minigpt-tiny-draft"
    for name in FILES:
        assert (DRAFT / name).is_file(), f"minigpt/data/minigpt-tiny-draft/{name} is missing"
    size = (DRAFT / "model.safetensors").stat().st_size
    assert size <= MAX_MODEL_BYTES, f"draft weights are {size:,} bytes, over 3 MB"


def test_the_draft_ships_in_the_package():
    """setuptools ships only the data folders pyproject.toml lists (tests/test_install.py
    builds the wheel)."""
    line = re.search(r'^"minigpt\.data" = \[.*\]$', (REPO / "pyproject.toml").read_text(), re.M)
    assert line and '"minigpt-tiny-draft/*"' in line.group(0)


# -- It speaks the target's ids -----------------------------------------------------------------


def test_the_tokenizer_is_the_targets_byte_for_byte():
    assert (DRAFT / "tokenizer.json").read_bytes() == (TARGET / "tokenizer.json").read_bytes()


def test_vocabulary_end_of_text_and_context_are_the_targets(configs, draft):
    ours, theirs = configs
    for key in ["vocab_size", "n_positions", "eos_token_id", "bos_token_id", "model_type"]:
        assert ours[key] == theirs[key], key
    assert draft.config.vocab_size == minigpt.load_tokenizer(DRAFT).vocab_size


def test_the_draft_is_much_smaller_than_the_target(configs, draft, target):
    ours, theirs = configs
    assert ours["n_layer"] < theirs["n_layer"] and ours["n_embd"] < theirs["n_embd"]
    assert ours["n_embd"] % ours["n_head"] == 0, "heads must split n_embd evenly"
    sizes = [sum(map(np.prod, expected_shapes(c).values())) for c in configs]
    assert sizes[0] * 4 <= sizes[1], f"draft has {sizes[0]:,} weights, target {sizes[1]:,}"
    ids = [41, 511, 259, 527]
    assert draft.forward(ids).shape == target.forward(ids).shape == (4, ours["vocab_size"])


# -- Its card's figures hold --------------------------------------------------------------------


def test_the_card_states_losses_agreement_and_how_to_rebuild():
    text = card()
    assert re.search(r"train\s+\*\*\d+\.\d+\*\*, validation \*\*\d+\.\d+\*\*", text)
    assert 0 < stated_agreement() <= 1
    assert "python weights/scripts/train_tiny.py --draft-of minigpt/data/minigpt-tiny" in text
    assert "make_corpus.py" in text


def greedy_agreement(draft, target, tokenizer, stories: list[str]) -> tuple[float, int]:
    """Fraction of positions where both models' most likely next token is the same.

    One forward pass of each whole story (its first n_positions tokens) gives the logits at
    every position; train_tiny.py measured the card's figure the same way, with torch.
    """
    agree = total = 0
    for story in stories:
        ids = tokenizer.encode(story)[: target.config.n_positions]
        a = draft.forward(ids).argmax(axis=-1)
        b = target.forward(ids).argmax(axis=-1)
        agree += int((a == b).sum())
        total += len(ids)
    return agree / total, total


def test_greedy_agreement_with_the_target_is_what_the_card_says(draft, target, held_out):
    """The acceptance rate of greedy speculative decoding, re-measured on 30 held-out stories.

    The card measured all the held-out stories; these are the first 30 (about 4,500
    positions). Stories differ in how predictable they are, so the two rates differ by a point
    or two; a draft trained with another tokenizer, or random weights, agrees far less.
    """
    stated = stated_agreement()
    measured, n = greedy_agreement(draft, target, minigpt.load_tokenizer(DRAFT), held_out[:30])
    print(f"greedy agreement {measured:.4f} over {n} positions; the card says {stated:.3f}")
    assert abs(measured - stated) < 0.04


def test_the_draft_predicts_held_out_stories_as_well_as_its_card_says(draft, held_out):
    """As tests/test_bundled_model.py does for the target: 40 held-out stories, scored."""
    stated = float(re.search(r"validation \*\*(\d+\.\d+)\*\*", card()).group(1))
    tokenizer = minigpt.load_tokenizer(DRAFT)
    eos = draft.config.eos_token_id
    ids = np.array([t for story in held_out[:40] for t in [*tokenizer.encode(story), eos]])
    n = draft.config.n_positions
    losses = []
    for start in range(0, len(ids) - 1, n):
        losses += [-lp for lp in minigpt.score(draft, ids[start : start + n + 1].tolist()).logprobs]
    measured = float(np.mean(losses))
    print(f"held-out loss {measured:.4f} over {len(losses)} tokens; the card says {stated:.3f}")
    assert abs(measured - stated) < 0.05


def test_the_draft_resolves_by_name_from_anywhere(tmp_path, monkeypatch):
    from minigpt.hub import resolve_model_dir

    monkeypatch.chdir(tmp_path)
    assert resolve_model_dir("minigpt-tiny-draft") == DRAFT
