"""Assisted decoding (decoding/assisted.py, decoding/drafters.py) on toy models.

Greedy: the text and its log-prob are greedy_search's, bit for bit, whatever the drafter.
Sampling: one round's first token is distributed exactly as p (enumerated, no sampling), and
a seeded run of many samples passes a chi-square test against the model's distribution.
"""

from __future__ import annotations

import numpy as np
import pytest
from decoder_toys import KINDS, Counting, toy_model
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding import (
    DraftModel,
    Warpers,
    assisted_greedy_search,
    assisted_sample,
    greedy_search,
    softmax,
)
from decoding.assisted import acceptance_probability, certain, residual
from decoding.drafters import lookup


def always_wrong(target, vocab_size):
    """A draft model whose argmax is never the target's: one past the target's argmax."""

    def draft(seqs):
        best = np.argmax(target(seqs), axis=-1)
        return np.eye(vocab_size, dtype=np.float32)[(best + 1) % vocab_size]

    return draft


@st.composite
def greedy_cases(draw):
    V = draw(st.integers(2, 7))
    kind = draw(st.sampled_from([k for k in KINDS if k != "uniform"]))
    target = toy_model(kind, V, draw(st.integers(0, 10**6)))
    prompt = draw(st.lists(st.integers(0, V - 1), min_size=1, max_size=6))
    options = {
        "max_new_tokens": draw(st.integers(1, 14)),
        "eos_token_id": draw(st.none() | st.integers(0, V - 1)),
        "repetition_penalty": draw(st.none() | st.sampled_from([1.3, 2.0])),
        "no_repeat_ngram_size": draw(st.none() | st.sampled_from([2, 3])),
    }
    return V, target, prompt, options


def run_both(target, prompt, options, **assist):
    """greedy_search and assisted_greedy_search on one case; None when greedy raises (a
    no-repeat-ngram that bans every token): then assisted search must raise too."""
    try:
        (plain,) = greedy_search(target, prompt, **options)
    except ValueError:
        with pytest.raises(ValueError, match="every token is banned"):
            assisted_greedy_search(target, prompt, **options, **assist)
        return None, None
    (assisted,) = assisted_greedy_search(target, prompt, **options, **assist)
    return plain, assisted


def same_text(plain, assisted):
    assert assisted.best.ids == plain.best.ids
    assert assisted.best.logprob == plain.best.logprob  # the same float32 rows, summed the same


@settings(max_examples=150, deadline=None)
@given(greedy_cases(), st.data())
def test_assisted_greedy_is_greedy_with_any_draft_model(case, data):
    V, target, prompt, options = case
    draft_kind = data.draw(st.sampled_from(KINDS))
    draft = toy_model(draft_kind, V, data.draw(st.integers(0, 10**6)))
    assist = {
        "assistant_model": draft,
        "num_assistant_tokens": data.draw(st.integers(1, 6)),
        "num_assistant_tokens_schedule": data.draw(st.sampled_from(["constant", "heuristic"])),
    }
    plain, assisted = run_both(target, prompt, options, **assist)
    if plain is None:
        return
    same_text(plain, assisted)
    stats = assisted.assistant
    assert stats.accepted <= stats.drafted
    assert stats.accepted + stats.rounds >= len(assisted.best.new_ids)  # one own token a round


@settings(max_examples=60, deadline=None)
@given(greedy_cases())
def test_a_draft_identical_to_the_model_is_always_accepted(case):
    V, target, prompt, options = case
    options = {**options, "no_repeat_ngram_size": None}  # never a dead end
    plain, assisted = run_both(target, prompt, options, assistant_model=target)
    same_text(plain, assisted)
    assert assisted.assistant.accepted == assisted.assistant.drafted


@settings(max_examples=60, deadline=None)
@given(greedy_cases())
def test_a_draft_that_always_disagrees_accepts_nothing(case):
    V, target, prompt, options = case
    options = {**options, "repetition_penalty": None, "no_repeat_ngram_size": None}
    draft = always_wrong(target, V)
    plain, assisted = run_both(
        target, prompt, options, assistant_model=draft, num_assistant_tokens=3
    )
    same_text(plain, assisted)
    assert assisted.assistant.accepted == 0
    assert assisted.assistant.rounds == len(assisted.best.new_ids)  # greedy, one call a token


