"""Parity with Hugging Face for the newer processors, warpers and stopping criteria: each of
ours against transformers' own class on random float32 logits (several shapes, kinds and
seeds), and the whole pipeline against the list generate() itself builds.

Exact where the arithmetic is exact: sequence_bias and bad_words_ids add float32 biases in
HF's order, the EOS-timing processors and the token suppressions set -inf or add one float32
product; both sides then give the same values, which we check element for element.

Decided by the float64 oracle where rounding can move a cut (float64_oracle_cutoffs.py):
epsilon and eta compare a float32 probability with a cut, top-H a float32 running sum of
-p log p with top_h * H. A token farther from its cut than the float32 error bound must be
kept, or removed, by both sides; only a token within it may go either way. Kept tokens keep
their logit exactly. renormalize_logits changes every value: there each side must be within
the log_softmax error bound of float64's log-probability.

min_tokens_to_keep > 1 is checked here for the older filters too (top-k exactly; top-p,
min-p and typical through the oracle, with the spared tokens added to its verdicts).
"""

from __future__ import annotations

import numpy as np
import pytest
from float64_oracle import (
    Softmax64,
    Tally,
    assert_verdicts_hold,
    judge,
    logp_error,
    min_p_verdict,
    top_p_verdict,
    typical_verdict,
)
from float64_oracle_cutoffs import (
    epsilon_verdict,
    eta_verdict,
    force_top_logits,
    force_typical_head,
    top_h_verdict,
)
from reference import require_reference
from test_warpers_reference import assert_identical, cases, hf_apply, make_logits

from decoding.biasing import bad_words_ids, sequence_bias
from decoding.length_processors import exponential_decay_length_penalty, min_length, min_new_tokens
from decoding.pipeline import Pipeline
from decoding.processors import begin_suppress_tokens, renormalize_logits, suppress_tokens
from decoding.stopping import stop_strings
from decoding.warpers import (
    Warpers,
    epsilon_cutoff,
    eta_cutoff,
    min_p_filter,
    top_h,
    top_k_filter,
    top_p_filter,
    typical_filter,
)

pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def hf():
    torch, _ = require_reference()
    from transformers.generation import logits_process

    return torch, logits_process


def histories(rng, batch: int, vocab: int, length: int) -> list[list[int]]:
    """Equal-length token histories over a few ids, so that short sequences recur."""
    return rng.integers(0, min(vocab, 4), size=(batch, length)).tolist()


def random_sequences(rng, vocab: int, count: int) -> list[list[int]]:
    """`count` distinct token sequences of 1 to 3 ids over the same few ids."""
    found: dict[tuple[int, ...], None] = {}
    while len(found) < count:
        found[tuple(rng.integers(0, min(vocab, 4), size=rng.integers(1, 4)).tolist())] = None
    return [list(s) for s in found]


# --- the exact processors -------------------------------------------------------------------


@pytest.mark.parametrize("seed", [11, 12])
def test_sequence_bias_matches_hf(hf, seed):
    rng = np.random.default_rng(seed)
    for kind, x in cases(seed):
        v = x.shape[1]
        for length in (1, 2, 6):
            biased = random_sequences(rng, v, min(3 * v, 6))
            # HF insists on Python floats; several sequences share a last token on purpose
            pairs = [[s, float(np.float32(rng.normal(0, 5)))] for s in biased]
            seqs = histories(rng, x.shape[0], v, length)
            processor = hf[1].SequenceBiasLogitsProcessor(sequence_bias=pairs)
            ours = sequence_bias(x, seqs, pairs)
            assert_identical(ours, hf_apply(hf, processor, x, seqs), f"{kind} {x.shape} {pairs}")


@pytest.mark.parametrize("seed", [13, 14])
def test_bad_words_ids_match_hf(hf, seed):
    rng = np.random.default_rng(seed)
    for kind, x in cases(seed):
        v = x.shape[1]
        eos = int(rng.integers(v))
        for length in (1, 3, 7):
            words = random_sequences(rng, v, min(2 * v, 5)) + [[eos]]
            seqs = histories(rng, x.shape[0], v, length)
            processor = hf[1].NoBadWordsLogitsProcessor(bad_words_ids=words, eos_token_id=eos)
            ours = bad_words_ids(x, seqs, words, eos_token_id=eos)
            assert_identical(ours, hf_apply(hf, processor, x, seqs), f"{kind} {x.shape} {words}")


