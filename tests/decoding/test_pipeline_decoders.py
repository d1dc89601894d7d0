"""The decoders run the one pipeline and the stopping criteria: on toy models, for every
decoder, the processor options change the scores exactly as Pipeline.apply says, a stop
string or max_time ends a row where the rule says, and assistance changes none of it.
"""

from __future__ import annotations

import numpy as np
import pytest
from decoder_toys import toy_model
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding import (
    MaxTime,
    Pipeline,
    Warpers,
    assisted_greedy_search,
    assisted_sample,
    beam_sample,
    beam_search,
    greedy_search,
    sample,
    stop_strings,
)

V = 9
TABLE = ["a", "b", "ab", "ba", "c", " ", "x", "yz", "é"]  # the text of each toy token

OPTION_SETS = [
    {"min_new_tokens": 3},
    {"bad_words_ids": [[2], [0, 1]]},
    {"sequence_bias": [[[4], 2.5], [[1, 3], -3.0]]},
    {"suppress_tokens": [0, 1], "begin_suppress_tokens": [2]},
    {"exponential_decay_length_penalty": (1, 2.0), "min_length": 4},
    {"renormalize_logits": True, "repetition_penalty": 1.5, "no_repeat_ngram_size": 2},
]


def by_hand_greedy(model, prompt, steps, eos, **processing):
    """Greedy search written out: the pipeline's argmax, step after step."""
    pipe = Pipeline.of(None, **processing)
    seq = list(prompt)
    for _ in range(steps):
        scores, _ = pipe.apply(model([seq]), [seq], prompt_lengths=[len(prompt)], eos_token_id=eos)
        seq.append(int(np.argmax(scores[0])))
        if seq[-1] == eos:
            break
    return seq


@pytest.mark.parametrize("options", OPTION_SETS)
@pytest.mark.parametrize("kind", ["bigram", "history"])
def test_greedy_is_the_pipelines_argmax_and_assistance_changes_nothing(options, kind):
    model = toy_model(kind, V, seed=3)
    prompts = [[5, 6], [7, 8, 0]]
    ours = greedy_search(model, prompts, max_new_tokens=8, eos_token_id=0, **options)
    assert [d.best.ids for d in ours] == [
        by_hand_greedy(model, p, 8, 0, **options) for p in prompts
    ]
    assisted = assisted_greedy_search(model, prompts, max_new_tokens=8, eos_token_id=0,
                                      prompt_lookup_num_tokens=3, **options)  # fmt: skip
    assert [d.best.ids for d in assisted] == [d.best.ids for d in ours]
    draft = toy_model("bigram", V, 9)
    drafted = assisted_greedy_search(model, prompts, max_new_tokens=8, eos_token_id=0,
                                     assistant_model=draft, **options)  # fmt: skip
    assert [d.best.ids for d in drafted] == [d.best.ids for d in ours]


@pytest.mark.parametrize("options", OPTION_SETS)
def test_every_decoder_takes_every_processor_option(options):
    model, rng = toy_model("history", V, seed=4), np.random.default_rng(0)
    common = {"max_new_tokens": 6, "eos_token_id": 0, **options}
    runs = [
        greedy_search(model, [5], **common),
        sample(model, [5], rng=rng, top_h=0.9, epsilon_cutoff=0.01, eta_cutoff=0.01, **common),
        beam_search(model, [5], num_beams=2, **common),
        beam_sample(model, [5], rng=rng, num_beams=2, top_h=0.9, **common),
        assisted_greedy_search(model, [5], prompt_lookup_num_tokens=2, **common),
        assisted_sample(model, [5], rng=rng, prompt_lookup_num_tokens=2, eta_cutoff=0.01,
                        **common),
    ]  # fmt: skip
    for (decoded,) in runs:
        new = decoded.best.new_ids
        if "min_new_tokens" in options:
            assert 0 not in new[:3]
        if "bad_words_ids" in options:
            assert 2 not in new
        if "suppress_tokens" in options:
            assert not {0, 1} & set(new) and new[0] != 2


def test_a_misspelt_option_is_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown processor option 'min_new_token'"):
        greedy_search(toy_model("bigram", V, 1), [5], max_new_tokens=2, min_new_token=2)


def first_stop(ids: list[int], stop: str) -> int:
    """The length of the shortest prefix (past the one-token prompt) that the stop-string
    rule stops, or len(ids) if none."""
    return next((n for n in range(2, len(ids) + 1) if stop_strings([ids[:n]], stop, TABLE)[0]),
                len(ids))  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 50), st.sampled_from(["ab", "b", "é", "x", "ba b", "yzé"]))
def test_greedy_and_sampling_stop_right_after_the_first_stop_string(seed, stop):
    model = toy_model("history", V, seed=seed, scale=1.0)
    free = sample(model, [5], rng=np.random.default_rng(seed), max_new_tokens=12)[0].best.ids
    stopped = sample(model, [5], rng=np.random.default_rng(seed), max_new_tokens=12,
                     stop_strings=stop, token_strings=TABLE)[0].best.ids  # fmt: skip
    # the same draws until the stop: the stopped text is a prefix of the free one, cut at the
    # first prefix that ends in the stop string the rule's way
    assert stopped == free[: first_stop(free, stop)]
    greedy_free = greedy_search(model, [5], max_new_tokens=12)[0].best.ids
    greedy_stop = greedy_search(model, [5], max_new_tokens=12, stop_strings=[stop],
                                token_strings=TABLE)[0]  # fmt: skip
    assert greedy_stop.best.ids == greedy_free[: first_stop(greedy_free, stop)]
    lookup = assisted_greedy_search(model, [5], max_new_tokens=12, stop_strings=[stop],
                                    token_strings=TABLE, prompt_lookup_num_tokens=4)[0]  # fmt: skip
    assert lookup.best.ids == greedy_stop.best.ids  # even inside a round of accepted guesses