@settings(max_examples=150, deadline=None)
@given(greedy_cases(), st.integers(1, 5), st.none() | st.integers(1, 3))
def test_prompt_lookup_is_greedy(case, num_tokens, ngram):
    V, target, prompt, options = case
    plain, assisted = run_both(
        target, prompt, options, prompt_lookup_num_tokens=num_tokens, max_matching_ngram_size=ngram
    )
    if plain is not None:
        same_text(plain, assisted)


def test_one_model_call_per_round_with_every_position():
    V = 5
    target = Counting(toy_model("history", V, 3))
    (out,) = assisted_greedy_search(
        target,
        [1, 2],
        max_new_tokens=12,
        assistant_model=toy_model("history", V, 4),
        num_assistant_tokens=4,
    )
    assert len(target.batches) == out.assistant.rounds
    seq = out.best.ids
    for batch in target.batches:  # the prefixes of one sequence, shortest first, all at once
        longest = batch[-1]
        assert [len(s) for s in batch] == list(
            range(len(longest) - len(batch) + 1, len(longest) + 1)
        )
        assert all(s == longest[: len(s)] for s in batch)
        assert batch[0] == seq[: len(batch[0])]


def test_the_models_own_positions_method_is_used_when_it_has_one():
    V = 6
    table = toy_model("history", V, 5)

    class Verifier:
        calls: list = []

        def __call__(self, seqs):
            return table(seqs)

        def logits_at_positions(self, sequence, n):
            self.calls.append((list(sequence), n))
            return table([sequence[: len(sequence) - n + i] for i in range(n + 1)])

    model = Verifier()
    (out,) = assisted_greedy_search(model, [0, 1], max_new_tokens=8, assistant_model=table,
                                    assistant_confidence_threshold=0)  # fmt: skip
    assert len(model.calls) == out.assistant.rounds == 1  # the draft is the model: all kept
    assert model.calls[0][1] == 7
    assert out.best.ids == greedy_search(table, [0, 1], max_new_tokens=8)[0].best.ids


def test_the_heuristic_schedule_grows_after_full_acceptance_and_shrinks_otherwise():
    V = 5
    target = toy_model("bigram", V, 1)
    # The model as its own draft: every round fully accepted, so 2, 4, 6, 8, 10 drafted tokens
    # (+1 of the model's own each: 3 + 5 + 7 + 9 + 11 = 35), then the last 5 of 40: 4 + 1.
    (out,) = assisted_greedy_search(target, [0], max_new_tokens=40, assistant_model=target,
                                    num_assistant_tokens=2, assistant_confidence_threshold=0,
                                    num_assistant_tokens_schedule="heuristic")  # fmt: skip
    assert out.assistant.drafted == 2 + 4 + 6 + 8 + 10 + 4
    assert out.assistant.rounds == 6
    (out,) = assisted_greedy_search(target, [0], max_new_tokens=8,
                                    assistant_model=always_wrong(target, V),
                                    num_assistant_tokens=3,
                                    num_assistant_tokens_schedule="heuristic")  # fmt: skip
    # 3, 2, then never below 1: 1 each round until the last round, which has no room to draft
    assert out.assistant.drafted == 3 + 2 + 1 + 1 + 1 + 1 + 1 + 0
    (out,) = assisted_greedy_search(target, [0], max_new_tokens=8,
                                    assistant_model=always_wrong(target, V),
                                    num_assistant_tokens=3)  # fmt: skip
    assert out.assistant.drafted == 3 * 5 + 2 + 1 + 0  # constant: 3, capped by the room left


def test_eos_ends_the_text_inside_an_accepted_draft():
    V, eos = 4, 3
    table = np.full((V, V), -5.0, dtype=np.float32)
    table[0, 1] = table[1, 2] = table[2, eos] = table[eos, 0] = 0.0  # 0 -> 1 -> 2 -> EOS -> 0
    bigram = lambda seqs: table[[s[-1] for s in seqs]]  # noqa: E731
    (out,) = assisted_greedy_search(
        bigram, [0], max_new_tokens=10, eos_token_id=eos, assistant_model=bigram
    )
    assert out.best.new_ids == [1, 2, eos]
    assert out.assistant == type(out.assistant)(rounds=1, drafted=3, accepted=3)
    (plain,) = greedy_search(bigram, [0], max_new_tokens=10, eos_token_id=eos)
    assert out.best.ids == plain.best.ids


def test_on_token_streams_every_token_in_order():
    V = 5
    target = toy_model("bigram", V, 2)
    seen = []
    (out,) = assisted_greedy_search(
        target,
        [1],
        max_new_tokens=9,
        prompt_lookup_num_tokens=3,
        on_token=lambda i, t: seen.append((i, t)),
    )
    assert seen == [(0, t) for t in out.best.new_ids]