def test_length_processors_match_hf(hf):
    rng = np.random.default_rng(15)
    lp = hf[1]
    for kind, x in cases(15):
        b, v = x.shape
        eos = int(rng.integers(v))
        for prompt, length in [(1, 1), (3, 3), (3, 4), (3, 6), (5, 12)]:
            seqs = histories(rng, b, v, length)
            where = f"{kind} {x.shape} prompt {prompt} length {length}"
            for n in (0, 2, 4, 9):
                theirs = hf_apply(hf, lp.MinLengthLogitsProcessor(n, eos), x, seqs)
                assert_identical(min_length(x, seqs, n, eos), theirs, f"min_length {n} {where}")
                processor = lp.MinNewTokensLengthLogitsProcessor(prompt, n, eos)
                ours = min_new_tokens(x, seqs, b * [prompt], n, eos)
                assert_identical(ours, hf_apply(hf, processor, x, seqs), f"min_new {n} {where}")
            for decay in [(0, 1.5), (1, 1.1), (2, 0.7), (0, 3.0)]:
                processor = lp.ExponentialDecayLengthPenalty(decay, eos, prompt)
                ours = exponential_decay_length_penalty(x, seqs, b * [prompt], decay, eos)
                assert_identical(ours, hf_apply(hf, processor, x, seqs), f"decay {decay} {where}")


def test_suppressions_match_hf(hf):
    rng = np.random.default_rng(16)
    lp = hf[1]
    for kind, x in cases(16):
        b, v = x.shape
        tokens = rng.integers(0, v + 3, size=rng.integers(1, 5)).tolist()  # some past the vocab
        theirs = hf_apply(hf, lp.SuppressTokensLogitsProcessor(tokens), x, histories(rng, b, v, 2))
        assert_identical(suppress_tokens(x, tokens), theirs, f"suppress {tokens} {kind}")
        for prompt, length in [(1, 1), (2, 2), (2, 3), (4, 9)]:
            seqs = histories(rng, b, v, length)
            processor = lp.SuppressTokensAtBeginLogitsProcessor(tokens, begin_index=prompt)
            ours = begin_suppress_tokens(x, seqs, b * [prompt], tokens)
            where = f"begin_suppress {tokens} prompt {prompt} length {length} {kind}"
            assert_identical(ours, hf_apply(hf, processor, x, seqs), where)


def assert_log_probs_within_bound(x, ours, theirs, where: str) -> float:
    """Both sides' float32 log-probabilities of `x` within log_softmax's error bound of
    float64's (the worst error, as a fraction of its bound, is returned); -inf stays -inf."""
    worst = 0.0
    for row in range(x.shape[0]):
        finite = np.isfinite(x[row])
        assert np.isneginf(ours[row][~finite]).all() and np.isneginf(theirs[row][~finite]).all()
        s = Softmax64.of(x[row][finite])
        bound = logp_error(s)
        for side in (ours, theirs):
            error = np.abs(side[row][finite].astype(np.float64) - s.logp)
            worst = max(worst, float((error / bound).max()))
            assert (error <= bound).all(), f"{where} row {row}: error {error.max():.3e}"
    return worst


def test_renormalize_logits_matches_hf_within_rounding(hf):
    processor = hf[1].LogitNormalization()
    worst = 0.0
    for kind, x in cases(17):
        ours, theirs = renormalize_logits(x), hf_apply(hf, processor, x)
        assert ours.dtype == np.float32
        worst = max(worst, assert_log_probs_within_bound(x, ours, theirs, f"{kind} {x.shape}"))
    print(f"renormalize_logits: worst error {worst:.3f} of the bound")


