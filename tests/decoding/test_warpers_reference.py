"""Parity with Hugging Face: every warper, processor and the pipeline against transformers' own
LogitsProcessor classes (and generate()'s own _get_logits_processor for the pipeline).

Exact where the arithmetic is exact. Temperature is one division, top-k a comparison, the
repetition penalty one multiplication or division and no-repeat-ngram a mask: each is a
correctly rounded IEEE operation (or none), so both sides give bit-identical logits.

Decided by the float64 oracle where rounding can move a cut: top-p, min-p and typical compare
float32 sums of float32 exps, which two implementations round differently, and differently
again on another CPU. float64_oracle.py computes each compared quantity in float64 and bounds
how far any float32 computation can stray from it. A token farther from the cut than that
bound must be kept, or removed, by both sides; only a token within it may be kept by one side
and removed by the other. The verdict depends on the logits alone, not on the machine (torch's
ATEN_CPU_CAPABILITY=default/avx2/avx512 kernels and NumPy's with NPY_DISABLE_CPU_FEATURES all
pass it). Kept tokens keep their logit exactly.

Where the cut is hit exactly: logits that are multiples of float32(ln 2) give power-of-two
probabilities, which every float32 softmax computes without rounding, so there `<` versus `<=`
at the cut decides, identically on both sides (test_boundaries_hit_exactly_match_hf).
"""

import numpy as np
import pytest
from float64_oracle import (
    Tally,
    assert_verdicts_hold,
    judge,
    min_p_verdict,
    top_p_verdict,
    typical_verdict,
)
from reference import require_reference

