"""Invariants of the decoders, checked by hypothesis on toy models (decoder_toys.py).

Each test recomputes what it checks from the toy model directly (log-probs of prefixes, brute
force over every continuation), never from the decoder's own bookkeeping.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from decoder_toys import KINDS, Counting, toy_model
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from decoding import (
    Processors,
    Warpers,
    beam_search,
    exhaustive_tree_search,
    greedy_search,
    log_softmax,
    sample,
    softmax,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EARLY_STOPPING = [True, False, "never"]
LENGTH_PENALTIES = [-1.0, 0.0, 0.5, 1.0, 2.0]


@dataclass
class Toy:
    kind: str
    vocab_size: int
    seed: int
    prompt: list[int]
    eos: int | None

    @property
    def model(self):
        return toy_model(self.kind, self.vocab_size, self.seed)


@st.composite
def toys(draw, min_vocab: int = 2, max_vocab: int = 10, eos: bool = True) -> Toy:
    vocab_size = draw(st.integers(min_vocab, max_vocab))
    return Toy(
        kind=draw(st.sampled_from(KINDS)),
        vocab_size=vocab_size,
        seed=draw(st.integers(0, 2**32 - 1)),
        prompt=draw(st.lists(st.integers(0, vocab_size - 1), min_size=1, max_size=4)),
        eos=draw(st.none() | st.integers(0, vocab_size - 1)) if eos else None,
    )


def step_logprobs(model, ids: list[int], prompt_length: int, processors: Processors | None):
    """Per generated token: (model log-prob, processed log-prob as beam search ranks it)."""
    out = []
    for t in range(prompt_length, len(ids)):
        prefix = ids[:t]
        raw = log_softmax(np.asarray(model([prefix]), dtype=np.float32))
        processed = processors.apply(raw, [prefix]) if processors else raw
        out.append((float(raw[0, ids[t]]), float(processed[0, ids[t]])))
    return out


def check_stops(hypothesis, max_new_tokens: int, eos: int | None) -> None:
    """EOS, if generated, is the last token; without it the run used every allowed token."""
    new = hypothesis.new_ids
    assert 1 <= len(new) <= max_new_tokens
    if eos is not None and eos in new:
        assert new.index(eos) == len(new) - 1
    else:
        assert len(new) == max_new_tokens


# --- greedy ------------------------------------------------------------------------------------


@SETTINGS
@given(
    toys(),
    st.integers(1, 6),
    st.none() | st.sampled_from([0.7, 1.5]),
    st.none() | st.integers(1, 3),
)
def test_greedy_is_argmax_of_the_processed_logits(toy, max_new, penalty, ngram):
    """Every greedy token is the first argmax of the processed logits of its prefix."""
    processors = Processors(repetition_penalty=penalty, no_repeat_ngram_size=ngram)
    try:
        [decoded] = greedy_search(toy.model, toy.prompt, max_new_tokens=max_new,
                                  eos_token_id=toy.eos, repetition_penalty=penalty,
                                  no_repeat_ngram_size=ngram)  # fmt: skip
    except ValueError as e:
        assume("every token is banned" not in str(e))  # a tiny vocabulary fully n-gram-banned
        raise
    h = decoded.best
    for t in range(h.prompt_length, len(h.ids)):
        logits = processors.apply(toy.model([h.ids[:t]]), [h.ids[:t]])
        assert h.ids[t] == int(np.argmax(logits[0]))
    check_stops(h, max_new, toy.eos)
    raw = step_logprobs(toy.model, h.ids, h.prompt_length, None)
    assert math.isclose(h.logprob, sum(r for r, _ in raw), rel_tol=1e-5, abs_tol=1e-5)


# --- beam search -------------------------------------------------------------------------------


@st.composite
def beam_cases(draw, max_beams: int = 4):
    k = draw(st.integers(1, max_beams))
    toy = draw(toys(min_vocab=2 * k, max_vocab=2 * k + 6))  # enough tokens to fill the pool
    return toy, dict(
        num_beams=k,
        max_new_tokens=draw(st.integers(1, 6)),
        length_penalty=draw(st.sampled_from(LENGTH_PENALTIES)),
        early_stopping=draw(st.sampled_from(EARLY_STOPPING)),
        num_return_sequences=draw(st.integers(1, k)),
        eos_token_id=toy.eos,
    )


@SETTINGS
@given(beam_cases())
def test_beam_returns_exactly_n_distinct_hypotheses_best_first(case):
    """Beam search returns exactly num_return_sequences distinct hypotheses sorted by score."""
    toy, params = case
    [decoded] = beam_search(toy.model, toy.prompt, **params)
    hyps = decoded.hypotheses
    assert len(hyps) == params["num_return_sequences"]
    assert len({tuple(h.ids) for h in hyps}) == len(hyps)
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)
    for h in hyps:
        assert h.ids[: len(toy.prompt)] == toy.prompt
        check_stops(h, params["max_new_tokens"], toy.eos)


@SETTINGS
@given(beam_cases(), st.integers(1, 3))
def test_beam_never_holds_more_than_num_beams(case, n_prompts):
    """Per step: <= K live beams, <= 2K candidates, <= K finished; one model call per step."""
    toy, params = case
    model = Counting(toy.model)
    prompts = [toy.prompt] * n_prompts
    results = beam_search(model, prompts, trace=True, **params)
    k = params["num_beams"]
    for decoded in results:
        for step in decoded.trace.steps:
            assert len(step.rows) <= k and len(step.beams) <= k and len(step.finished) <= k
            assert len(step.candidates) <= 2 * k
            assert all(len(b.ids) == len(toy.prompt) + step.number for b in step.beams)
    # One call per step, holding every live beam of every prompt still running.
    longest = max(len(d.trace.steps) for d in results)
    assert len(model.batches) == longest
    for number, batch in enumerate(model.batches, start=1):
        expected = sum(
            len(d.trace.steps[number - 1].rows) for d in results if len(d.trace.steps) >= number
        )
        assert len(batch) == expected


@SETTINGS
@given(beam_cases(), st.none() | st.sampled_from([0.6, 1.3]), st.none() | st.integers(2, 3))
def test_beam_scores_equal_recomputed_logprobs(case, penalty, ngram):
    """score == sum of processed log-probs / new_len ** length_penalty; logprob == raw sum."""
    toy, params = case
    processors = Processors(repetition_penalty=penalty, no_repeat_ngram_size=ngram)
    [decoded] = beam_search(toy.model, toy.prompt, repetition_penalty=penalty,
                            no_repeat_ngram_size=ngram, **params)  # fmt: skip
    for h in decoded.hypotheses:
        per_token = step_logprobs(toy.model, h.ids, h.prompt_length, processors)
        n = len(h.new_ids)
        expected = sum(p for _, p in per_token) / n ** params["length_penalty"]
        assert math.isclose(h.score, expected, rel_tol=1e-4, abs_tol=1e-4)
        assert math.isclose(h.logprob, sum(r for r, _ in per_token), rel_tol=1e-5, abs_tol=1e-5)


@SETTINGS
@given(
    toys(), st.integers(1, 6), st.sampled_from(LENGTH_PENALTIES), st.sampled_from(EARLY_STOPPING),
    st.none() | st.integers(2, 3),
)  # fmt: skip
def test_beam_with_one_beam_equals_greedy(toy, max_new, lp, early, ngram):
    """num_beams=1 is greedy search (except "never" with length_penalty > 0, which looks on)."""
    assume(not (early == "never" and lp > 0))
    params = dict(max_new_tokens=max_new, eos_token_id=toy.eos, no_repeat_ngram_size=ngram)
    try:
        [greedy] = greedy_search(toy.model, toy.prompt, **params)
    except ValueError as e:
        assume("every token is banned" not in str(e))
        raise
    [beam] = beam_search(toy.model, toy.prompt, num_beams=1, length_penalty=lp,
                         early_stopping=early, **params)  # fmt: skip
    assert beam.best.ids == greedy.best.ids
    assert math.isclose(beam.best.logprob, greedy.best.logprob, rel_tol=1e-5, abs_tol=1e-5)


def brute_force_leaves(model, prompt, depth, eos, lp):
    """Every continuation up to `depth` (stopping at EOS), with its length-penalised score."""
    leaves = {}
    frontier = [(list(prompt), 0.0)]
    for n in range(1, depth + 1):
        logp = log_softmax(np.asarray(model([ids for ids, _ in frontier]), dtype=np.float32))
        next_frontier = []
        for row, (ids, total) in enumerate(frontier):
            for token in range(logp.shape[1]):
                child = (ids + [token], total + float(logp[row, token]))
                if token == eos or n == depth:
                    leaves[tuple(child[0])] = child[1] / n**lp
                else:
                    next_frontier.append(child)
        frontier = next_frontier
    return leaves


@settings(max_examples=25, deadline=None)
@given(
    toys(min_vocab=2, max_vocab=3), st.integers(1, 3), st.sampled_from(LENGTH_PENALTIES),
    st.sampled_from(EARLY_STOPPING),
)  # fmt: skip
def test_beam_as_wide_as_the_tree_equals_brute_force(toy, depth, lp, early):
    """With num_beams >= V**depth nothing is ever pruned, so beam search ranks every leaf.

    Every candidate of every step is then among the first K (EOS ones finish, the others all
    stay live) and the pool holds every leaf, so neither early-stopping test can fire before
    the tree is exhausted: the result is the brute-force ranking, for any length_penalty and
    early_stopping, with or without EOS.
    """
    leaves = brute_force_leaves(toy.model, toy.prompt, depth, toy.eos, lp)
    k = toy.vocab_size**depth
    [decoded] = beam_search(toy.model, toy.prompt, num_beams=k, max_new_tokens=depth,
                            length_penalty=lp, early_stopping=early, eos_token_id=toy.eos,
                            num_return_sequences=len(leaves))  # fmt: skip
    assert {tuple(h.ids) for h in decoded.hypotheses} == set(leaves)
    for h in decoded.hypotheses:
        assert math.isclose(h.score, leaves[tuple(h.ids)], rel_tol=1e-5, abs_tol=1e-5)
    best = max(leaves.values())
    assert math.isclose(decoded.best.score, best, rel_tol=1e-5, abs_tol=1e-5)


# --- batches -----------------------------------------------------------------------------------


@SETTINGS
@given(beam_cases(max_beams=3), st.data())
def test_batch_of_three_equals_three_single_runs(case, data):
    """Greedy and beam search give each prompt of a batch what it gets alone."""
    toy, params = case
    prompts = [
        data.draw(st.lists(st.integers(0, toy.vocab_size - 1), min_size=1, max_size=4))
        for _ in range(3)
    ]
    batch = beam_search(toy.model, prompts, **params)
    singles = [beam_search(toy.model, p, **params)[0] for p in prompts]
    assert [d.hypotheses for d in batch] == [d.hypotheses for d in singles]
    greedy_params = dict(max_new_tokens=params["max_new_tokens"], eos_token_id=toy.eos)
    batch = greedy_search(toy.model, prompts, **greedy_params)
    singles = [greedy_search(toy.model, p, **greedy_params)[0] for p in prompts]
    assert [d.hypotheses for d in batch] == [d.hypotheses for d in singles]


# --- sampling ----------------------------------------------------------------------------------


@st.composite
def warper_params(draw) -> dict:
    return dict(
        temperature=draw(st.sampled_from([0.5, 1.0, 1.7])),
        top_k=draw(st.none() | st.integers(1, 6)),
        top_p=draw(st.none() | st.sampled_from([0.3, 0.6, 0.9, 1.0])),
        min_p=draw(st.none() | st.sampled_from([0.05, 0.2])),
        typical_p=draw(st.none() | st.sampled_from([0.5, 0.95])),
    )


@SETTINGS
@given(toys(min_vocab=3), warper_params(), st.none() | st.sampled_from([1.5]), st.integers(0, 999))
def test_sampling_never_emits_a_removed_token(toy, warpers, penalty, seed):
    """Every sampled token survives the processors and warpers applied to its own prefix."""
    results = sample(toy.model, toy.prompt, rng=np.random.default_rng(seed), max_new_tokens=5,
                     num_return_sequences=4, eos_token_id=toy.eos, repetition_penalty=penalty,
                     **warpers)  # fmt: skip
    processors, pipeline = Processors(repetition_penalty=penalty), Warpers(**warpers)
    for h in results[0].hypotheses:
        check_stops(h, 5, toy.eos)
        for t in range(h.prompt_length, len(h.ids)):
            prefix = h.ids[:t]
            warped, _ = pipeline.apply(processors.apply(toy.model([prefix]), [prefix]))
            assert np.isfinite(warped[0, h.ids[t]])
        raw = step_logprobs(toy.model, h.ids, h.prompt_length, None)
        assert math.isclose(h.logprob, sum(r for r, _ in raw), rel_tol=1e-5, abs_tol=1e-5)


def chi_square_z(counts: np.ndarray, probs: np.ndarray) -> float:
    """Pearson's chi-square of counts vs probs, as a Wilson-Hilferty normal z-score.

    Tokens expected fewer than 5 times are pooled into one bin (the usual validity rule).
    """
    expected = probs * counts.sum()
    big = expected >= 5
    observed = np.append(counts[big], counts[~big].sum())
    expected = np.append(expected[big], expected[~big].sum())
    keep = expected > 0
    observed, expected = observed[keep], expected[keep]
    df = len(observed) - 1
    if df == 0:
        return 0.0
    x2 = float(np.sum((observed - expected) ** 2 / expected))
    return ((x2 / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))


@settings(max_examples=20, deadline=None)
@given(toys(min_vocab=3, max_vocab=12, eos=False), warper_params(), st.integers(0, 2**32 - 1))
def test_sampled_frequencies_match_the_warped_distribution(toy, warpers, seed):
    """4000 seeded draws fit softmax(warped logits): chi-square z < 5 (false alarm ~3e-7).

    Removed tokens must never be drawn at all.
    """
    n = 4000
    [decoded] = sample(toy.model, toy.prompt, rng=np.random.default_rng(seed), max_new_tokens=1,
                       num_return_sequences=n, **warpers)  # fmt: skip
    warped, _ = Warpers(**warpers).apply(toy.model([toy.prompt]))
    probs = softmax(warped)[0].astype(np.float64)
    counts = np.bincount([h.new_ids[0] for h in decoded.hypotheses], minlength=toy.vocab_size)
    assert np.all(counts[probs == 0] == 0)
    assert chi_square_z(counts, probs) < 5.0


@SETTINGS
@given(toys(min_vocab=3), warper_params(), st.integers(0, 2**32 - 1))
def test_same_seed_same_samples_and_rows_are_independent_of_layout(toy, warpers, seed):
    """A seed fixes the output; 3 copies of a prompt sample exactly like 3 return sequences."""
    params = dict(max_new_tokens=5, eos_token_id=toy.eos, **warpers)

    def run(prompts, n):
        return sample(toy.model, prompts, rng=np.random.default_rng(seed),
                      num_return_sequences=n, **params)  # fmt: skip

    once = run(toy.prompt, 3)
    assert once == run(toy.prompt, 3)
    as_batch = run([toy.prompt] * 3, 1)
    assert [d.best for d in as_batch] == once[0].hypotheses


# --- the seed post's tree ----------------------------------------------------------------------


@SETTINGS
@given(toys(min_vocab=2, max_vocab=6, eos=False), st.integers(1, 3), st.integers(1, 4))
def test_tree_search_expands_every_node(toy, branching, depth):
    """b**depth leaves, sum(b**i, i < depth) expansions, and the best leaf by the post's score."""
    assume(branching <= toy.vocab_size)
    model = Counting(toy.model)
    tree = exhaustive_tree_search(model, toy.prompt, branching=branching, depth=depth)
    assert len(tree.leaves) == branching**depth
    assert tree.expansions == sum(branching**i for i in range(depth))
    assert sum(len(b) for b in model.batches) == tree.expansions and len(model.batches) == depth
    # Brute force over the same tree: every path of top-b choices.
    scores = {}
    for choices in itertools.product(range(branching), repeat=depth):
        ids, total = list(toy.prompt), 0.0
        for c in choices:
            logp = log_softmax(np.asarray(toy.model([ids]), dtype=np.float32))[0]
            token = int(np.argsort(-logp, kind="stable")[c])
            ids, total = ids + [token], total + float(logp[token])
        scores[tuple(ids)] = total / len(ids)  # the post divides by the FULL length
    assert {tuple(leaf.ids) for leaf in tree.leaves} == set(scores)
    assert math.isclose(tree.best.score, max(scores.values()), rel_tol=1e-5, abs_tol=1e-6)


@SETTINGS
@given(toys(min_vocab=2, max_vocab=6, eos=False), st.integers(1, 3), st.integers(1, 4))
def test_beam_paths_are_tree_leaves_and_the_tree_never_scores_worse(toy, width, depth):
    """With branching == num_beams (no EOS) every beam hypothesis is a leaf of the top-b tree:
    each beam step keeps tokens from its parents' top-b. So the exhaustive tree's best leaf is
    at least as likely as beam search's best, bought with b**depth leaves instead of b * depth.
    """
    assume(2 * width <= toy.vocab_size)
    tree = exhaustive_tree_search(toy.model, toy.prompt, branching=width, depth=depth)
    [beam] = beam_search(toy.model, toy.prompt, num_beams=width, max_new_tokens=depth,
                         num_return_sequences=width)  # fmt: skip
    leaves = {tuple(leaf.ids) for leaf in tree.leaves}
    assert all(tuple(h.ids) in leaves for h in beam.hypotheses)
    assert tree.best.logprob >= beam.best.logprob - 1e-5