# --- the cuts -------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [1, 2, 3])
@pytest.mark.parametrize("epsilon", [1e-4, 3e-3, 0.05, 0.3, 0.9])
def test_epsilon_cutoff_matches_hf(hf, epsilon, keep):
    warper, tally = hf[1].EpsilonLogitsWarper(epsilon, min_tokens_to_keep=keep), Tally()
    for kind, x in cases(18):
        ours, where = epsilon_cutoff(x, epsilon, keep), f"epsilon {epsilon} keep {keep} {kind}"
        verdict = lambda r: epsilon_verdict(r, epsilon, keep)  # noqa: E731
        judge(tally, x, ours, hf_apply(hf, warper, x), verdict, where)
    assert_verdicts_hold(tally, f"epsilon {epsilon} keep {keep}")


@pytest.mark.parametrize("keep", [1, 2, 3])
@pytest.mark.parametrize("epsilon", [1e-4, 3e-3, 0.0625, 0.3, 0.9])
def test_eta_cutoff_matches_hf(hf, epsilon, keep):
    warper, tally = hf[1].EtaLogitsWarper(epsilon, min_tokens_to_keep=keep), Tally()
    for kind, x in cases(19):
        ours, where = eta_cutoff(x, epsilon, keep), f"eta {epsilon} keep {keep} {kind}"
        verdict = lambda r: eta_verdict(r, epsilon, keep)  # noqa: E731
        judge(tally, x, ours, hf_apply(hf, warper, x), verdict, where)
    assert_verdicts_hold(tally, f"eta {epsilon} keep {keep}")


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.5, 0.8, 0.95, 1.0])
def test_top_h_matches_hf(hf, alpha):
    warper, tally = hf[1].TopHLogitsWarper(alpha), Tally()
    for seed in (20, 21):
        for kind, x in cases(seed):
            ours, where = top_h(x, alpha), f"top-h {alpha} {kind} {x.shape}"
            judge(tally, x, ours, hf_apply(hf, warper, x), lambda r: top_h_verdict(r, alpha), where)
    assert_verdicts_hold(tally, f"top-h {alpha}")


@pytest.mark.parametrize("keep", [2, 3, 7])
def test_older_filters_with_min_tokens_to_keep_match_hf(hf, keep):
    lp, tally = hf[1], Tally()
    for kind, x in cases(22):
        for k in (1, 2, 5):
            theirs = hf_apply(hf, lp.TopKLogitsWarper(k, min_tokens_to_keep=keep), x)
            assert_identical(top_k_filter(x, k, keep), theirs, f"top-k {k} keep {keep} {kind}")
        for p in (0.05, 0.5, 0.9):
            where = f"top-p {p} keep {keep} {kind} {x.shape}"
            ours = top_p_filter(x, p, keep)
            theirs = hf_apply(hf, lp.TopPLogitsWarper(p, min_tokens_to_keep=keep), x)
            verdict = lambda r: force_top_logits(top_p_verdict(r, p), r, keep)  # noqa: B023, E731
            judge(tally, x, ours, theirs, verdict, where)
        for p in (0.1, 0.5, 0.9):
            where = f"min-p {p} keep {keep} {kind} {x.shape}"
            ours = min_p_filter(x, p, keep)
            theirs = hf_apply(hf, lp.MinPLogitsWarper(p, min_tokens_to_keep=keep), x)
            verdict = lambda r: force_top_logits(min_p_verdict(r, p), r, keep)  # noqa: B023, E731
            judge(tally, x, ours, theirs, verdict, where)
        for m in (0.05, 0.5, 0.9):
            where = f"typical {m} keep {keep} {kind} {x.shape}"
            ours = typical_filter(x, m, keep)
            theirs = hf_apply(hf, lp.TypicalLogitsWarper(m, min_tokens_to_keep=keep), x)
            verdict = lambda r: force_typical_head(typical_verdict(r, m), r, keep)  # noqa: B023, E731
            judge(tally, x, ours, theirs, verdict, where)
    assert_verdicts_hold(tally, f"older filters, min_tokens_to_keep {keep}")


# --- the whole pipeline, against generate()'s own choice and order of steps ----------------

