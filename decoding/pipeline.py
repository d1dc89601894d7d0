"""One step of generate() from the model's logits to the scores a decoder chooses from.

generate() builds one list of logits processors and runs it in a fixed order:

    processors (sequence_bias ... begin_suppress_tokens)   decoding/processors.py
    -> warpers, only when sampling (temperature ... eta)   decoding/warpers.py
    -> renormalize_logits, when asked, always last         HF's LogitNormalization

`Pipeline` is that list, written once; every decoder runs it. It returns the scores and a
ScoreStep per step that ran (what it was, how many tokens each row kept, which it removed),
which the trace turns into the picture of which step cut which tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from decoding.processors import Processors, renormalize_logits
from decoding.warpers import ScoreStep, Warpers, score_step

# The processor options a decoder forwards here, by their generate() names.
PROCESSING_OPTIONS = tuple(f.name for f in fields(Processors)) + ("renormalize_logits",)


def check_processing(processing: dict) -> None:
    """A one-line ValueError for an option no processor has (a typo, or a warper's name
    given to a decoder that does not sample)."""
    unknown = sorted(set(processing) - set(PROCESSING_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown processor option {unknown[0]!r}; the processor options are "
            + ", ".join(PROCESSING_OPTIONS)
        )


def check_some_token_left(
    scores: np.ndarray, sequences: Sequence[Sequence[int]], row_max: np.ndarray | None = None
) -> None:
    """Raise if the processors banned every token of a row (no-repeat-ngram on a tiny
    vocabulary, bad words and suppressions together, ...): there is nothing to choose.
    row_max: scores.max(axis=-1), when the caller has it already."""
    row_max = scores.max(axis=-1) if row_max is None else row_max
    dead = row_max == -np.inf  # every token of the row is -inf
    if dead.any():
        seq = sequences[int(np.argmax(dead))]
        raise ValueError(
            f"every token is banned after {list(seq)!r:.60}: lower no_repeat_ngram_size "
            "or the other filters"
        )


@dataclass(frozen=True)
class Pipeline:
    """Processors, then the warpers (None unless sampling), then renormalisation if asked.

    >>> pipe = Pipeline.of(Warpers(top_k=1), suppress_tokens=[1], renormalize_logits=True)
    >>> scores, steps = pipe.apply(np.array([[1.0, 3.0, 2.0]]), [[0]])
    >>> scores.tolist()
    [[-inf, -inf, 0.0]]
    >>> [(s.name, s.kept) for s in steps]
    [('suppress_tokens', (2,)), ('top_k', (1,)), ('renormalize_logits', (1,))]
    """

    processors: Processors = field(default_factory=Processors)
    warpers: Warpers | None = None
    renormalize_logits: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.renormalize_logits, (bool, np.bool_)):
            raise ValueError(
                f"renormalize_logits must be True or False, got {self.renormalize_logits!r}"
            )

    @classmethod
    def of(
        cls, warpers: Warpers | None = None, *, renormalize_logits: bool = False, **processors
    ) -> Pipeline:
        """A pipeline from the processor options by name (Processors' fields), the warpers
        (sampling only) and renormalize_logits: the one place a decoder's options land."""
        check_processing(processors)
        return cls(Processors(**processors), warpers, renormalize_logits)

    def active(self, eos_token_id: int | None = None) -> list[tuple[str, object]]:
        """(name, parameter) of every step that will run, in order."""
        steps = self.processors.active(eos_token_id)
        if self.warpers is not None:
            steps += self.warpers.active()
        if self.renormalize_logits:
            steps.append(("renormalize_logits", True))
        return steps

    def apply(
        self,
        logits: np.ndarray,
        sequences: Sequence[Sequence[int]],
        *,
        prompt_lengths: Sequence[int] | None = None,
        eos_token_id: int | None = None,
        dead_rows_ok: bool = False,
        record: bool = True,
    ) -> tuple[np.ndarray, list[ScoreStep]]:
        """The scores [B, V] after every step, and one ScoreStep per step that ran (none when
        not `record`: decoders record only for a trace).

        A row whose every token the processors banned has nothing to choose from: greedy
        search and sampling refuse it here; beam search (dead_rows_ok) just drops that beam,
        so its row stays all -inf and the warpers and the renormalisation skip it."""
        x, steps = self.processors.apply_traced(
            logits, sequences, prompt_lengths=prompt_lengths, eos_token_id=eos_token_id,
            record=record,
        )  # fmt: skip
        row_max = x.max(axis=-1)  # one pass over [B, V] for both uses
        if not dead_rows_ok:
            check_some_token_left(x, sequences, row_max)
        live = row_max > -np.inf
        later = self.warpers.active() if self.warpers is not None else []
        if self.renormalize_logits:
            later.append(("renormalize_logits", True))
        for name, param in later:
            before = x
            if live.all():  # the usual case: every row has tokens left, no row to skip
                x = self.run_step(name, param, before)
            else:
                x = before.copy()
                x[live] = self.run_step(name, param, before[live])
            if record:
                steps.append(score_step(name, param, before, x))
        return x, steps

    def run_step(self, name: str, param: object, scores: np.ndarray) -> np.ndarray:
        """One of the steps after the processors: a warper, or the renormalisation."""
        if name == "renormalize_logits":
            return renormalize_logits(scores)
        return self.warpers.step(name, param, scores)