from decoding import (
    Processors,
    Warpers,
    apply_temperature,
    log_softmax,
    min_p_filter,
    no_repeat_ngram,
    repetition_penalty,
    softmax,
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


def assert_identical(ours: np.ndarray, theirs: np.ndarray, where: str) -> None:
    """Bit for bit: the same tokens removed and the same float32 value everywhere else."""
    differ = np.flatnonzero((ours != theirs).ravel())
    for i in differ[:10]:
        print(f"{where}: element {i}: ours {ours.flat[i]!r}, HF {theirs.flat[i]!r}")
    assert differ.size == 0, f"{differ.size} values differ: {where}"


def assert_whole_tie_groups(x: np.ndarray, out: np.ndarray, where: str) -> None:
    """Our top-p keeps or removes all tokens of one logit value together (torch's unstable
    sort lets HF split them: that is one reason the oracle gives ties a range of masses)."""
    for row in range(x.shape[0]):
        kept = ~np.isneginf(out[row])
        for value in np.unique(x[row][kept]):
            assert kept[x[row] == value].all(), f"tie group {value} split: {where}"


@pytest.mark.parametrize("temperature", [0.3, 0.7, 1.0, 1.5, 4.0])
def test_temperature_matches_hf(hf, temperature):
    warper = hf[1].TemperatureLogitsWarper(temperature)
    for kind, x in cases(1):
        ours, theirs = apply_temperature(x, temperature), hf_apply(hf, warper, x)
        assert_identical(ours, theirs, f"{kind} {x.shape}")


@pytest.mark.parametrize("k", [1, 2, 5, 50, 1000, 60000])
def test_top_k_matches_hf(hf, k):
    warper = hf[1].TopKLogitsWarper(k)
    for kind, x in cases(2):
        assert_identical(top_k_filter(x, k), hf_apply(hf, warper, x), f"{kind} {x.shape}")


@pytest.mark.parametrize("p", [0.05, 0.3, 0.8, 0.9, 0.95, 0.999])
def test_top_p_matches_hf(hf, p):
    warper, tally = hf[1].TopPLogitsWarper(p), Tally()
    for kind, x in cases(3):
        ours, where = top_p_filter(x, p), f"top-p {p} {kind} {x.shape}"
        judge(tally, x, ours, hf_apply(hf, warper, x), lambda r: top_p_verdict(r, p), where)
        assert_whole_tie_groups(x, ours, where)
    assert_verdicts_hold(tally, f"top-p {p}")


def test_top_p_float32_boundary_matches_hf(hf):
    """HF's own top-p vector: the two 0.1 tokens' mass, 0.2, is the cut 1 - 0.8 to rounding."""
    x = np.log(np.array([[0.3, 0.1, 0.1, 0.5], [0.15, 0.3, 0.3, 0.25]], dtype=np.float32))
    theirs, tally = hf_apply(hf, hf[1].TopPLogitsWarper(0.8), x), Tally()
    judge(tally, x, top_p_filter(x, 0.8), theirs, lambda r: top_p_verdict(r, 0.8), "HF vector")
    assert_verdicts_hold(tally, "HF's top-p vector")


# Powers of two: logits -k ln 2 give probabilities 2**-k / 2 (each row's exps sum to exactly 2).
# Every cumulative mass, ratio and cut below is then a float32 number computed without
# rounding, so HF's `<=` (top-p), `<` (min-p) and `<` (typical's running mass) decide exactly.
EXACT_K = [[2, 0, 4, 1, 3, 4], [3, 3, 2, 1, 0]]
LN2 = np.float32(np.log(2.0))  # 21 significant bits: k * LN2 is exact for k <= 11


def exact_logits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits, their exact probabilities, their exact log-probabilities), all float32."""
    k = np.array([row + [99] * (6 - len(row)) for row in EXACT_K], dtype=np.float32)
    gone = k == 99  # padding: a removed token
    x = np.where(gone, -np.inf, -k * LN2).astype(np.float32)
    probs = np.where(gone, 0.0, 2.0 ** -(k + 1)).astype(np.float32)
    log_probs = np.where(gone, -np.inf, -(k + 1) * LN2).astype(np.float32)
    return x, probs, log_probs


def test_exact_logits_have_exact_probabilities_on_both_sides(hf):
    """The precondition of the exact-boundary test: both sides' softmax gives the powers of two
    and log_softmax the multiples of LN2, without rounding.

    exp(-k LN2) is 2**-k times (1 - 2e-9 k), a few hundredths of an ulp from it, so any exp
    kernel accurate to 0.9 ulp there returns it; sums of powers of two are exact; log(2) rounds
    to LN2 the same way.
    """
    torch, _ = hf
    x, probs, log_probs = exact_logits()
    t = torch.from_numpy(x)
    assert_identical(softmax(x), probs, "our softmax")
    assert_identical(torch.softmax(t, -1).numpy(), probs, "torch's softmax")
    assert_identical(log_softmax(x), log_probs, "our log_softmax")
    assert_identical(torch.log_softmax(t, -1).numpy(), log_probs, "torch's log_softmax")


@pytest.mark.parametrize("param", [0.25, 0.5, 0.75, 0.875])
def test_boundaries_hit_exactly_match_hf(hf, param):
    """Cumulative masses and ratios land exactly on the cut: `<` versus `<=` shows here."""
    x, _, _ = exact_logits()
    _, lp = hf
    for name, ours, warper in [
        ("top-p", top_p_filter, lp.TopPLogitsWarper),
        ("min-p", min_p_filter, lp.MinPLogitsWarper),
        ("typical", typical_filter, lp.TypicalLogitsWarper),
    ]:
        assert_identical(ours(x, param), hf_apply(hf, warper(param), x), f"{name} {param}")


@pytest.mark.parametrize("p", [0.0, 0.05, 0.1, 0.5, 0.9, 1.0])
def test_min_p_matches_hf(hf, p):
    warper, tally = hf[1].MinPLogitsWarper(p), Tally()
    for kind, x in cases(4):
        ours, where = min_p_filter(x, p), f"min-p {p} {kind} {x.shape}"
        judge(tally, x, ours, hf_apply(hf, warper, x), lambda r: min_p_verdict(r, p), where)
    assert_verdicts_hold(tally, f"min-p {p}")


@pytest.mark.parametrize("mass", [0.05, 0.2, 0.5, 0.9, 0.99])
def test_typical_matches_hf(hf, mass):
    warper, tally = hf[1].TypicalLogitsWarper(mass), Tally()
    for kind, x in cases(5):
        ours, where = typical_filter(x, mass), f"typical {mass} {kind} {x.shape}"
        judge(tally, x, ours, hf_apply(hf, warper, x), lambda r: typical_verdict(r, mass), where)
    assert_verdicts_hold(tally, f"typical {mass}")


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
            ours = repetition_penalty(x, seqs, penalty)
            assert_identical(ours, theirs, f"{kind} {x.shape} {length}")


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_no_repeat_ngram_matches_hf(hf, n):
    processor = hf[1].NoRepeatNGramLogitsProcessor(n)
    rng = np.random.default_rng(7)
    for kind, x in cases(7):
        for length in (1, 3, 8, 30):
            seqs = histories(rng, x.shape[0], x.shape[1], length)
            theirs = hf_apply(hf, processor, x, seqs)
            assert_identical(no_repeat_ngram(x, seqs, n), theirs, f"{kind} {x.shape} {length}")


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

# Our function for each step (x, parameter, sequences), and the oracle of the steps that cut
# by a rounded mass; the other steps are exact.
OURS = {
    "repetition_penalty": lambda x, r, seqs: repetition_penalty(x, seqs, r),
    "no_repeat_ngram_size": lambda x, n, seqs: no_repeat_ngram(x, seqs, n),
    "temperature": lambda x, t, _: apply_temperature(x, t),
    "top_k": lambda x, k, _: top_k_filter(x, k),
    "top_p": lambda x, p, _: top_p_filter(x, p),
    "min_p": lambda x, p, _: min_p_filter(x, p),
    "typical_p": lambda x, m, _: typical_filter(x, m),
}
ORACLE = {"top_p": top_p_verdict, "min_p": min_p_verdict, "typical_p": typical_verdict}


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
    """generate() builds the same steps in the same order, and each step, given the same input
    on both sides, agrees: exactly, or by the oracle's verdict for the cuts."""
    rng = np.random.default_rng(8)
    tally = Tally()
    for trial in range(60):
        params = random_settings(rng)
        penalty, ngram = params["repetition_penalty"], params["no_repeat_ngram_size"]
        processors = Processors(repetition_penalty=penalty, no_repeat_ngram_size=ngram)
        warpers = Warpers(**{name: params[name] for name in WARPER_PARAMS})
        steps = processors.active() + warpers.active()
        # (V = 50257 is covered warper by warper above; here the order and the skips matter)
        for shape in [(3, 5), (2, 50), (2, 1000)]:
            kind = ["normal", "neg_inf", "peaked"][trial % 3]
            x = make_logits(rng, shape, kind)
            seqs = histories(rng, shape[0], shape[1], 12)
            hf_list = hf_processor_list(len(seqs[0]), **params)
            assert [HF_NAMES[type(p).__name__] for p in hf_list] == [n for n, _ in steps], params
            current = x
            for (name, param), hf_step in zip(steps, hf_list):
                ours = OURS[name](current, param, seqs)
                theirs = hf_apply(hf, hf_step, current, seqs)
                where = f"{name}={param} in {params} {kind} {shape}"
                if name in ORACLE:
                    verdict = ORACLE[name]
                    judge(tally, current, ours, theirs, lambda r: verdict(r, param), where)  # noqa: B023
                else:
                    assert_identical(ours, theirs, where)
                current = ours  # both sides take the next step from the same input
            # our pipeline is exactly our steps in this order
            assert_identical(warpers.apply(processors.apply(x, seqs))[0], current, "pipeline")
    assert_verdicts_hold(tally, "pipeline cuts")
