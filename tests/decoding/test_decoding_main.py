"""`python -m decoding`: the toy tour runs, and what it prints is what the decoders return."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from decoding import __main__ as tour
from decoding import beam_sample, beam_search, greedy_search

REPO = Path(__file__).resolve().parents[2]


def test_the_tour_prints_each_decoders_real_answer():
    done = subprocess.run(
        [sys.executable, "-m", "decoding"], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    greedy = greedy_search(tour.next_token_logits, [1], max_new_tokens=3, eos_token_id=0)
    beam = beam_search(tour.next_token_logits, [1], num_beams=2, max_new_tokens=3, eos_token_id=0)
    lines = {line.split("  ")[0]: line for line in done.stdout.splitlines()}
    assert tour.words(greedy[0].best.ids) in lines["greedy_search"]
    assert tour.words(beam[0].best.ids) in lines["beam_search, 2 beams"]
    # The point of the toy: beam search finds a likelier sentence than greedy search.
    assert beam[0].best.logprob > greedy[0].best.logprob
    # and assisted greedy search is greedy search, in fewer model calls.
    assert tour.words(greedy[0].best.ids) in lines["assisted greedy"]
    drawn = beam_sample(tour.next_token_logits, [1], num_beams=2, rng=np.random.default_rng(0),
                        max_new_tokens=3, eos_token_id=0)  # fmt: skip
    assert tour.words(drawn[0].best.ids) in lines["beam_sample, seed 0"]