HF_NAMES = {
    "SequenceBiasLogitsProcessor": "sequence_bias",
    "RepetitionPenaltyLogitsProcessor": "repetition_penalty",
    "NoRepeatNGramLogitsProcessor": "no_repeat_ngram_size",
    "NoBadWordsLogitsProcessor": "bad_words_ids",
    "MinLengthLogitsProcessor": "min_length",
    "MinNewTokensLengthLogitsProcessor": "min_new_tokens",
    "ExponentialDecayLengthPenalty": "exponential_decay_length_penalty",
    "SuppressTokensLogitsProcessor": "suppress_tokens",
    "SuppressTokensAtBeginLogitsProcessor": "begin_suppress_tokens",
    "TemperatureLogitsWarper": "temperature",
    "TopHLogitsWarper": "top_h",
    "TopKLogitsWarper": "top_k",
    "TopPLogitsWarper": "top_p",
    "MinPLogitsWarper": "min_p",
    "TypicalLogitsWarper": "typical_p",
    "EpsilonLogitsWarper": "epsilon_cutoff",
    "EtaLogitsWarper": "eta_cutoff",
    "LogitNormalization": "renormalize_logits",
}
CUTS = {
    "top_p": top_p_verdict,
    "min_p": min_p_verdict,
    "typical_p": typical_verdict,
    "epsilon_cutoff": epsilon_verdict,
    "eta_cutoff": eta_verdict,
    "top_h": top_h_verdict,
}
PROMPT, VOCAB, EOS = 4, 7, 6


@pytest.fixture(scope="module")
def hf_processor_list(hf):
    """Generation parameters -> the LogitsProcessorList generate() would build, with the
    min_length generate() itself derives from min_new_tokens (_prepare_generated_length
    replaces min_length by min_new_tokens + the prompt length)."""
    torch, _ = hf
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=1, n_head=1, n_embd=4, vocab_size=VOCAB, eos_token_id=EOS)
    model = GPT2LMHeadModel(config)

    def build(do_sample: bool, **params):
        if params.get("min_new_tokens") is not None:
            params["min_length"] = params["min_new_tokens"] + PROMPT
        generation_config = GenerationConfig(do_sample=do_sample, **params)
        generation_config._eos_token_tensor = torch.tensor([EOS])  # what generate() sets up
        return model._get_logits_processor(
            generation_config=generation_config,
            input_ids_seq_length=PROMPT,
            encoder_input_ids=torch.zeros((1, PROMPT), dtype=torch.long),
            device="cpu",
            model_kwargs={},
        )

    return build


def random_settings(rng: np.random.Generator) -> dict:
    def maybe(values):
        return values[rng.integers(len(values))]

    return {
        "sequence_bias": maybe([None, [[[1], 2.5], [[2, 3], -4.0], [[3, 3], 1.0]]]),
        "repetition_penalty": maybe([None, 1.0, 1.3]),
        "no_repeat_ngram_size": maybe([None, 0, 2]),
        "bad_words_ids": maybe([None, [[2], [1, 3], [EOS]]]),
        "min_length": maybe([None, 0, 7]),
        "min_new_tokens": maybe([None, 0, 2]),
        "exponential_decay_length_penalty": maybe([None, (1, 1.5)]),
        "suppress_tokens": maybe([None, [0], [0, 5]]),
        "begin_suppress_tokens": maybe([None, [1, 2]]),
        "renormalize_logits": maybe([False, True]),
        "temperature": maybe([1.0, 0.7, 1.3]),
        "top_h": maybe([None, 0.6, 1.0]),
        "top_k": maybe([None, 0, 4]),
        "top_p": maybe([None, 1.0, 0.8]),
        "min_p": maybe([None, 0.05]),
        "typical_p": maybe([None, 1.0, 0.9]),
        "epsilon_cutoff": maybe([None, 0.0, 0.05]),
        "eta_cutoff": maybe([None, 0.0, 0.1]),
    }


WARPER_NAMES = ("temperature", "top_h", "top_k", "top_p", "min_p", "typical_p",
                "epsilon_cutoff", "eta_cutoff")  # fmt: skip


