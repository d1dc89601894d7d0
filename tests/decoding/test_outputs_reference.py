"""Parity of the HF-shaped outputs with Hugging Face `generate`: raw logits, transition scores
and beam_indices of greedy and beam search (processors on, length_penalty != 1), our
compute_transition_scores against HF's on HF's own arrays, and beam sampling's distribution
against HF's do_sample=True, num_beams>1 by a seeded two-sample chi-square test.

The random models and the seam are those of test_decoders_reference.py. Our seam runs the
torch model without a cache, generate with one, so the raw logits may differ by float32
rounding: we require at most 1e-5 (for logits of size ~10-30 that is a few hundred float32
units of rounding). A transition score is then allowed what its logits' difference can move
it by: a processed logit moves by at most max(r, 1) * d, a log-prob (log_softmax is
1-Lipschitz per entry in max-norm, twice: the entry and the log-sum-exp) by 2 * max(r, 1) * d,
where d is the largest logit difference of that row and r the repetition penalty, plus the
rounding of the two float32 computations: a log_softmax's log-sum-exp sums V exponentials
(the sum's relative error at most (V - 1) u whatever the order, so its log's at most V u),
on each side, times r when the penalty then scales it; and one rounding of the result.
"""

from __future__ import annotations

import numpy as np
import pytest
from chi_square import two_sample_p
from reference import require_reference
from test_decoders_reference import EOS, PROMPTS, VOCAB, hf_generate, hf_rows, numpy_seam
from test_decoders_reference import tiny_gpt2 as make_tiny_gpt2

from decoding import beam_sample, beam_search, compute_transition_scores, greedy_search

pytestmark = pytest.mark.reference

U = 2.0**-24
LOGIT_TOLERANCE = 1e-5  # cached vs uncached forward pass: see the module docstring


@pytest.fixture(scope="module")
def torch():
    torch, _ = require_reference()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is much faster on a busy machine
    yield torch
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(torch):
    return [make_tiny_gpt2(torch, seed) for seed in (0, 1)]


def allowed(ours: float, row_difference: float, penalty: float | None, log_prob: bool) -> float:
    """How far our transition score may be from HF's (see the module docstring)."""
    scale = max(penalty or 1.0, 1.0)
    rounding = scale * 2 * (VOCAB + 2) * U if log_prob else 0.0
    return scale * (2.0 if log_prob else 1.0) * row_difference + rounding + 2 * U * (abs(ours) + 1)


def hf_transition_scores(model, out, beam: bool) -> np.ndarray:
    beam_indices = out.beam_indices if beam else None
    return model.compute_transition_scores(out.sequences, out.scores, beam_indices).numpy()


@pytest.mark.parametrize(("penalty", "ngram"), [(None, None), (1.3, None), (0.8, 2)])
def test_greedy_logits_and_transition_scores_equal_hf(torch, models, penalty, ngram):
    params = {"eos_token_id": EOS, "repetition_penalty": penalty, "no_repeat_ngram_size": ngram}
    for model in models:
        out = hf_generate(torch, model, PROMPTS, do_sample=False, max_new_tokens=10, **params)
        ours = greedy_search(numpy_seam(torch, model), PROMPTS, max_new_tokens=10,
                             output_scores=True, output_logits=True, **params)  # fmt: skip
        assert [d.best.ids for d in ours] == hf_rows(out, 3, EOS)
        hf_ts = hf_transition_scores(model, out, beam=False)
        for p, d in enumerate(ours):
            h = d.best
            for t, ours_score in enumerate(h.transition_scores):
                hf_logits = out.logits[t][p].numpy()
                diff = float(np.max(np.abs(d.logits[t][0] - hf_logits)))
                assert diff <= LOGIT_TOLERANCE, (p, t, diff)
                assert d.scores[t][0].dtype == np.float32
                gap = abs(ours_score - float(hf_ts[p, t]))
                assert gap <= allowed(ours_score, diff, penalty, log_prob=False), (p, t, gap)


