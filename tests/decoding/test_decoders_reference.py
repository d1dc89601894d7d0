"""Parity with Hugging Face `generate`: our decoders, driven by a random GPT-2, against its own
`model.generate(...)` on the same model.

The models are tiny random GPT2LMHeadModels made peaky on purpose: ln_f is scaled so the top-1
probability is usually > 0.5 (beams then disagree in interesting ways instead of tying), and the
EOS embedding is enlarged so EOS is often among the top tokens (hypotheses finish at different
lengths, the early-stopping rules matter). HF returns sequences padded to a common length; we
compare after cutting each one after its first EOS.

Token ids must be equal. Scores are compared without a tuned tolerance (float64_oracle.py):
HF's sequences_scores must be HF's rule applied to its own recorded step log-probs, ours the
same rule applied to ours, bit for bit; the two sides' step log-probs may differ only by what
their logits differ by (our seam runs the torch model without a cache, generate with one) plus
float32 rounding; and the scores only by what those step differences add up to.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest
from float64_oracle import (
    EITHER,
    SECOND_ORDER,
    HFStep,
    RecordingSeam,
    Softmax64,
    compare_beam_hypothesis,
    compare_greedy_logprob,
    lse64,
    min_p_verdict,
    top_p_verdict,
    typical_verdict,
)
from reference import require_reference

from decoding import (
    Processors,
    Warpers,
    apply_temperature,
    beam_search,
    greedy_search,
    min_p_filter,
    sample,
    softmax,
    top_k_filter,
    top_p_filter,
    typical_filter,
)

pytestmark = pytest.mark.reference

VOCAB = 64
EOS = 3
PAD = 0  # any id: HF pads finished sequences with it; we cut at EOS before comparing
LOGIT_SCALE = 14.0  # ln_f scale: top-1 probability ~0.6 on average
EOS_BOOST = 2.5  # EOS's embedding norm factor: EOS in the top 3 about a quarter of the time
PROMPTS = [[5, 9, 12], [40, 2, 7], [17, 17, 30]]


@pytest.fixture(scope="module")
def torch():
    torch, _ = require_reference()
    # These models are tiny: one thread is ~100x faster than several spinning on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def tiny_gpt2(torch, seed: int):
    """A 2-layer random GPT-2 whose next-token distributions are peaky and often favour EOS."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=None, eos_token_id=None, pad_token_id=PAD,
    )  # fmt: skip
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        model.transformer.ln_f.weight.mul_(LOGIT_SCALE)  # logits = ln_f(h) @ wte.T scale with it
        model.transformer.ln_f.bias.mul_(LOGIT_SCALE)
        model.transformer.wte.weight[EOS] *= EOS_BOOST
    return model


@pytest.fixture(scope="module")
def models(torch):
    return [tiny_gpt2(torch, seed) for seed in (0, 1, 2)]


def numpy_seam(torch, model):
    """The model as our decoders see it: next_token_logits(sequences) -> [n, V] float32."""

    def next_token_logits(sequences: list[list[int]]) -> np.ndarray:
        out = np.empty((len(sequences), VOCAB), dtype=np.float32)
        rows_of_length = defaultdict(list)  # equal lengths run as one batch, no padding needed
        for row, seq in enumerate(sequences):
            rows_of_length[len(seq)].append(row)
        with torch.no_grad():
            for rows in rows_of_length.values():
                ids = torch.tensor([sequences[r] for r in rows])
                out[rows] = model(ids).logits[:, -1].float().numpy()
        return out

    return next_token_logits


def hf_generate(torch, model, prompts, **kwargs):
    """model.generate on equal-length prompts; only the processors we ask for are added."""
    ids = torch.tensor(prompts)
    with torch.no_grad():
        return model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            pad_token_id=PAD,
            return_dict_in_generate=True,
            output_scores=True,
            output_logits=True,
            **kwargs,
        )


def cut_at_eos(ids: list[int], prompt_length: int, eos: int | None) -> list[int]:
    """Drop HF's padding: everything after the first generated EOS."""
    new = ids[prompt_length:]
    if eos is not None and eos in new:
        new = new[: new.index(eos) + 1]
    return ids[:prompt_length] + new


def hf_rows(out, prompt_length: int, eos: int | None) -> list[list[int]]:
    return [cut_at_eos(row, prompt_length, eos) for row in out.sequences.tolist()]


def hf_steps(out, row: int, new_tokens: list[int], beam: bool) -> list[HFStep]:
    """HF's view of each step of returned sequence `row`: processed log-prob, raw logit, and
    the log-sum-exp of the raw logits. Beam search: out.beam_indices says which of the step's
    rows the sequence came from; greedy: the row is the sequence's own."""
    steps = []
    for t, token in enumerate(new_tokens):
        b = int(out.beam_indices[row, t]) if beam else row
        logits = out.logits[t][b].numpy()
        steps.append(HFStep(float(out.scores[t][b, token]), float(logits[token]), lse64(logits)))
    return steps


