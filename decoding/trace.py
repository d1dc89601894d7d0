"""What a decoder saw and chose at every step: plain dataclasses to print at a breakpoint.

Pass `trace=True` to any decoder and each `Decoded` carries a `Trace`: one `Step` per generated
position, and in each step one `RowStep` per sequence extended (a sample, or a live beam) with
its top candidates, what each warper kept, and what was chosen. Beam search adds the 2K
candidates it ranked and what became of each, the live beams, and the finished hypotheses.
Pictures (trees, bar charts) are drawn from a Trace, never from inside a decoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from decoding.common import largest
from decoding.results import Beam, Hypothesis

TOP_N = 20  # candidates recorded per row: enough for a bar chart, small enough to print

# What became of a beam-search candidate (`BeamCandidate.fate`).
LIVE = "live"  # one of the K live beams of the next step
FINISHED = "finished"  # entered the finished pool (ended with EOS, or at max_new_tokens)
NOT_KEPT = "finished, not kept"  # finished, but the pool kept better ones (or was closed)
TOO_LATE = "finished beyond the first K"  # HF only lets the first K candidates finish
SPARE = "spare"  # a backup candidate that was not needed: K live beams were already found


@dataclass
class TokenProb:
    """One bar of a bar chart.

    prob:       the probability in the distribution the decoder chose from: after processors
                and warpers (sampling), after processors (greedy), exp of the processed
                log-prob (beam search; equal to the model's without processors).
    model_prob: the model's own probability, softmax of the raw logits.
    """

    token: int
    prob: float
    model_prob: float


@dataclass
class Cut:
    """A warper that ran on this row: its name, its parameter, how many tokens survived it."""

    name: str
    param: float | int
    kept: int


@dataclass
class RowStep:
    """One sequence extended by one token (or, in beam search, offered as K-of-2K candidates).

    index:      the sample (greedy, sampling) or live beam (beam search) this row extends.
    sequence:   the ids it extends, prompt included.
    candidates: the TOP_N most probable tokens by `prob` (then by `model_prob` among removed
                ones), then any chosen token not among them.
    cuts:       the warpers in the order they ran (sampling only).
    chosen:     the token drawn (greedy, sampling), or this beam's tokens among the 2K.
    """

    index: int
    sequence: list[int]
    candidates: list[TokenProb]
    chosen: list[int]
    cuts: list[Cut] = field(default_factory=list)

    def __str__(self) -> str:
        tops = " | ".join(f"{c.token} {c.prob:.3f}" for c in self.candidates[:5])
        cuts = "".join(f"  {c.name}={c.param} kept {c.kept}" for c in self.cuts)
        return f"#{self.index} ...{self.sequence[-4:]} -> {self.chosen}  top: {tops}{cuts}"


@dataclass
class BeamCandidate:
    """One of the 2K best extensions beam search ranked at a step, best first."""

    beam: int  # index of the live beam it extends
    token: int
    score: float  # cumulative processed log-prob (no length penalty)
    fate: str  # LIVE, FINISHED, NOT_KEPT, TOO_LATE or SPARE

    def __str__(self) -> str:
        return f"beam {self.beam} + {self.token}: {self.score:.4f} {self.fate}"


@dataclass
class Step:
    """Everything one decoding step did. `number` counts generated tokens after it (1-based)."""

    number: int
    rows: list[RowStep]
    candidates: list[BeamCandidate] = field(default_factory=list)  # beam search only
    beams: list[Beam] = field(default_factory=list)  # beam search: live beams after the step
    finished: list[Hypothesis] = field(default_factory=list)  # beam search: the pool after it

    def __str__(self) -> str:
        lines = [f"step {self.number}"]
        lines += [f"  {row}" for row in self.rows]
        lines += [f"  candidate {c}" for c in self.candidates]
        lines += [f"  live {b}" for b in self.beams]
        lines += [f"  finished {h}" for h in self.finished]
        return "\n".join(lines)


@dataclass
class Trace:
    """The steps of one prompt's decoding, and why it stopped."""

    decoder: str
    prompt: list[int]
    steps: list[Step] = field(default_factory=list)
    stop_reason: str = ""

    def __str__(self) -> str:
        head = f"{self.decoder} from {self.prompt}: {len(self.steps)} steps, {self.stop_reason}"
        return "\n".join([head] + [str(s) for s in self.steps])


def row_step(
    index: int,
    sequence: list[int],
    probs: np.ndarray,
    model_probs: np.ndarray,
    chosen: list[int],
    cuts: list[Cut] | None = None,
) -> RowStep:
    """Record one row: its TOP_N tokens by `probs` (ties by token id), plus the chosen ones.

    When fewer than TOP_N tokens survive the warpers, the rest of the bars are the removed
    tokens the model liked best, so a chart shows where the top-k / top-p cutoff fell.
    """
    survivors = int(np.count_nonzero(probs > 0))
    tokens = largest(probs, min(TOP_N, survivors)).tolist()
    if len(tokens) < TOP_N:
        removed = np.where(probs > 0, -np.inf, model_probs)
        tokens += largest(removed, min(TOP_N, len(probs)) - len(tokens)).tolist()
    tokens += [t for t in chosen if t not in tokens]
    candidates = [TokenProb(t, float(probs[t]), float(model_probs[t])) for t in tokens]
    return RowStep(index, list(sequence), candidates, list(chosen), cuts or [])


def cuts_of_row(warp_steps: list, row: int) -> list[Cut]:
    """The per-row view of the WarpSteps that `Warpers.apply` returned for a batch."""
    return [Cut(s.name, s.param, s.kept[row]) for s in warp_steps]
