"""HF's `output_scores` / `output_logits`: the per-step rows a decoder keeps when asked to.

A decoder makes one `StepOutputs` per call and hands it, at every step, the rows of the scores
it chose from and of the model's raw logits, each with the slot (row of its prompt) it belongs
to. Nothing is kept unless asked for: a float32 [V] row per step per sequence is 200 KB for
GPT-2's vocabulary. Slots that got no row at a step (a sample that had stopped, an empty beam
slot) stay NaN: minigpt never computed them (see `Decoded.scores` in decoding/results.py).
"""

from __future__ import annotations

import numpy as np


def check_flag(name: str, value: object) -> bool:
    """output_scores and output_logits are True or False, nothing else.

    >>> check_flag("output_scores", True)
    True
    """
    if value is not True and value is not False:
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def padded_rows(slots: list[int], rows: np.ndarray, n_slots: int) -> np.ndarray:
    """A float32 [n_slots, V] array holding rows[j] at slot slots[j] and NaN elsewhere.

    >>> padded_rows([1], np.array([[0.5, -1.0]]), 2).tolist()
    [[nan, nan], [0.5, -1.0]]
    """
    out = np.full((n_slots, rows.shape[1]), np.nan, dtype=np.float32)
    out[slots] = rows
    return out


class StepOutputs:
    """The rows of every step of every prompt of one decoder call, when asked for.

    n_slots: rows per prompt and step (1 for greedy search, the number of samples for
    sampling, num_beams for beam search).
    """

    def __init__(self, n_prompts: int, n_slots: int, output_scores: bool, output_logits: bool):
        keep_scores = check_flag("output_scores", output_scores)
        keep_logits = check_flag("output_logits", output_logits)
        self.n_slots = n_slots
        self.scores = [[] for _ in range(n_prompts)] if keep_scores else None
        self.logits = [[] for _ in range(n_prompts)] if keep_logits else None

    def record(self, prompt: int, slots: list[int], scores: np.ndarray, logits: np.ndarray):
        """One step of prompt `prompt`: scores[j] and logits[j] belong to slot slots[j]."""
        if self.scores is not None:
            self.scores[prompt].append(padded_rows(slots, scores, self.n_slots))
        if self.logits is not None:
            self.logits[prompt].append(padded_rows(slots, logits, self.n_slots))

    def of(self, prompt: int) -> dict:
        """The keyword arguments `scores` and `logits` of that prompt's Decoded."""
        return {
            "scores": None if self.scores is None else self.scores[prompt],
            "logits": None if self.logits is None else self.logits[prompt],
        }