def compare_greedy(torch, model, **params):
    """Run both; assert equal ids, and our logprob against the exact one under HF's logits."""
    eos = params.get("eos_token_id")
    out = hf_generate(torch, model, PROMPTS, do_sample=False, max_new_tokens=12, **params)
    seam = RecordingSeam(numpy_seam(torch, model))
    ours = greedy_search(seam, PROMPTS, max_new_tokens=12, **params)
    assert [d.best.ids for d in ours] == hf_rows(out, 3, eos), params
    problems = []
    for p, decoded in enumerate(ours):
        h = decoded.best
        steps = hf_steps(out, p, h.new_ids, beam=False)
        problems += compare_greedy_logprob(f"{params} prompt {p}", h.ids, 3, h.logprob, seam, steps)
    assert not problems, "\n".join(problems[:10])


@pytest.mark.parametrize("eos", [EOS, None])
def test_greedy_equals_hf_generate(torch, models, eos):
    """Greedy ids equal HF's greedy generate for a batch of prompts, with and without EOS."""
    for model in models:
        compare_greedy(torch, model, eos_token_id=eos)


@pytest.mark.parametrize(("penalty", "ngram"), [(1.3, None), (None, 2), (0.8, 3), (2.0, 1)])
def test_greedy_with_processors_equals_hf(torch, models, penalty, ngram):
    """Repetition penalty and no-repeat-ngram act on greedy's logits exactly as in HF."""
    for model in models:
        compare_greedy(torch, model, eos_token_id=EOS, repetition_penalty=penalty,
                       no_repeat_ngram_size=ngram)  # fmt: skip


def compare_beams(torch, model, prompts, *, max_new_tokens, **params):
    """Run both; assert equal sequences, and scores as the module docstring says; return ours."""
    n = params.get("num_return_sequences", 1)
    eos = params.get("eos_token_id")
    out = hf_generate(torch, model, prompts, do_sample=False, max_new_tokens=max_new_tokens,
                      **params)  # fmt: skip
    seam = RecordingSeam(numpy_seam(torch, model))
    ours = beam_search(seam, prompts, max_new_tokens=max_new_tokens, **params)
    processors = Processors(repetition_penalty=params.get("repetition_penalty"),
                            no_repeat_ngram_size=params.get("no_repeat_ngram_size"))  # fmt: skip
    hf_ids = hf_rows(out, len(prompts[0]), eos)
    hf_scores = out.sequences_scores.tolist()
    problems = []
    for p, decoded in enumerate(ours):
        expected = hf_ids[p * n : (p + 1) * n]
        assert [h.ids for h in decoded.hypotheses] == expected, (p, params)
        for j, h in enumerate(decoded.hypotheses):
            row = p * n + j
            problems += compare_beam_hypothesis(
                f"{params} prompt {p} hypothesis {j}", h.ids, len(prompts[p]), h.score, seam,
                processors, hf_steps(out, row, h.new_ids, beam=True), hf_scores[row],
                params.get("length_penalty", 1.0),
            )  # fmt: skip
    assert not problems, "\n".join(problems[:10])
    return ours


def test_beam_search_equals_hf_generate_over_the_grid(torch, models):
    """sequences and sequences_scores equal HF's for every num_beams/length_penalty/early_stopping/
    num_return_sequences combination, EOS reached early in part of the grid."""
    finished_early = 0
    stopped_before_max = 0
    for num_beams, lp, early, all_returned in itertools.product(
        [2, 3, 5], [-1.0, 0.0, 1.0, 2.0], [True, False, "never"], [False, True]
    ):
        model = models[(num_beams + int(lp)) % len(models)]
        ours = compare_beams(
            torch, model, PROMPTS, max_new_tokens=10, num_beams=num_beams, length_penalty=lp,
            early_stopping=early, num_return_sequences=num_beams if all_returned else 1,
            eos_token_id=EOS,
        )  # fmt: skip
        for d in ours:
            finished_early += sum(len(h.new_ids) < 10 for h in d.hypotheses)
            stopped_before_max += max(len(h.new_ids) for h in d.hypotheses) < 10
    # The grid must exercise what it claims to: EOS before max_new_tokens, and whole searches
    # that stop early.
    assert finished_early > 50
    assert stopped_before_max > 5


@pytest.mark.parametrize("num_beams", [2, 3, 5])
def test_beam_search_without_eos_equals_hf(torch, models, num_beams):
    """With no EOS every hypothesis runs to max_new_tokens; HF and we still pick the same."""
    for model in models:
        compare_beams(torch, model, PROMPTS, max_new_tokens=7, num_beams=num_beams,
                      num_return_sequences=num_beams, eos_token_id=None)  # fmt: skip


@pytest.mark.parametrize(("penalty", "ngram"), [(1.3, None), (None, 2), (0.7, 3)])
@pytest.mark.parametrize("early", [False, "never"])
def test_beam_search_with_processors_equals_hf(torch, models, penalty, ngram, early):
    """Processors act on the beam log-probs (not the logits), exactly as in HF."""
    for model in models:
        compare_beams(
            torch, model, PROMPTS, max_new_tokens=10, num_beams=3, num_return_sequences=3,
            eos_token_id=EOS, early_stopping=early, repetition_penalty=penalty,
            no_repeat_ngram_size=ngram,
        )  # fmt: skip