def pipeline_of(params: dict, do_sample: bool) -> Pipeline:
    warpers = Warpers(**{n: params[n] for n in WARPER_NAMES}) if do_sample else None
    processing = {n: v for n, v in params.items() if n not in WARPER_NAMES}
    return Pipeline.of(warpers, **processing)


def hf_steps_as_ours(hf_list, derived_min_length: bool) -> list[tuple[str, list]]:
    """HF's steps by our names. When min_new_tokens is set, generate()'s MinLength is the one
    it derived (min_new_tokens + prompt): the same ban counted with the prompt, folded into
    our one min_new_tokens step; with min_new_tokens = 0 it is MinLength(prompt length), which
    never bans anything (every row holds its prompt), and we run no step for it."""
    grouped: list[tuple[str, list]] = []
    for step in hf_list:
        name = HF_NAMES[type(step).__name__]
        if name == "min_length" and derived_min_length:
            assert step.min_length >= PROMPT
            grouped.append(("derived min_length", [step]))
        elif name == "min_new_tokens" and grouped and grouped[-1][0] == "derived min_length":
            grouped[-1] = ("min_new_tokens", grouped[-1][1] + [step])
        else:
            grouped.append((name, [step]))
    if grouped and any(name == "derived min_length" for name, _ in grouped):
        (derived,) = [steps[0] for name, steps in grouped if name == "derived min_length"]
        assert derived.min_length == PROMPT  # min_new_tokens = 0: a ban that never applies
        grouped = [(name, steps) for name, steps in grouped if name != "derived min_length"]
    return grouped


@pytest.mark.parametrize("do_sample", [False, True])
def test_pipeline_matches_generate(hf, hf_processor_list, do_sample):
    """generate() builds the same steps in the same order; each step, from the same input on
    both sides, agrees exactly, or by the oracle's verdict for the cuts, or within
    log_softmax's bound for the renormalisation; the pipeline is exactly our steps in turn."""
    rng = np.random.default_rng(23 + do_sample)
    tally = Tally()
    for trial in range(80):
        params = random_settings(rng)
        pipe = pipeline_of(params, do_sample)
        hf_params = {
            k: v
            for k, v in params.items()
            if v is not None and (do_sample or k not in WARPER_NAMES)
        }
        hf_list = hf_processor_list(do_sample, **hf_params)
        grouped = hf_steps_as_ours(hf_list, params["min_new_tokens"] is not None)
        ours_steps = pipe.active(EOS)
        assert [n for n, _ in grouped] == [n for n, _ in ours_steps], params
        kind = ["normal", "neg_inf", "peaked"][trial % 3]
        x = make_logits(rng, (3, VOCAB), kind)
        # token 4 is in no history and no setting bans it: no row loses every token (HF would
        # go on with a row of -inf and NaNs; our decoders refuse such a row before this)
        x[:, 4] = np.where(np.isfinite(x[:, 4]), x[:, 4], np.float32(0.5))
        for length in (PROMPT, PROMPT + 1, PROMPT + 3):
            seqs = histories(rng, 3, VOCAB, length)
            current = x
            for (name, param), (_, hf_list) in zip(ours_steps, grouped):
                ours = run_one_step(pipe, name, param, current, seqs)
                theirs = current
                for step in hf_list:
                    theirs = hf_apply(hf, step, theirs, seqs)
                where = f"{name}={param} length {length} in {params} {kind}"
                if name in CUTS:
                    verdict = CUTS[name]
                    judge(tally, current, ours, theirs, lambda r: verdict(r, param), where)  # noqa: B023
                elif name == "renormalize_logits":
                    assert_log_probs_within_bound(current, ours, theirs, where)
                else:
                    assert_identical(ours, theirs, where)
                current = ours
            whole, steps = pipe.apply(x, seqs, prompt_lengths=3 * [PROMPT], eos_token_id=EOS)
            assert_identical(whole, current, f"pipeline {params}")
            assert [s.name for s in steps] == [n for n, _ in ours_steps]
    assert_verdicts_hold(tally, f"pipeline cuts, do_sample={do_sample}")