def test_a_traced_run_has_one_step_per_token():
    V = 5
    target = toy_model("history", V, 2)
    (out,) = assisted_greedy_search(
        target, [1], max_new_tokens=6, trace=True, assistant_model=toy_model("history", V, 9)
    )
    (plain,) = greedy_search(target, [1], max_new_tokens=6, trace=True)
    assert [s.rows for s in out.trace.steps] == [s.rows for s in plain.trace.steps]
    assert "drafted tokens accepted" in out.trace.stop_reason


# ------------------------------------------------------------------------------ prompt lookup


def test_lookup_follows_hf_rules():
    assert lookup([1, 2, 3, 9, 1, 2, 4, 1, 2], num_tokens=2) == [3, 9]  # the earliest "1 2"
    assert lookup([7, 2, 5, 1, 2, 6, 2], num_tokens=2, max_ngram_size=2) == [5, 1]  # only "2"
    assert lookup([1, 2, 8, 3, 2], num_tokens=4) == [8, 3, 2]  # cut at the sequence's end
    assert lookup([1, 2, 0, 5, 1, 2], num_tokens=3, eos_token_id=0) == []  # cut before EOS...
    assert lookup([1, 2, 5, 0, 1, 2], num_tokens=3, eos_token_id=0) == [5]
    # ... and a guess cut to nothing by EOS is the answer: no later occurrence is tried
    assert lookup([2, 0, 2, 6, 2], num_tokens=2, max_ngram_size=1, eos_token_id=0) == []
    # a guess whose first token is banned moves on to the next occurrence
    ban_six = lambda seq: {6}  # noqa: E731
    assert lookup([2, 6, 2, 7, 2], num_tokens=2, max_ngram_size=1, banned=ban_six) == [7, 2]
    assert lookup([5], num_tokens=3) == []  # one token: no n-gram to look up


def test_prompt_lookup_drafts_from_repetition():
    V = 8
    target = toy_model("bigram", V, 0)
    prompt = greedy_search(target, [3], max_new_tokens=30)[0].best.ids  # a bigram loops
    (out,) = assisted_greedy_search(target, prompt, max_new_tokens=20, prompt_lookup_num_tokens=5)
    assert out.assistant.accepted > 10
    assert out.best.ids == greedy_search(target, prompt, max_new_tokens=20)[0].best.ids


# ---------------------------------------------------------------------- speculative sampling


def probability_vectors(size):
    """Random distributions over `size` tokens, some tokens with probability exactly 0."""
    weights = st.lists(
        st.sampled_from([0.0, 0.0, 0.01, 0.1, 0.3, 1.0, 2.0, 5.0]), min_size=size, max_size=size
    ).filter(lambda w: sum(w) > 0)
    return weights.map(lambda w: (np.array(w) / sum(w)).astype(np.float32))