def test_single_prompts_equal_hf_one_at_a_time(torch, models):
    """A prompt of a different length (run alone on both sides) also matches."""
    for model, prompt in zip(models, [[1], [8, 8, 8, 8, 8], [60, 3, 4, 20]]):
        compare_beams(torch, model, [prompt], max_new_tokens=8, num_beams=4,
                      num_return_sequences=2, eos_token_id=EOS, length_penalty=0.5)  # fmt: skip


# Our step and the oracle for each warper (the processors and temperature are exact).
OUR_WARPERS = {
    "temperature": apply_temperature,
    "top_k": top_k_filter,
    "top_p": top_p_filter,
    "min_p": min_p_filter,
    "typical_p": typical_filter,
}
ORACLE = {"top_p": top_p_verdict, "min_p": min_p_verdict, "typical_p": typical_verdict}


def our_warped(logits: np.ndarray, seqs, params: dict) -> tuple[np.ndarray, list[set[int]]]:
    """Our processors and warpers step by step: the warped logits, and per row the tokens that
    some cut's float64 verdict leaves to rounding (only those may differ from HF)."""
    processors = Processors(repetition_penalty=params.get("repetition_penalty"),
                            no_repeat_ngram_size=params.get("no_repeat_ngram_size"))  # fmt: skip
    x = processors.apply(logits, seqs)
    either = [set() for _ in seqs]
    warper_params = {k: v for k, v in params.items() if k in OUR_WARPERS}
    for name, param in Warpers(**warper_params).active():
        for r in range(x.shape[0]):
            if name in ORACLE:
                either[r] |= set(np.flatnonzero(ORACLE[name](x[r], param).keep == EITHER).tolist())
        x = OUR_WARPERS[name](x, param)
    return x, either


@pytest.mark.parametrize(
    "warpers",
    [
        {"temperature": 0.7, "top_k": 5},
        {"top_p": 0.8},
        {"temperature": 1.5, "min_p": 0.05},
        {"typical_p": 0.9, "repetition_penalty": 1.4},
        {"top_k": 10, "top_p": 0.9, "no_repeat_ngram_size": 1},
    ],
)
def test_sampling_distribution_equals_hf_scores(torch, models, warpers):
    """The distribution our sampler draws from equals softmax of HF's processed scores.

    Our sampler is given HF's own raw logits of the step (output_logits), so both sides warp
    the same float32 numbers: the warped logits must then be identical wherever both keep a
    token, a token kept by one side only must lie within rounding of a cut (the oracle), and
    the probabilities may differ by the two softmaxes' rounding (plus the mass of such flips).
    Tokens cannot match (torch.multinomial vs NumPy); the distribution must.
    """
    for model in models:
        hf_params = {"top_k": 0, **warpers}  # top_k=0: off (HF's config would default to 50)
        out = hf_generate(torch, model, PROMPTS, do_sample=True, max_new_tokens=1, **hf_params)
        raw, hf_warped = out.logits[0].numpy(), out.scores[0].numpy()
        hf_probs = torch.softmax(out.scores[0], dim=-1).numpy()

        def hf_raw_logits(seqs, raw=raw):
            assert seqs == PROMPTS
            return raw

        ours = sample(hf_raw_logits, PROMPTS, rng=np.random.default_rng(0), max_new_tokens=1,
                      trace=True, **warpers)  # fmt: skip
        warped, either = our_warped(raw, PROMPTS, warpers)
        probs = softmax(warped)
        for p, decoded in enumerate(ours):
            ours_kept, hf_kept = np.isfinite(warped[p]), np.isfinite(hf_warped[p])
            flipped = np.flatnonzero(ours_kept != hf_kept)
            print(f"{warpers} prompt {p}: {ours_kept.sum()} kept, flips {flipped.tolist()}, "
                  f"within rounding of a cut {sorted(either[p])}")  # fmt: skip
            assert set(flipped.tolist()) <= either[p], "a flip outside rounding of every cut"
            both = ours_kept & hf_kept
            np.testing.assert_array_equal(warped[p][both], hf_warped[p][both])
            # each softmax is within rel_p of the float64 one over the same logits; a flipped
            # token's mass m changes the other side's normalisation by at most m / (1 - m)
            s = Softmax64.of(warped[p][ours_kept])
            union = np.where(ours_kept, warped[p], hf_warped[p])  # every token either side kept
            flip_mass = float(softmax(union)[flipped].sum())
            for c in decoded.trace.steps[0].rows[0].candidates:
                assert c.prob == float(probs[p, c.token])  # the trace is what we drew from
                if not both[c.token]:
                    continue
                exact = float(s.p[np.sum(ours_kept[: c.token])])
                bound = SECOND_ORDER * exact * (2 * s.rel_p.max() + flip_mass / (1 - flip_mass))
                diff = abs(c.prob - float(hf_probs[p, c.token]))
                assert diff <= bound, (warpers, p, c.token, c.prob, hf_probs[p, c.token], bound)