@pytest.mark.parametrize(
    ("penalty", "ngram", "length_penalty"), [(1.3, None, 0.7), (None, 2, 1.5), (0.8, 3, -0.5)]
)
def test_beam_logits_transition_scores_and_beam_indices_equal_hf(
    torch, models, penalty, ngram, length_penalty
):
    k = 3
    params = {"num_beams": k, "num_return_sequences": k, "length_penalty": length_penalty,
              "eos_token_id": EOS, "repetition_penalty": penalty,
              "no_repeat_ngram_size": ngram}  # fmt: skip
    checked_ends = 0
    for model in models:
        out = hf_generate(torch, model, PROMPTS, do_sample=False, max_new_tokens=8, **params)
        ours = beam_search(numpy_seam(torch, model), PROMPTS, max_new_tokens=8,
                           output_scores=True, output_logits=True, **params)  # fmt: skip
        hf_ids = hf_rows(out, 3, EOS)
        hf_ts = hf_transition_scores(model, out, beam=True)
        hf_beams = out.beam_indices.numpy()
        for p, d in enumerate(ours):
            for j, h in enumerate(d.hypotheses):
                row = p * k + j
                assert h.ids == hf_ids[row]
                n = len(h.new_ids)
                # HF's beam indices carry the prompt's offset in the batch, p * K.
                assert (hf_beams[row, :n] - p * k).tolist() == h.beam_indices
                assert (hf_beams[row, n:] == -1).all()
                checked_ends += hf_beams.shape[1] > n
                for t, ours_score in enumerate(h.transition_scores):
                    slot = h.beam_indices[t]
                    hf_logits = out.logits[t][p * k + slot].numpy()
                    diff = float(np.max(np.abs(d.logits[t][slot] - hf_logits)))
                    assert diff <= LOGIT_TOLERANCE, (p, j, t, diff)
                    gap = abs(ours_score - float(hf_ts[row, t]))
                    assert gap <= allowed(ours_score, diff, penalty, log_prob=True), (p, j, t)
                assert (hf_ts[row, n:] == 0.0).all()
            # Every slot we computed holds the logits of HF's row of that slot.
            for t, logits in enumerate(d.logits):
                computed = ~np.isnan(logits).any(axis=1)
                hf_rows_t = out.logits[t][p * k : (p + 1) * k].numpy()
                np.testing.assert_allclose(logits[computed], hf_rows_t[computed], rtol=0,
                                           atol=LOGIT_TOLERANCE)  # fmt: skip
    assert checked_ends > 0  # some hypotheses ended before others: the -1 padding was checked


@pytest.mark.parametrize("beam", [False, True])
def test_our_compute_transition_scores_equals_hf_on_hf_arrays(torch, models, beam):
    """The gathering itself, on HF's own sequences, scores and beam_indices: bit for bit; with
    normalize_logits, within the rounding of two float32 log_softmax implementations."""
    kwargs = {"num_beams": 3, "num_return_sequences": 3, "length_penalty": 1.5} if beam else {}
    for model in models:
        out = hf_generate(torch, model, PROMPTS, do_sample=False, max_new_tokens=8,
                          eos_token_id=EOS, repetition_penalty=1.3, **kwargs)  # fmt: skip
        sequences = out.sequences.numpy()
        scores = [s.numpy() for s in out.scores]
        beam_indices = out.beam_indices.numpy() if beam else None
        hf_plain = model.compute_transition_scores(out.sequences, out.scores,
                                                   out.beam_indices if beam else None)  # fmt: skip
        ours = compute_transition_scores(sequences, scores, beam_indices)
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, hf_plain.numpy())
        hf_norm = model.compute_transition_scores(out.sequences, out.scores,
                                                  out.beam_indices if beam else None,
                                                  normalize_logits=True).numpy()  # fmt: skip
        ours_norm = compute_transition_scores(sequences, scores, beam_indices, True)
        # Each is a float32 log_softmax: x - max - log(sum exp): a few roundings of |x| and of
        # log V.
        bound = 8 * U * (np.abs(ours_norm) + np.log(VOCAB) + 1.0)
        assert (np.abs(ours_norm - hf_norm) <= bound).all()


# ----------------------------------------------------------------------- beam sampling vs HF

RUNS = 2000  # per side: a batch of identical prompts, every row sampled independently
FLATTEN = 0.25  # the peaky models make beam sampling almost deterministic: soften their logits


@pytest.fixture(scope="module")
def soft_model(torch):
    model = make_tiny_gpt2(torch, 3)
    with torch.no_grad():
        model.transformer.ln_f.weight.mul_(FLATTEN)
        model.transformer.ln_f.bias.mul_(FLATTEN)
    return model


@pytest.mark.parametrize(
    "warpers", [{"temperature": 0.8, "top_k": 5}, {"temperature": 1.0, "top_p": 0.7}]
)
def test_beam_sampling_distribution_equals_hf(torch, soft_model, warpers):
    """The best returned sequence of 2-beam sampling, 3 new tokens: HF's and ours, bucketed,
    must pass a two-sample chi-square test (fixed seeds: it cannot flake)."""
    model = soft_model
    prompt = [5, 9, 12]
    params = {"num_beams": 2, "max_new_tokens": 3, "eos_token_id": EOS}
    hf_warpers = {"top_k": 0, **warpers}  # HF's config turns on top_k=50 unless told not to
    torch.manual_seed(1234)
    hf = []
    for _ in range(RUNS // 500):
        out = hf_generate(torch, model, [prompt] * 500, do_sample=True, **params, **hf_warpers)
        hf += [tuple(ids) for ids in hf_rows(out, 3, EOS)]
    seam = numpy_seam(torch, model)
    rng = np.random.default_rng(1234)
    ours = [tuple(d.best.ids) for d in beam_sample(seam, [prompt] * RUNS, rng=rng, **params,
                                                   **warpers)]  # fmt: skip
    assert len(set(hf)) >= 10  # the draw has real choices to make
    assert two_sample_p(ours, hf) > 1e-6
    # The test can fail: the same run at another temperature is told apart.
    shifted = {**warpers, "temperature": warpers["temperature"] * 2}
    other = [tuple(d.best.ids) for d in beam_sample(seam, [prompt] * RUNS, rng=rng, **params,
                                                    **shifted)]  # fmt: skip
    assert two_sample_p(other, hf) < 1e-6
