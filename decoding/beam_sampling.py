"""Beam sampling: beam search whose 2K candidates are drawn at random instead of taken best.

HF runs it for `generate(do_sample=True, num_beams=K)`. Everything is beam search (beam.py):
the same live beams, finished pool, length penalty and stopping rules. Two things change:

    log_probs = log_softmax(logits)                   # as beam search
    log_probs = processors(log_probs)                 # as beam search
    log_probs = warpers(log_probs)                    # NEW: temperature, top-k, top-p, ...
    totals    = beam score + log_probs, over all K x V (beam, token) pairs
    draw 2K (beam, token) pairs from softmax(totals), WITHOUT replacement   # NEW: not top-2K
    sort them by total, best first, and go on as beam search does

Details that match HF's `_beam_search` and `_get_logits_processor` and may surprise:
- The warpers act on LOG-PROBS, not logits: temperature T divides log_softmax(logits), and a
  beam's score adds up these divided numbers, so `sequences_scores` is in units of 1/T too.
  (log_softmax(log_softmax(x) / T) is log_softmax(x / T), so the distribution a row is drawn
  from is the usual tempered one; only the scores carry the 1/T.)
- The filters keep at least 2 tokens per row (HF's min_tokens_to_keep is 1 + the number of
  EOS tokens when num_beams > 1), so a beam always has a continuation besides EOS: top_k=1
  keeps 2 tokens here.
- One draw over every beam at once: a pair's chance is proportional to
  exp(beam score) * exp(warped log-prob), so a beam that is already unlikely rarely grows.
- Without replacement (torch.multinomial(..., replacement=False)): one draw from the
  distribution, the drawn pair's probability set to 0, the rest renormalised, again, 2K times.
- When fewer than 2K pairs have any probability (top-k 2 at step 1: only 2), minigpt takes all
  of them. HF fills the remaining slots with zero-probability pairs (score -inf, or about -1e9
  for its K - 1 copies of the prompt at step 1); sorted last, they can only come back as
  placeholder hypotheses when the pool has too few real ones, as in beam search.
- Sorting the drawn pairs: torch.sort promises no order among equal totals; minigpt puts the
  lower beam, then the lower token first, as beam search ranks ties.

With one beam step's worth of randomness per prompt, the same rng gives the same output.
"""

from __future__ import annotations

import numpy as np

from decoding.beam import check_rules, results_of, run_search
from decoding.common import NextTokenLogits, as_prompts, check_context, check_rng
from decoding.outputs import StepOutputs
from decoding.pipeline import Pipeline
from decoding.probs import softmax
from decoding.results import Beam, Decoded
from decoding.sampling import draw
from decoding.stopping import MaxTime, Stopping, TokenStrings
from decoding.warpers import Warpers

# HF keeps 1 + (number of EOS tokens) tokens in every filter when num_beams > 1, and 2 when no
# EOS is set; minigpt has at most one EOS, so always 2.
BEAM_MIN_TOKENS_TO_KEEP = 2


def draw_without_replacement(probs: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    """n distinct indices of `probs` (fewer if fewer have probability > 0), drawn one at a
    time, each from what is left renormalised. One uniform from rng per draw.

    >>> draw_without_replacement(np.array([0.5, 0.0, 0.5]), 3, np.random.default_rng(0))
    [2, 0]
    """
    left = np.array(probs, dtype=np.float64)  # a copy: we zero what is drawn
    drawn = []
    for _ in range(min(n, int(np.count_nonzero(left)))):
        i = draw(left, rng.random())  # draw() renormalises by the sum of what is left
        drawn.append(i)
        left[i] = 0.0
    return drawn


def sampled_candidates(rng: np.random.Generator):
    """The candidate picker of beam sampling (see beam.PickCandidates): 2K (beam, token,
    total) pairs drawn from softmax(beam score + log-prob) over all beams, then best first."""

    def pick(beams: list[Beam], scores: np.ndarray, n: int) -> list[tuple[int, int, float]]:
        running = np.array([b.score for b in beams], dtype=np.float32)
        totals = (running[:, None] + scores).ravel()  # float32, as HF accumulates
        drawn = draw_without_replacement(softmax(totals), n, rng)
        drawn.sort(key=lambda i: (-totals[i], i))  # ties: lower beam, then token (as beam.py)
        vocab_size = scores.shape[1]
        return [(i // vocab_size, i % vocab_size, float(totals[i])) for i in drawn]

    return pick


def beam_sample(
    next_token_logits: NextTokenLogits,
    prompts: list[int] | list[list[int]],
    *,
    rng: np.random.Generator,
    num_beams: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_h: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    typical_p: float | None = None,
    epsilon_cutoff: float | None = None,
    eta_cutoff: float | None = None,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    num_return_sequences: int = 1,
    eos_token_id: int | None = None,
    stop_strings: str | list[str] | None = None,
    token_strings: TokenStrings | None = None,
    max_time: float | MaxTime | None = None,
    trace: bool = False,
    output_scores: bool = False,
    output_logits: bool = False,
    **processing,
) -> list[Decoded]:
    """HF `generate(do_sample=True, num_beams=...)`: the `num_return_sequences` best
    hypotheses of a beam search whose candidates are drawn from `rng` (see the module
    docstring). Arguments as beam_search's plus sampling's warpers; nothing is on by default
    (HF's config turns on top_k=50). Hypothesis.score is HF's `sequences_scores`: the sum of
    the warped log-probs / generated_length ** length_penalty. **processing, stop_strings,
    token_strings and max_time: as in beam_search.

    >>> table = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]]))
    >>> bigram = lambda seqs: table[[s[-1] for s in seqs]]
    >>> run = lambda seed: beam_sample(bigram, [1], rng=np.random.default_rng(seed), num_beams=2,
    ...                                max_new_tokens=3, eos_token_id=0)[0].best.ids
    >>> run(3) == run(3)
    True
    """
    batch = as_prompts(prompts)
    check_rng(rng)
    rules = check_rules(num_beams, num_return_sequences, length_penalty, early_stopping,
                        max_new_tokens, eos_token_id)  # fmt: skip
    check_context(next_token_logits, batch, rules.max_new_tokens)
    warpers = Warpers(temperature=temperature, top_h=top_h, top_k=top_k, top_p=top_p,
                      min_p=min_p, typical_p=typical_p, epsilon_cutoff=epsilon_cutoff,
                      eta_cutoff=eta_cutoff,
                      min_tokens_to_keep=BEAM_MIN_TOKENS_TO_KEEP)  # fmt: skip
    pipeline = Pipeline.of(warpers, **processing)
    stopping = Stopping.of(stop_strings, token_strings, max_time)
    outputs = StepOutputs(len(batch), rules.num_beams, output_scores, output_logits)
    states = run_search(next_token_logits, batch, rules, pipeline, sampled_candidates(rng),
                        "beam sampling", trace, outputs, stopping)  # fmt: skip
    return results_of(states, num_return_sequences, outputs)
