"""What a decoder hands back: plain dataclasses of ints and floats.

Every decoder returns one `Decoded` per prompt, in prompt order. Its `hypotheses` are:
- greedy search: one;
- sampling: `num_return_sequences`, in the order they were drawn;
- beam search: `num_return_sequences`, best score first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from decoding.trace import Trace


@dataclass
class Hypothesis:
    """One finished sequence.

    ids:           the full sequence, prompt included.
    prompt_length: how many of `ids` are the prompt; `new_ids` are the rest.
    logprob:       sum of the MODEL's log-probabilities of the generated tokens: log_softmax of
                   the raw logits, before any processor or warper. Comparable across decoders.
    score:         beam search: the sum of (processed) log-probs divided by
                   generated_length ** length_penalty, the number beams are ranked by (HF's
                   `sequences_scores`). The tree search's best leaf: the seed post's score.
                   None for greedy search and sampling.
    """

    ids: list[int]
    prompt_length: int
    logprob: float
    score: float | None = None

    @property
    def new_ids(self) -> list[int]:
        """The generated tokens only (EOS included when the sequence stopped on it)."""
        return self.ids[self.prompt_length :]

    def __str__(self) -> str:
        score = "" if self.score is None else f"score {self.score:.4f}  "
        return (
            f"{score}logprob {self.logprob:.4f}  {self.ids[: self.prompt_length]} + {self.new_ids}"
        )


@dataclass
class Beam:
    """A live (unfinished) beam: its ids, its cumulative score and its model log-prob.

    score is the sum of the processed log-probs (what beam search ranks by, no length
    penalty yet); logprob the sum of the raw model log-probs. Equal without processors.
    """

    ids: list[int]
    score: float
    logprob: float

    def __str__(self) -> str:
        return f"score {self.score:.4f}  {self.ids}"


@dataclass
class Decoded:
    """Everything a decoder produced for one prompt."""

    prompt: list[int]
    hypotheses: list[Hypothesis]
    trace: Trace | None = field(default=None, repr=False)

    @property
    def best(self) -> Hypothesis:
        """The first hypothesis: the best one for beam search, the first draw for sampling."""
        return self.hypotheses[0]

    def __str__(self) -> str:
        return "\n".join(str(h) for h in self.hypotheses)