def test_a_stop_string_begun_in_the_prompt_stops_at_the_first_new_token():
    table = lambda seqs: np.eye(V, dtype=np.float32)[[1 for _ in seqs]] * 5  # noqa: E731
    (decoded,) = greedy_search(table, [0], max_new_tokens=5, stop_strings="ab", token_strings=TABLE)
    assert decoded.best.new_ids == [1]  # "a" + "b"
    assert decoded.trace is None


def test_beam_search_finishes_a_candidate_that_completes_a_stop_string():
    model = toy_model("bigram", V, seed=6)
    free = beam_search(model, [5], num_beams=3, max_new_tokens=8, num_return_sequences=3)[0]
    stop = TABLE[free.best.new_ids[1]]
    (stopped,) = beam_search(model, [5], num_beams=3, max_new_tokens=8, num_return_sequences=3,
                             stop_strings=[stop], token_strings=TABLE)  # fmt: skip
    for h in stopped.hypotheses:  # every hypothesis ends at its first stop, or runs the length
        cut = next((n for n in range(2, len(h.ids) + 1)
                    if stop_strings([h.ids[:n]], stop, TABLE)[0]), None)  # fmt: skip
        assert cut is None and len(h.new_ids) == 8 or cut == len(h.ids)


class Clock:
    """A fake clock: each reading moves it on by `tick` seconds."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


@pytest.mark.parametrize("budget, steps", [(0.5, 1), (2.5, 3), (100.0, 10)])
def test_max_time_stops_every_decoder_after_the_step_it_ran_out(budget, steps):
    model, rng = toy_model("history", V, seed=7), np.random.default_rng(1)
    # the clock is read once when the run starts and once after every step (round): after
    # step s it says s + 1 seconds, past the budget once s + 1 - 1 > budget
    for run in [
        lambda t: greedy_search(model, [5], max_new_tokens=10, max_time=t),
        lambda t: sample(model, [5, 6], rng=rng, max_new_tokens=10, max_time=t,
                         num_return_sequences=2),
        lambda t: beam_search(model, [5], num_beams=2, max_new_tokens=10, max_time=t),
    ]:  # fmt: skip
        decoded = run(MaxTime(budget, clock=Clock(1.0)))
        for d in decoded:
            assert {len(h.new_ids) for h in d.hypotheses} == {steps}
    (assisted,) = assisted_greedy_search(model, [5], max_new_tokens=10, prompt_lookup_num_tokens=3,
                                         max_time=MaxTime(budget, clock=Clock(1.0)))  # fmt: skip
    if steps < 10:
        assert assisted.assistant.rounds == steps  # one clock reading per round
    else:
        assert len(assisted.best.new_ids) == 10


def test_stop_strings_need_the_token_table():
    with pytest.raises(ValueError, match="token_strings"):
        greedy_search(toy_model("bigram", V, 1), [5], max_new_tokens=2, stop_strings=["a"])


def test_the_trace_shows_which_step_removed_which_tokens():
    model = toy_model("bigram", V, seed=8)
    (decoded,) = sample(model, [5], rng=np.random.default_rng(0), max_new_tokens=2, top_k=3,
                        suppress_tokens=[1, 2], trace=True)  # fmt: skip
    cuts = decoded.trace.steps[0].rows[0].cuts
    assert [c.name for c in cuts] == ["suppress_tokens", "top_k"]
    assert cuts[0].removed == [1, 2] and cuts[0].kept == V - 2
    assert cuts[1].kept == 3 and len(cuts[1].removed) == V - 5
    assert Warpers(top_k=3).active() == [("top_k", 3)]


def test_beam_search_traces_the_pipeline_steps_of_every_beam():
    model = toy_model("bigram", V, seed=8)
    decoded = beam_search(model, [[5], [6, 7]], num_beams=2, max_new_tokens=3,
                          suppress_tokens=[1, 2], trace=True)  # fmt: skip
    for d in decoded:
        for step in d.trace.steps:
            for row in step.rows:
                assert [(c.name, c.kept, c.removed) for c in row.cuts] == [
                    ("suppress_tokens", V - 2, [1, 2])
                ]


def test_the_same_scores_with_or_without_the_records():
    """record=False (an untraced decoder's call) skips only the ScoreSteps, not a step."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (3, 40)).astype(np.float32)
    sequences = [[1, 2, 3, 1, 2], [4, 4], [7]]
    pipeline = Pipeline.of(Warpers(top_k=9, top_p=0.8), renormalize_logits=True,
                           repetition_penalty=1.3, no_repeat_ngram_size=2)  # fmt: skip
    traced, steps = pipeline.apply(logits, sequences, prompt_lengths=[1, 1, 1])
    untraced, none = pipeline.apply(logits, sequences, prompt_lengths=[1, 1, 1], record=False)
    assert np.array_equal(traced, untraced) and none == []
    assert [s.name for s in steps] == [name for name, _ in pipeline.active()]