def run_one_step(pipe: Pipeline, name: str, param, x, seqs) -> np.ndarray:
    """Our step `name` alone, through the same dispatch the pipeline uses."""
    if name == "renormalize_logits":
        return renormalize_logits(x)
    if pipe.warpers is not None and name in WARPER_NAMES:
        alone = Warpers(**{name: param}, min_tokens_to_keep=pipe.warpers.min_tokens_to_keep)
        return alone.apply(x)[0]
    from decoding.processors import Processors

    return Processors(**{name: param}).apply(
        x, seqs, prompt_lengths=len(seqs) * [PROMPT], eos_token_id=EOS
    )


# --- stop strings ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2_pair(hf):
    """HF's GPT-2 tokenizer built from the vendored files, and our table of token bytes."""
    import json
    from pathlib import Path

    from transformers import GPT2Tokenizer

    from minigpt.tokenizer import load_tokenizer

    folder = Path(__file__).resolve().parents[2] / "minigpt" / "data" / "gpt2-tokenizer"
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    theirs = GPT2Tokenizer(vocab=vocab, merges=[tuple(line.split()) for line in lines if line])
    ours = load_tokenizer("gpt2")
    return theirs, ours, [ours.token_bytes(i) for i in range(ours.vocab_size)]


TEXTS = [
    "The biggest states in the USA by land area: Alaska, Texas, California.",
    "I have a dream of being a doctor. The end.",
    "대화 끝, 작업 완료! naïve café déjà vu — 日本語のテキスト",
    "<|im_start|>user hello<|im_end|><|endoftext|>stop here, stopper, unstoppable",
]


def stop_cases(rng, texts, count: int):
    """Stop strings cut from the texts (so that they do occur), some ending inside the last
    tokens, some earlier, some not there at all."""
    for _ in range(count):
        text = texts[rng.integers(len(texts))]
        end = int(rng.integers(1, len(text) + 1))
        start = max(0, end - int(rng.integers(1, 12)))
        yield text[start:end]


def test_stop_strings_match_hf(hf, gpt2_pair):
    torch, _ = hf
    from transformers.generation import StopStringCriteria

    theirs_tok, ours_tok, table = gpt2_pair
    rng = np.random.default_rng(24)
    rows = [ours_tok.encode(t) for t in TEXTS] + [[50256, 50256, 464, 3290], [464]]
    assert rows[: len(TEXTS)] == [
        theirs_tok(t, add_special_tokens=False)["input_ids"] for t in TEXTS
    ]
    checked = matched = 0
    for _ in range(6):
        strings = list(dict.fromkeys(stop_cases(rng, TEXTS, 4)))
        criteria = StopStringCriteria(tokenizer=theirs_tok, stop_strings=strings)
        for row in rows:
            for end in range(1, len(row) + 1):  # every prefix: the stop may fall at any point
                prefix = row[:end]
                expected = bool(criteria(torch.tensor([prefix], dtype=torch.long), None)[0])
                got = stop_strings([prefix], strings, table)[0]
                assert got == expected, f"{strings} after {prefix[-6:]}: ours {got}, HF {expected}"
                checked += 1
                matched += expected
    print(f"stop strings: {checked} prefixes checked, {matched} stopped")
    assert matched > 20  # the cases exercise the matching, not only its absence


def test_stop_strings_batch_of_unequal_rows_matches_hf_per_row(hf, gpt2_pair):
    """HF needs one tensor (padded rows); ours takes unequal rows: each row alone gives HF's."""
    torch, _ = hf
    from transformers.generation import StopStringCriteria

    theirs_tok, ours_tok, table = gpt2_pair
    rows = [ours_tok.encode(t) for t in ("the end", "end of it", "대화 끝", "stop")]
    strings = ["end", "끝", "top"]
    criteria = StopStringCriteria(tokenizer=theirs_tok, stop_strings=strings)
    expected = [bool(criteria(torch.tensor([r], dtype=torch.long), None)[0]) for r in rows]
    assert stop_strings(rows, strings, table) == expected == [True, False, True, True]
