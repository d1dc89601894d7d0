"""The bundled default model, minigpt/data/minigpt-tiny/: present, small, well-formed, it talks.

It is what `make demo` runs on a machine with no network, so these tests check what a learner
would notice: the files are there and fit in the package, the weights match their config in
the published GPT-2 layout, the tokenizer round-trips text, greedy output is made of English
words, and greedy search, beam search and sampling do not all print the same thing.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open

import minigpt
from decoding import beam_search, greedy_search, sample
from minigpt.defaults import DEMO_PROMPT
from minigpt.hub import resolve_model_dir
from minigpt.installation import data_dir

REPO = Path(__file__).resolve().parents[1]
BUNDLED = data_dir("minigpt-tiny")
FILES = ["config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md"]
MAX_BYTES = 20 * 1024 * 1024


def load_make_corpus():
    """weights/scripts/make_corpus.py as a module (scripts are not a package)."""
    path = REPO / "weights" / "scripts" / "make_corpus.py"
    spec = importlib.util.spec_from_file_location("make_corpus", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_corpus"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def words(text: str) -> list[str]:
    """Lower-case words of `text`, punctuation dropped."""
    return re.findall(r"[a-z']+", text.lower())


def expected_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Every weight of a GPT-2 with this config, under its published name, with its shape."""
    d, inner = cfg["n_embd"], cfg.get("n_inner") or 4 * cfg["n_embd"]
    shapes = {
        "wte.weight": (cfg["vocab_size"], d),
        "wpe.weight": (cfg["n_positions"], d),
        "ln_f.weight": (d,),
        "ln_f.bias": (d,),
    }
    for i in range(cfg["n_layer"]):
        layer = {
            "ln_1.weight": (d,),
            "ln_1.bias": (d,),
            "attn.c_attn.weight": (d, 3 * d),  # Conv1D: [in, out]
            "attn.c_attn.bias": (3 * d,),
            "attn.c_proj.weight": (d, d),
            "attn.c_proj.bias": (d,),
            "ln_2.weight": (d,),
            "ln_2.bias": (d,),
            "mlp.c_fc.weight": (d, inner),
            "mlp.c_fc.bias": (inner,),
            "mlp.c_proj.weight": (inner, d),
            "mlp.c_proj.bias": (d,),
        }
        shapes.update({f"h.{i}.{name}": shape for name, shape in layer.items()})
    return shapes


@pytest.fixture(scope="module")
def config() -> dict:
    return json.loads((BUNDLED / "config.json").read_text())


@pytest.fixture(scope="module")
def model():
    return minigpt.load(BUNDLED)


@pytest.fixture(scope="module")
def tokenizer():
    return minigpt.load_tokenizer(BUNDLED)


@pytest.fixture(scope="module")
def corpus_words() -> set[str]:
    """Every word the story grammar can produce (a few thousand stories cover them all)."""
    return set(words(load_make_corpus().make_corpus(3000, seed=1)))


# -- Files and layout ---------------------------------------------------------------------------


def test_bundled_files_exist_and_fit_in_the_package():
    assert BUNDLED == REPO / "minigpt" / "data" / "minigpt-tiny"
    assert resolve_model_dir("minigpt-tiny") == BUNDLED
    for name in FILES:
        assert (BUNDLED / name).is_file(), f"minigpt/data/minigpt-tiny/{name} is missing"
    total = sum(p.stat().st_size for p in BUNDLED.iterdir() if p.is_file())
    assert total <= MAX_BYTES, f"bundled model is {total:,} bytes, over the 20 MB budget"


def test_config_is_a_gpt2_config(config):
    assert config["model_type"] == "gpt2"
    assert config["n_embd"] % config["n_head"] == 0, "heads must split n_embd evenly"
    for key in ["n_layer", "n_head", "n_embd", "n_positions", "vocab_size", "eos_token_id"]:
        assert isinstance(config[key], int) and config[key] >= 0, key
    assert 0 <= config["eos_token_id"] < config["vocab_size"]
    assert 0 <= config["bos_token_id"] < config["vocab_size"]


def test_tensors_are_the_published_layout_with_the_config_shapes(config):
    expected = expected_shapes(config)
    with safe_open(str(BUNDLED / "model.safetensors"), framework="numpy") as f:
        names = set(f.keys())
        shapes = {name: tuple(f.get_slice(name).get_shape()) for name in names}
        dtypes = {f.get_slice(name).get_dtype() for name in names}
    weights = {n for n in names if not n.endswith((".attn.bias", ".attn.masked_bias"))}
    assert weights == set(expected), f"names differ: {sorted(weights ^ set(expected))[:5]}"
    assert {name: shapes[name] for name in expected} == expected
    assert dtypes <= {"F32", "F16"}, f"weights must be float32 or float16, got {dtypes}"


