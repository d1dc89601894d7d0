"""Trace.to_json / from_json (and the tree's): what --trace writes reads back as the same trace.

The round trip goes through json.dumps, so it also proves the form is plain JSON (no NaN or
infinity, which json.dumps would write as non-standard tokens and other readers refuse).
"""

from __future__ import annotations

import json
import math

import numpy as np
from decoder_toys import KINDS, toy_model
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding import (
    Trace,
    TreeSearchResult,
    beam_search,
    exhaustive_tree_search,
    greedy_search,
    sample,
)
from decoding.results import Beam, BeamCandidate, Step


def through_json(data: dict) -> dict:
    return json.loads(json.dumps(data, allow_nan=False))


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 2**16), eos=st.sampled_from([None, 0]))
def test_every_decoders_trace_survives_json(kind, seed, eos):
    model = toy_model(kind, 6, seed)
    runs = [
        greedy_search(model, [1, 2], max_new_tokens=4, eos_token_id=eos, trace=True,
                      no_repeat_ngram_size=2),
        sample(model, [1], rng=np.random.default_rng(seed), max_new_tokens=4, top_k=3,
               top_p=0.9, num_return_sequences=2, eos_token_id=eos, trace=True),
        beam_search(model, [3], num_beams=2, max_new_tokens=4, eos_token_id=eos, trace=True,
                    num_return_sequences=2),
    ]  # fmt: skip
    for decoded in runs:
        trace = decoded[0].trace
        assert Trace.from_json(through_json(trace.to_json())) == trace


def test_minus_infinity_is_written_as_null_and_read_back():
    """JSON has no infinity: a -inf score (a banned token's) is written as null."""
    step = Step(1, [], [BeamCandidate(0, 2, -math.inf, "spare")], [Beam([0, 1], -math.inf, -1.0)])
    trace = Trace("beam search", [0], [step], "done")
    text = json.dumps(trace.to_json(), allow_nan=False)
    assert text.count("null") == 2
    assert Trace.from_json(json.loads(text)) == trace


def test_the_tree_survives_json():
    table = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]]))
    tree = exhaustive_tree_search(lambda s: table[[q[-1] for q in s]], [1], depth=3)
    assert TreeSearchResult.from_json(through_json(tree.to_json())) == tree
