"""Parity with Hugging Face: every warper, processor and the pipeline against transformers' own
LogitsProcessor classes (and generate()'s own _get_logits_processor for the pipeline).

The kept/removed mask must be identical and kept values equal to 1e-6, with two documented
exceptions:
- Where tokens with *equal* logits straddle the top-p boundary, HF keeps an arbitrary subset of
  them (torch.sort is not stable) while we keep them all; there we check that we keep HF's set
  plus only tokens tied with its cutoff.
- Our softmax/log_softmax differ from torch's by a few float32 ulps (different exp/log and
  summation order). At V = 50257 the tokens are dense enough that a token can sit within those
  ulps of a top-p / min-p / typical boundary and flip. We allow at most MAX_FLIPS such tokens per
  test over all its cases, and each must lie on the boundary by an exact (float64) ranking.
"""

import numpy as np
import pytest
from reference import require_reference

from decoding import (
    Processors,
    Warpers,
    apply_temperature,
    min_p_filter,
    no_repeat_ngram,
    repetition_penalty,
    top_k_filter,
    top_p_filter,
    typical_filter,
)

pytestmark = pytest.mark.reference

SHAPES = [(1, 1), (1, 2), (3, 5), (4, 16), (2, 33), (2, 1000), (1, 50257)]
KINDS = ["normal", "ties", "neg_inf", "peaked"]


@pytest.fixture(scope="module")
def hf():
    torch, transformers = require_reference()
    from transformers.generation import logits_process

    return torch, logits_process


