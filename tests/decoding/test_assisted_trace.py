"""The rounds an assisted decoder records (Trace.rounds): they add up, and watching changes nothing.

Every round's emitted tokens, one round after the other, are the generated text; its accepted
tokens are AssistStats' count; the drafted tokens carry the rule's numbers (greedy: the kept
ones are the model's argmax; sampling: kept exactly when uniform < min(1, p / q)); and a run
with trace=True generates the same tokens as one without (and, greedy, as greedy_search).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from decoder_toys import toy_model
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding import Trace, assisted_greedy_search, assisted_sample, greedy_search
from decoding.results import ACCEPTED, REJECTED, UNCHECKED

V = 6


def drafter(kind: str, seed: int) -> dict:
    if kind == "lookup":
        return {"prompt_lookup_num_tokens": 3}
    return {"assistant_model": toy_model("history", V, seed + 1), "num_assistant_tokens": 4}


def check_rounds_add_up(decoded) -> None:
    """The rounds tell the whole run: every generated token, every count of AssistStats."""
    rounds, stats = decoded.trace.rounds, decoded.assistant
    assert len(rounds) == stats.rounds
    assert sum(len(r.drafted) for r in rounds) == stats.drafted
    assert sum(r.accepted for r in rounds) == stats.accepted
    for index, hypothesis in enumerate(decoded.hypotheses):
        mine = [r for r in rounds if r.index == index]
        assert [r.number for r in mine] == list(range(1, len(mine) + 1))
        assert [t for r in mine for t in r.emitted] == hypothesis.new_ids
        for r in mine:  # each round starts where the one before it ended
            assert r.sequence_before == hypothesis.ids[: len(r.sequence_before)]
            assert hypothesis.ids[len(r.sequence_before) :][: len(r.emitted)] == r.emitted
    for r in rounds:
        outcomes = [d.outcome for d in r.drafted]
        kept = r.accepted
        assert outcomes[:kept] == [ACCEPTED] * kept  # accepted ones first, then at most one
        assert set(outcomes[kept + 1 :]) <= {UNCHECKED}  # refusal, then only unchecked ones
        assert r.emitted[:kept] == [d.token for d in r.drafted[:kept]]
        if r.bonus is None:  # no token of the model's own: the text ended at an accepted EOS
            assert len(r.emitted) == kept and REJECTED not in outcomes
        else:
            assert r.emitted == r.emitted[:kept] + [r.bonus.token]
        for d in r.drafted:
            assert (d.p is None) == (d.outcome == UNCHECKED)


@st.composite
def cases(draw):
    return {
        "kind": draw(st.sampled_from(["model", "lookup"])),
        "seed": draw(st.integers(0, 10**6)),
        "prompt": draw(st.lists(st.integers(0, V - 1), min_size=1, max_size=6)),
        "max_new_tokens": draw(st.integers(1, 12)),
        "eos_token_id": draw(st.none() | st.integers(0, V - 1)),
    }


@settings(max_examples=40, deadline=None)
@given(case=cases())
def test_greedy_rounds_add_up_and_watching_changes_nothing(case):
    target = toy_model("history", V, case["seed"])
    options = {"max_new_tokens": case["max_new_tokens"], "eos_token_id": case["eos_token_id"]}
    assist = drafter(case["kind"], case["seed"])
    (watched,) = assisted_greedy_search(target, case["prompt"], **options, **assist, trace=True)
    (unwatched,) = assisted_greedy_search(target, case["prompt"], **options, **assist)
    (plain,) = greedy_search(target, case["prompt"], **options)
    assert watched.best == unwatched.best == plain.best
    assert unwatched.trace is None
    check_rounds_add_up(watched)
    for r in watched.trace.rounds:
        for d in r.drafted:
            assert d.uniform is None and d.q == 1.0  # greedy drafts are certain guesses
            if d.outcome == REJECTED:  # the model's own token is its argmax, more likely
                assert r.bonus.prob >= d.p
        assert r.residual_top == []


@settings(max_examples=40, deadline=None)
@given(case=cases(), samples=st.integers(1, 3))
def test_sampling_rounds_add_up_and_follow_the_rule(case, samples):
    target = toy_model("history", V, case["seed"])
    options = {"max_new_tokens": case["max_new_tokens"], "eos_token_id": case["eos_token_id"],
               "num_return_sequences": samples, "top_k": 4}  # fmt: skip
    assist = drafter(case["kind"], case["seed"])

    def run(trace: bool):
        rng = np.random.default_rng(case["seed"])
        return assisted_sample(target, case["prompt"], rng=rng, **options, **assist, trace=trace)

    (watched,), (unwatched,) = run(True), run(False)
    assert watched.hypotheses == unwatched.hypotheses
    check_rounds_add_up(watched)
    for r in watched.trace.rounds:
        for d in r.drafted:
            if case["kind"] == "lookup":
                assert d.q == 1.0
            if d.outcome != UNCHECKED:
                assert d.ratio == pytest.approx(d.p / d.q)
                assert (d.uniform < min(1.0, d.ratio)) == (d.outcome == ACCEPTED)
        if REJECTED in [d.outcome for d in r.drafted]:
            residual = {t.token: t for t in r.residual_top}
            assert residual[r.bonus.token].prob == pytest.approx(r.bonus.prob)
            assert r.bonus.prob > 0
            assert sum(t.prob for t in r.residual_top) <= 1 + 1e-6
            rejected = next(d for d in r.drafted if d.outcome == REJECTED)
            assert residual[rejected.token].q == pytest.approx(rejected.q)
            assert residual[rejected.token].prob == 0  # p < q there: nothing left over
        else:
            assert r.residual_top == []


def test_a_rejection_records_the_residual_it_drew_from():
    """A target with p = 0.5 on tokens 0 and 1, a drafter with q = 0.9 on 0 and 0.1 on 1: a
    drafted 0 is refused 4 times in 9, and then max(0, p - q) / Z is all on token 1."""

    def fixed(probs):
        logits = np.log(np.array(probs, dtype=np.float64), where=np.array(probs) > 0,
                        out=np.full(len(probs), -np.inf))  # fmt: skip
        return lambda seqs: np.tile(logits, (len(seqs), 1)).astype(np.float32)

    target, draft = fixed([0.5, 0.5, 0.0]), fixed([0.9, 0.1, 0.0])
    (out,) = assisted_sample(target, [2], rng=np.random.default_rng(1), max_new_tokens=30,
                             assistant_model=draft, num_assistant_tokens=1, trace=True)  # fmt: skip
    refused = [r for r in out.trace.rounds if r.drafted and r.drafted[0].outcome == REJECTED]
    assert refused
    for r in refused:
        (d,) = r.drafted
        assert d.token == 0 and d.q == pytest.approx(0.9) and d.p == pytest.approx(0.5)
        assert r.bonus.token == 1 and r.bonus.prob == pytest.approx(1.0)
        top = {t.token: (t.p, t.q, t.prob) for t in r.residual_top}
        assert top[1] == pytest.approx((0.5, 0.1, 1.0), abs=1e-6)
        assert top[0][2] == 0.0


def through_json(trace: Trace) -> Trace:
    return Trace.from_json(json.loads(json.dumps(trace.to_json(), allow_nan=False)))


@pytest.mark.parametrize("kind", ["model", "lookup"])
def test_assisted_traces_survive_json(kind):
    target = toy_model("history", V, 3)
    greedy = assisted_greedy_search(target, [1, 2, 1, 2], max_new_tokens=10, trace=True,
                                    eos_token_id=0, **drafter(kind, 3))  # fmt: skip
    sampled = assisted_sample(target, [1, 2, 1, 2], rng=np.random.default_rng(0), trace=True,
                              max_new_tokens=10, num_return_sequences=2,
                              **drafter(kind, 3))  # fmt: skip
    for decoded in greedy + sampled:
        assert decoded.trace.rounds
        assert through_json(decoded.trace) == decoded.trace


def test_a_trace_written_before_rounds_reads_back_with_none():
    data = greedy_search(toy_model("bigram", V, 0), [1], max_new_tokens=3, trace=True)[0]
    written = data.trace.to_json()
    del written["rounds"]
    assert Trace.from_json(written) == data.trace and data.trace.rounds == []