def test_tokenizer_matches_the_config(config, tokenizer):
    assert tokenizer.vocab_size == config["vocab_size"]
    assert tokenizer.eos_token_id == config["eos_token_id"] == config["bos_token_id"]
    # Every id the model can emit decodes to something, and nothing beyond it exists.
    vocab = json.loads((BUNDLED / "tokenizer.json").read_text())["model"]["vocab"]
    assert sorted(vocab.values()) == list(range(config["vocab_size"]))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=60))
def test_tokenizer_round_trips_any_text(tokenizer, text):
    """decode(encode(s)) == s: byte-level BPE can spell any string, even outside the corpus."""
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_model_card_says_how_to_rebuild():
    card = (BUNDLED / "MODEL_CARD.md").read_text()
    assert "python weights/scripts/train_tiny.py" in card
    assert "make_corpus.py" in card
    assert re.search(r"validation \*\*\d+\.\d+\*\*", card), "the card states the final loss"


# -- It talks -----------------------------------------------------------------------------------


def continuations(model, tokenizer, config, prompt: str, n: int = 40) -> dict[str, str]:
    """Greedy, beam and sampled continuations (text after the prompt) from minigpt."""
    f = minigpt.NextTokenLogits(model)
    ids = tokenizer.encode(prompt)
    eos = config["eos_token_id"]
    runs = {
        "greedy": greedy_search(f, ids, max_new_tokens=n, eos_token_id=eos),
        "beam": beam_search(f, ids, num_beams=4, max_new_tokens=n, eos_token_id=eos),
        "sample": sample(
            f, ids, rng=np.random.default_rng(0), top_p=0.9, max_new_tokens=n, eos_token_id=eos
        ),
    }
    return {name: tokenizer.decode(run[0].best.new_ids) for name, run in runs.items()}


@pytest.fixture(scope="module")
def texts(model, tokenizer, config) -> dict[str, str]:
    return continuations(model, tokenizer, config, DEMO_PROMPT)


def test_the_model_predicts_held_out_stories_as_well_as_its_card_says(model, tokenizer):
    """The card's validation loss, re-measured on the stories training held out.

    This is what tells trained weights from random ones (loss about ln 1478 = 7.3), a tokenizer
    that does not belong to the weights, or a corpus that changed under the model. It cannot
    tell a slightly wrong formula: GELU's 0.044715 turned into 0.05 moves this loss by 5e-6,
    because a model is as good with either. tests/test_forward_textbook.py catches that.
    """
    card = (BUNDLED / "MODEL_CARD.md").read_text()
    stated = float(re.search(r"validation \*\*(\d+\.\d+)\*\*", card).group(1))
    corpus = load_make_corpus()
    text = corpus.make_corpus(12000, seed=0)  # the card's corpus; training held out the last 2%
    stories = [s.strip() for s in text.split(corpus.END_OF_STORY) if s.strip()]
    held_out = stories[-(len(stories) // 50) :][:40]
    eos = model.config.eos_token_id
    ids = np.array([t for story in held_out for t in [*tokenizer.encode(story), eos]])
    windows = [ids[i : i + model.config.n_positions + 1] for i in range(0, len(ids) - 1, 256)]
    losses = []
    for w in windows:
        result = minigpt.score(model, w.tolist())
        losses += [-lp for lp in result.logprobs]
    measured = float(np.mean(losses))
    print(f"held-out loss {measured:.4f} over {len(losses)} tokens; the card says {stated:.3f}")
    # The card measured 8 batches of random windows; these are 40 whole stories. Each is a
    # sample of a few thousand tokens whose per-token loss has a spread of about 1, so the
    # two means differ by a few hundredths at most.
    assert abs(measured - stated) < 0.05


def test_greedy_output_is_made_of_english_words(texts, corpus_words):
    """Catches a decoder or tokenizer that garbles text (wrong ids, bytes split mid-word);
    what the model computes is held to its formulas by tests/test_forward_textbook.py."""
    text = texts["greedy"]
    found = words(text)
    assert len(found) >= 10, f"greedy wrote too few words: {text!r}"
    assert text.isascii(), f"greedy wrote non-ASCII text: {text!r}"
    known = sum(w in corpus_words for w in found) / len(found)
    assert known >= 0.9, f"only {known:.0%} of greedy's words are English words: {text!r}"


def test_greedy_beam_and_sampling_visibly_differ(texts):
    assert len(set(texts.values())) == 3, f"two decoders wrote the same text: {texts}"


@pytest.mark.reference
def test_minigpt_logits_match_transformers_on_the_bundled_model(model, tokenizer):
    from reference import require_reference

    torch, transformers = require_reference()
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(BUNDLED)).eval()
    ids = tokenizer.encode(DEMO_PROMPT + " girl named Lily. She loved to play in the park.")
    with torch.no_grad():
        expected = hf(torch.tensor([ids])).logits[0].numpy()
    got = model.forward(ids)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
