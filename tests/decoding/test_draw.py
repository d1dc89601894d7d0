"""The sampler's draw: draw_from_scores(scores, u) picks the token draw(softmax(scores), u) picks,
and never one whose score is -inf.

The two compute the running sums differently (the softmax divides by the whole row's sum in
float32; draw_from_scores sums unnormalised weights of the kept tokens only), so they may part
only where u lands within float32 rounding of a boundary between two tokens. The test takes
the boundaries from float64 and requires the same token wherever u is farther than 1e-5 from
every one of them: float32 rounding moves a running sum of at most 60 terms by less than that.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from decoding import softmax
from decoding.sampling import draw, draw_from_scores


@st.composite
def rows(draw_):
    """Scores of 1-60 tokens, some -inf (never all), up to 1000 in size (exp would overflow
    float32 without the shift by the maximum)."""
    n = draw_(st.integers(1, 60))
    scale = draw_(st.sampled_from([1.0, 10.0, 1000.0]))
    seed = draw_(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scores = (rng.standard_normal(n) * scale).astype(np.float32)
    removed = rng.random(n) < draw_(st.sampled_from([0.0, 0.5, 0.95]))
    removed[rng.integers(n)] = False  # one token at least stays
    scores[removed] = -np.inf
    return scores


def float64_boundaries(scores: np.ndarray) -> np.ndarray:
    """The exact running sums of the softmax, each token's upper boundary in [0, 1]."""
    x = scores.astype(np.float64)
    p = np.exp(x - x.max())
    return np.cumsum(p / p.sum())


@settings(max_examples=500, deadline=None)
@given(scores=rows(), u=st.floats(0.0, 1.0, exclude_max=True))
def test_draw_from_scores_picks_the_token_of_the_softmax_draw(scores, u):
    token = draw_from_scores(scores, u)
    assert np.isfinite(scores[token]), f"drew removed token {token}"
    if np.min(np.abs(float64_boundaries(scores) - u)) > 1e-5:
        assert token == draw(softmax(scores), u), (scores.tolist(), u)


def test_draw_from_scores_follows_the_running_sums():
    """Weights 1 : 0 : 3 (the middle token removed): u below 1/4 picks token 0, above it token 2."""
    scores = np.log(np.array([1.0, 1.0, 3.0], np.float32))
    scores[1] = -np.inf
    picked = [draw_from_scores(scores, u) for u in (0.0, 0.2, 0.26, 0.9, np.nextafter(1.0, 0.0))]
    print("u -> token:", picked)
    assert picked == [0, 0, 2, 2, 2]
