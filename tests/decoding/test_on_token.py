"""`on_token`: greedy search and sampling report each token the moment it is chosen.

What a streaming caller needs: the reported tokens, row by row, are exactly the generated
tokens, and each is reported before the model is asked for the step after it.
"""

from __future__ import annotations

import numpy as np
from decoder_toys import KINDS, toy_model
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding import greedy_search, sample


class Recorder:
    """Model and callback in one: logs ("model", sequences) and ("token", row, token) events."""

    def __init__(self, model):
        self.model, self.events = model, []

    def __call__(self, sequences):
        self.events.append(("model", [list(s) for s in sequences]))
        return self.model(sequences)

    def on_token(self, row: int, token: int) -> None:
        self.events.append(("token", row, token))

    def tokens_of(self, row: int) -> list[int]:
        return [e[2] for e in self.events if e[0] == "token" and e[1] == row]


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    seed=st.integers(0, 2**16),
    prompts=st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=4), min_size=1, max_size=3),
    max_new_tokens=st.integers(1, 6),
)
def test_greedy_reports_every_token_in_order(kind, seed, prompts, max_new_tokens):
    recorder = Recorder(toy_model(kind, 6, seed))
    out = greedy_search(
        recorder, prompts, max_new_tokens=max_new_tokens, eos_token_id=0,
        on_token=recorder.on_token,
    )  # fmt: skip
    for i, decoded in enumerate(out):
        assert recorder.tokens_of(i) == decoded.best.new_ids
    assert_reported_before_use(recorder, [d.best.ids for d in out], [len(p) for p in prompts])


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    seed=st.integers(0, 2**16),
    prompts=st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=4), min_size=1, max_size=2),
    n=st.integers(1, 3),
)
def test_sampling_reports_every_token_of_every_row(kind, seed, prompts, n):
    recorder = Recorder(toy_model(kind, 6, seed))
    out = sample(
        recorder, prompts, rng=np.random.default_rng(seed), max_new_tokens=5,
        num_return_sequences=n, eos_token_id=0, on_token=recorder.on_token,
    )  # fmt: skip
    rows = [h for d in out for h in d.hypotheses]  # prompt-major, as on_token numbers them
    for r, h in enumerate(rows):
        assert recorder.tokens_of(r) == h.new_ids
    assert_reported_before_use(recorder, [h.ids for h in rows], [h.prompt_length for h in rows])


def assert_reported_before_use(recorder: Recorder, finals: list[list[int]], starts: list[int]):
    """Each sequence the model is asked about is some row's prompt plus only the tokens
    already reported for that row: a streaming caller has shown it before it is extended."""
    reported = [0] * len(finals)
    for event in recorder.events:
        if event[0] == "token":
            reported[event[1]] += 1
            continue
        for seq in event[1]:
            assert any(
                seq == final[: len(seq)] and len(seq) <= start + shown
                for final, start, shown in zip(finals, starts, reported)
            ), f"{seq} was sent to the model before its last token was reported"