def first_token_distribution(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Enumerate one round exactly: draft x ~ q, keep it with min(1, p/q), else residual."""
    out = np.zeros(len(p))
    for x in np.flatnonzero(q):
        keep = acceptance_probability(p, q, int(x))
        out[x] += q[x] * keep
        out += q[x] * (1 - keep) * residual(p, q)
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.integers(2, 8).flatmap(lambda v: st.tuples(probability_vectors(v), probability_vectors(v)))
)
def test_one_round_emits_exactly_p(pq):
    p, q = pq
    assert np.allclose(first_token_distribution(p, q), p, rtol=0, atol=1e-6)
    for guess in range(len(p)):  # a deterministic drafter is q = 1 on its guess
        assert np.allclose(first_token_distribution(p, certain(guess, len(p))), p, atol=1e-6)


def chi_square(counts: np.ndarray, expected: np.ndarray) -> float:
    keep = expected > 0
    assert counts[~keep].sum() == 0, "a token of probability 0 was emitted"
    return float((((counts - expected) ** 2)[keep] / expected[keep]).sum())


def test_speculative_sampling_samples_the_model_distribution():
    """The first two tokens of 6000 seeded samples, against p(x1) p(x2 | x1) of a bigram model
    after temperature and top-k: 16 cells, 15 degrees of freedom, whose chi-square exceeds
    37.70 with probability 0.001 (the 99.9% quantile of the chi-square distribution)."""
    V, n = 4, 6000
    target, draft = toy_model("bigram", V, 11, scale=1.0), toy_model("bigram", V, 12, scale=1.5)
    warp = {"temperature": 0.8, "top_k": 3}
    (out,) = assisted_sample(
        target,
        [0],
        rng=np.random.default_rng(1),
        max_new_tokens=3,
        assistant_model=draft,
        num_assistant_tokens=2,
        num_return_sequences=n,
        **warp,
    )
    counts = np.zeros((V, V))
    for h in out.hypotheses:
        counts[h.new_ids[0], h.new_ids[1]] += 1
    p = lambda seq: softmax(Warpers(**warp).apply(target([seq]))[0])[0]  # noqa: E731
    expected = np.outer(p([0]), np.ones(V)) * np.array([p([0, a]) for a in range(V)]) * n
    assert chi_square(counts.ravel(), expected.ravel()) < 37.70
    assert 0 < out.assistant.accepted < out.assistant.drafted  # the two models disagree


def test_speculative_sampling_with_prompt_lookup_samples_the_model_distribution():
    """As above with prompt lookup, whose guesses are certain (q = 1): the first token."""
    V, n = 4, 4000
    target = toy_model("bigram", V, 13, scale=1.0)
    (out,) = assisted_sample(
        target,
        [1, 2, 1],
        rng=np.random.default_rng(2),
        max_new_tokens=2,
        prompt_lookup_num_tokens=1,
        num_return_sequences=n,
    )
    counts = np.bincount([h.new_ids[0] for h in out.hypotheses], minlength=V)
    expected = softmax(target([[1, 2, 1]]))[0] * n
    assert chi_square(counts, expected) < 16.27  # 3 degrees of freedom, the 99.9% quantile
    assert out.assistant.drafted == n


def test_same_seed_same_text():
    V = 6
    target, draft = toy_model("history", V, 1), toy_model("history", V, 2)

    def run(seed):
        return assisted_sample(target, [[0, 1], [2]], rng=np.random.default_rng(seed),
                               max_new_tokens=10, assistant_model=draft, top_p=0.9,
                               num_return_sequences=2)  # fmt: skip

    ids = lambda out: [h.ids for d in out for h in d.hypotheses]  # noqa: E731
    assert ids(run(5)) == ids(run(5))
    assert ids(run(5)) != ids(run(6))


def test_a_draft_equal_to_the_model_is_always_accepted_when_sampling():
    V = 5
    target = toy_model("history", V, 3)
    (out,) = assisted_sample(
        target,
        [0],
        rng=np.random.default_rng(0),
        max_new_tokens=15,
        assistant_model=target,
        temperature=0.7,
    )
    assert out.assistant.accepted == out.assistant.drafted  # p(x) / q(x) = 1


def test_a_removed_token_is_never_emitted():
    V = 6
    target, draft = toy_model("history", V, 7), toy_model("uniform", V, 0)
    for seed in range(20):
        (out,) = assisted_sample(
            target,
            [0],
            rng=np.random.default_rng(seed),
            max_new_tokens=6,
            assistant_model=draft,
            top_k=1,
        )
        assert out.best.ids == greedy_search(target, [0], max_new_tokens=6)[0].best.ids


def test_sampling_traces_merge_the_samples_step_by_step():
    V = 5
    target = toy_model("history", V, 3)
    (out,) = assisted_sample(
        target,
        [0],
        rng=np.random.default_rng(0),
        max_new_tokens=4,
        prompt_lookup_num_tokens=2,
        num_return_sequences=3,
        trace=True,
    )
    assert [s.number for s in out.trace.steps] == [1, 2, 3, 4]
    assert all([r.index for r in s.rows] == [0, 1, 2] for s in out.trace.steps)


# ---------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("assist", "message"),
    [
        ({}, "needs a drafter"),
        ({"assistant_model": "D", "prompt_lookup_num_tokens": 3}, "not both"),
        ({"prompt_lookup_num_tokens": 3, "num_assistant_tokens": 5}, "is for assistant_model"),
        ({"assistant_model": "D", "max_matching_ngram_size": 2}, "is for prompt_lookup"),
        ({"assistant_model": "D", "num_assistant_tokens": 0}, "num_assistant_tokens must be"),
        ({"assistant_model": "D", "num_assistant_tokens_schedule": "fast"}, "constant, heuristic"),
        ({"prompt_lookup_num_tokens": 0}, "prompt_lookup_num_tokens must be"),
        ({"prompt_lookup_num_tokens": 2, "max_matching_ngram_size": -1}, "max_matching_ngram"),
    ],
)
def test_bad_options_are_one_line_errors(assist, message):
    target = toy_model("bigram", 4, 0)
    if assist.get("assistant_model") == "D":
        assist = {**assist, "assistant_model": target}
    for decoder, extra in [
        (assisted_greedy_search, {}),
        (assisted_sample, {"rng": np.random.default_rng(0)}),
    ]:
        with pytest.raises(ValueError, match=message):
            decoder(target, [1], max_new_tokens=4, **assist, **extra)


class Sized:
    """A toy that says its vocabulary size, as minigpt's adapter does."""

    def __init__(self, model, vocab_size):
        self.model, self.vocab_size = model, vocab_size

    def __call__(self, seqs):
        return self.model(seqs)


def test_a_draft_with_another_vocabulary_is_refused():
    target, draft = toy_model("bigram", 4, 0), toy_model("positional", 3, 0)
    with pytest.raises(ValueError, match="has 3 tokens and the model's 4: they must share"):
        assisted_greedy_search(target, [1], max_new_tokens=4, assistant_model=draft)
    # a larger one could draft ids the model does not have: caught at the door when both say
    # their size, before any call
    bigger = Sized(toy_model("positional", 5, 0), 5)
    with pytest.raises(ValueError, match="has 5 tokens and the model's 4"):
        assisted_sample(
            Sized(Counting(target), 4),
            [1],
            rng=np.random.default_rng(0),
            max_new_tokens=4,
            assistant_model=bigger,
        )


def test_the_draft_models_context_is_checked_at_the_door():
    class Short:
        context_length = 5

        def __call__(self, seqs):
            raise AssertionError("no model call before the check")

    target = toy_model("bigram", 4, 0)
    with pytest.raises(ValueError, match="assistant model's context of 5"):
        assisted_greedy_search(target, [1, 2, 3], max_new_tokens=4, assistant_model=Short())


def test_a_round_ends_after_a_token_the_draft_model_doubts():
    """HF's assistant_confidence_threshold: the draft proposes a token whose own probability
    is below the threshold, then stops; 0 turns the early stop off."""
    V = 4
    # Bigram draft 0 -> 1 -> 2 -> 3 -> 0; after 2 its argmax 3 has probability 0.3, else 0.9.
    probs = np.full((V, V), 0.1 / 3)
    for a in range(V):
        probs[a, (a + 1) % V] = 0.9
    probs[2] = [0.25, 0.25, 0.2, 0.3]
    table = np.log(probs).astype(np.float32)
    draft = lambda seqs: table[[s[-1] for s in seqs]]  # noqa: E731

    def pick(logits, sequence):  # greedy, confident as assisted_greedy_search's pick
        token = int(np.argmax(logits))
        return token, None, float(softmax(logits)[token])

    def proposed(**threshold):
        return DraftModel(draft, pick, None, num_tokens=5, **threshold).propose([0], 5).tokens

    assert proposed() == proposed(confidence_threshold=0.4) == [1, 2, 3]  # 3 doubted, still in
    assert proposed(confidence_threshold=0.29) == [1, 2, 3, 0, 1]
    assert proposed(confidence_threshold=0) == [1, 2, 3, 0, 1]
    assert proposed(confidence_threshold=0.95) == [1]
    # In a whole run: the same tokens; fewer drafted tokens and more rounds with the threshold.
    runs = {t: assisted_greedy_search(draft, [0], max_new_tokens=12, assistant_model=draft,
                                      num_assistant_tokens=5,
                                      assistant_confidence_threshold=t)[0]
            for t in (0, 0.4)}  # fmt: skip
    assert runs[0].best.ids == runs[0.4].best.ids
    assert runs[0].assistant.rounds < runs[0.4].assistant.rounds, runs


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.4", True, float("nan")])
def test_the_confidence_threshold_is_checked(bad):
    table = lambda seqs: np.zeros((len(seqs), 3), np.float32)  # noqa: E731
    with pytest.raises(ValueError, match="assistant_confidence_threshold must be a number in"):
        assisted_greedy_search(table, [0], max_new_tokens=3, assistant_model=table,
                               assistant_confidence_threshold=bad)  # fmt: skip
    with pytest.raises(ValueError, match="assistant_confidence_threshold is for assistant_model"):
        assisted_greedy_search(table, [0], max_new_tokens=3, prompt_lookup_num_tokens=2,
                               assistant_confidence_threshold=0.5)  # fmt: skip