def make_logits(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    """Random float32 logits: plain, full of ties, partly -inf, or with one dominant token."""
    x = rng.normal(0.0, 3.0, size=shape).astype(np.float32)
    if kind == "ties":
        x = np.round(x / 2).astype(np.float32)  # a handful of distinct values per row
    elif kind == "neg_inf":
        x[rng.random(shape) < 0.4] = -np.inf
        x[:, rng.integers(shape[1])] = 1.0  # never a whole row removed
    elif kind == "peaked":
        x[np.arange(shape[0]), rng.integers(shape[1], size=shape[0])] += 20.0
    return x


def cases(seed: int):
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        for kind in KINDS:
            yield kind, make_logits(rng, shape, kind)


def hf_apply(hf, processor, logits: np.ndarray, sequences=None) -> np.ndarray:
    torch, _ = hf
    ids = None if sequences is None else torch.tensor(sequences, dtype=torch.long)
    return processor(ids, torch.from_numpy(logits.copy())).numpy()


MAX_FLIPS = 2


def assert_same(ours: np.ndarray, theirs: np.ndarray, where: str) -> None:
    removed = np.isneginf(theirs)
    np.testing.assert_array_equal(np.isneginf(ours), removed, err_msg=f"mask differs: {where}")
    np.testing.assert_allclose(ours[~removed], theirs[~removed], rtol=1e-6, atol=1e-6)


def boundary_flips(ours, theirs, score, where: str, tol: float = 0.0) -> int:
    """Count tokens kept by only one side; each must rank, by `score` (higher = kept first),
    between the tokens both keep and the tokens both remove."""
    ours_kept, hf_kept = ~np.isneginf(ours), ~np.isneginf(theirs)
    both = ours_kept & hf_kept
    np.testing.assert_allclose(ours[both], theirs[both], rtol=1e-6, atol=1e-6)
    flips = 0
    for row in range(ours.shape[0]):
        differ = ours_kept[row] != hf_kept[row]
        if differ.any():
            s = score[row]
            lowest_kept = s[both[row]].min(initial=np.inf)
            highest_removed = s[~ours_kept[row] & ~hf_kept[row]].max(initial=-np.inf)
            assert (s[differ] <= lowest_kept + tol).all(), f"flip inside the kept set: {where}"
            assert (s[differ] >= highest_removed - tol).all(), f"flip deep in the tail: {where}"
            flips += int(differ.sum())
    return flips


def typicality(x: np.ndarray) -> np.ndarray:
    """-|(-log p) - H| in float64: higher means more typical (kept first by typical_filter)."""
    z = x.astype(np.float64) - x.max(-1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
    p = np.exp(logp)
    entropy = -np.sum(p * np.where(p > 0, logp, 0.0), axis=-1, keepdims=True)
    return -np.abs(-logp - entropy)


def assert_same_up_to_boundary_ties(x, ours, theirs, where: str) -> None:
    """Ours keeps HF's set plus, at most, the tokens tied with HF's lowest kept logit."""
    ours_kept, hf_kept = ~np.isneginf(ours), ~np.isneginf(theirs)
    assert (ours_kept | ~hf_kept).all(), f"HF keeps a token we removed: {where}"
    for row in range(x.shape[0]):
        extra = ours_kept[row] & ~hf_kept[row]
        cutoff = x[row][hf_kept[row]].min()
        assert (x[row][extra] == cutoff).all(), f"extra token not tied at the cutoff: {where}"
    np.testing.assert_array_equal(ours[ours_kept], x[ours_kept])


@pytest.mark.parametrize("temperature", [0.3, 0.7, 1.0, 1.5, 4.0])
def test_temperature_matches_hf(hf, temperature):
    warper = hf[1].TemperatureLogitsWarper(temperature)
    for kind, x in cases(1):
        assert_same(apply_temperature(x, temperature), hf_apply(hf, warper, x), f"{kind} {x.shape}")


@pytest.mark.parametrize("k", [1, 2, 5, 50, 1000, 60000])
def test_top_k_matches_hf(hf, k):
    warper = hf[1].TopKLogitsWarper(k)
    for kind, x in cases(2):
        assert_same(top_k_filter(x, k), hf_apply(hf, warper, x), f"{kind} {x.shape}")


@pytest.mark.parametrize("p", [0.05, 0.3, 0.8, 0.9, 0.95, 0.999])
def test_top_p_matches_hf(hf, p):
    warper = hf[1].TopPLogitsWarper(p)
    flips = 0
    for kind, x in cases(3):
        ours, theirs, where = top_p_filter(x, p), hf_apply(hf, warper, x), f"{kind} {x.shape}"
        if kind == "ties":
            assert_same_up_to_boundary_ties(x, ours, theirs, where)
        else:
            flips += boundary_flips(ours, theirs, x, where)
    assert flips <= MAX_FLIPS


def test_top_p_float32_boundary_matches_hf(hf):
    x = np.log(np.array([[0.3, 0.1, 0.1, 0.5], [0.15, 0.3, 0.3, 0.25]], dtype=np.float32))
    theirs = hf_apply(hf, hf[1].TopPLogitsWarper(0.8), x)
    assert_same(top_p_filter(x, 0.8), theirs, "HF's own top-p vector")


EXACT = [[0.25, 0.75, 0.0, 0.0], [0.125, 0.375, 0.5, 0.0], [0.25, 0.5, 0.25, 0.0]]


@pytest.mark.parametrize("param", [0.25, 0.5, 0.75, 0.875])
def test_boundaries_hit_exactly_match_hf(hf, param):
    """Dyadic probabilities make cumulative masses and ratios land exactly on the threshold."""
    with np.errstate(divide="ignore"):
        x = np.log(np.array(EXACT, dtype=np.float32))
    _, lp = hf
    theirs = hf_apply(hf, lp.TopPLogitsWarper(param), x)
    # (the last row's two 0.25 tie at the boundary for p = 0.75: HF keeps one of them)
    assert_same_up_to_boundary_ties(x, top_p_filter(x, param), theirs, f"top-p {param}")
    theirs = hf_apply(hf, lp.MinPLogitsWarper(param), x)
    assert_same(min_p_filter(x, param), theirs, f"min-p {param}")
    theirs = hf_apply(hf, lp.TypicalLogitsWarper(param), x)
    assert_same(typical_filter(x, param), theirs, f"typical {param}")


@pytest.mark.parametrize("p", [0.0, 0.05, 0.1, 0.5, 0.9, 1.0])
def test_min_p_matches_hf(hf, p):
    warper = hf[1].MinPLogitsWarper(p)
    flips = 0
    for kind, x in cases(4):
        ours, theirs = min_p_filter(x, p), hf_apply(hf, warper, x)
        flips += boundary_flips(ours, theirs, x, f"{kind} {x.shape}")
    assert flips <= MAX_FLIPS


@pytest.mark.parametrize("mass", [0.05, 0.2, 0.5, 0.9, 0.99])
def test_typical_matches_hf(hf, mass):
    warper = hf[1].TypicalLogitsWarper(mass)
    flips = 0
    for kind, x in cases(5):
        ours, theirs = typical_filter(x, mass), hf_apply(hf, warper, x)
        # float32 gaps (and torch's entropy) are off by ~1e-5 from exact: that is the slack
        flips += boundary_flips(ours, theirs, typicality(x), f"{kind} {x.shape}", tol=1e-4)
    assert flips <= MAX_FLIPS


def histories(rng, batch: int, vocab: int, length: int) -> list[list[int]]:
    """Token histories over a few ids (so n-grams repeat), with some ids past the vocab."""
    alphabet = min(vocab, 4) + 2
    return rng.integers(0, alphabet, size=(batch, length)).tolist()


@pytest.mark.parametrize("penalty", [0.5, 1.3, 2.0])
def test_repetition_penalty_matches_hf(hf, penalty):
    processor = hf[1].RepetitionPenaltyLogitsProcessor(penalty)
    rng = np.random.default_rng(6)
    for kind, x in cases(6):
        for length in (1, 7, 30):
            seqs = histories(rng, x.shape[0], x.shape[1], length)
            theirs = hf_apply(hf, processor, x, seqs)
            assert_same(repetition_penalty(x, seqs, penalty), theirs, f"{kind} {x.shape} {length}")


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_no_repeat_ngram_matches_hf(hf, n):
    processor = hf[1].NoRepeatNGramLogitsProcessor(n)
    rng = np.random.default_rng(7)
    for kind, x in cases(7):
        for length in (1, 3, 8, 30):
            seqs = histories(rng, x.shape[0], x.shape[1], length)
            theirs = hf_apply(hf, processor, x, seqs)
            assert_same(no_repeat_ngram(x, seqs, n), theirs, f"{kind} {x.shape} {length}")


# --- the whole pipeline, against generate()'s own choice and order of processors -----------

HF_NAMES = {
    "RepetitionPenaltyLogitsProcessor": "repetition_penalty",
    "NoRepeatNGramLogitsProcessor": "no_repeat_ngram_size",
    "TemperatureLogitsWarper": "temperature",
    "TopKLogitsWarper": "top_k",
    "TopPLogitsWarper": "top_p",
    "MinPLogitsWarper": "min_p",
    "TypicalLogitsWarper": "typical_p",
}


@pytest.fixture(scope="module")
def hf_processor_list(hf):
    """A function: generation parameters -> the LogitsProcessorList generate() would build."""
    torch, _ = hf
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=1, n_head=1, n_embd=4, vocab_size=8, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config)

    def build(length: int, **params):
        return model._get_logits_processor(
            generation_config=GenerationConfig(do_sample=True, **params),
            input_ids_seq_length=length,
            encoder_input_ids=torch.zeros((1, length), dtype=torch.long),
            device="cpu",
            model_kwargs={},
        )

    return build


WARPER_PARAMS = ("temperature", "top_k", "top_p", "min_p", "typical_p")


def random_settings(rng: np.random.Generator) -> dict:
    def maybe(values):
        return values[rng.integers(len(values))]

    return {
        "temperature": maybe([1.0, 0.6, 1.4]),
        "top_k": maybe([None, 0, 3, 40]),
        "top_p": maybe([None, 1.0, 0.5, 0.9]),
        "min_p": maybe([None, 0.0, 0.05]),
        "typical_p": maybe([None, 1.0, 0.7]),
        "repetition_penalty": maybe([None, 1.0, 1.3]),
        "no_repeat_ngram_size": maybe([None, 0, 2]),
    }


def test_pipeline_matches_generate(hf, hf_processor_list):
    rng = np.random.default_rng(8)
    for trial in range(60):
        params = random_settings(rng)
        penalty, ngram = params["repetition_penalty"], params["no_repeat_ngram_size"]
        processors = Processors(repetition_penalty=penalty, no_repeat_ngram_size=ngram)
        warpers = Warpers(**{name: params[name] for name in WARPER_PARAMS})
        # (V = 50257 is covered warper by warper above; here the order and the skips matter)
        for shape in [(3, 5), (2, 50), (2, 1000)]:
            kind = ["normal", "neg_inf", "peaked"][trial % 3]  # no ties: see the module docstring
            x = make_logits(rng, shape, kind)
            seqs = histories(rng, shape[0], shape[1], 12)
            hf_list = hf_processor_list(len(seqs[0]), **params)
            hf_steps = [HF_NAMES[type(p).__name__] for p in hf_list]
            assert hf_steps == [n for n, _ in processors.active() + warpers.active()], params
            ours, _ = warpers.apply(processors.apply(x, seqs))
            assert_same(ours, hf_apply(hf, hf_list, x, seqs), f"{params} {kind} {shape}")
