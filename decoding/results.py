"""Everything a decoder hands back, in one place: plain dataclasses of ints and floats.

Every decoder returns one `Decoded` per prompt, in prompt order. Its `hypotheses` are:
- greedy search: one;
- sampling: `num_return_sequences`, in the order they were drawn;
- beam search: `num_return_sequences`, best score first.

With `trace=True` each `Decoded` also carries a `Trace`: one `Step` per generated position, and
in each step one `RowStep` per sequence extended (a sample, or a live beam) with its top
candidates, what each warper kept, and what was chosen. Beam search adds the 2K candidates it
ranked and what became of each, the live beams, and the finished hypotheses. Pictures are drawn
from a Trace (decoding/render/); `Trace.to_json()` is what the CLI's --trace writes, and
`Trace.from_json` reads it back.

This module imports nothing from the rest of decoding/: the records come first, the code that
fills them (decoding/recorder.py, the decoders) after.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field


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
    token_logprobs:    one per generated token: the model's raw log-prob of it (so `logprob`
                   is their sum, added in this order).
    transition_scores: one per generated token: what HF's `compute_transition_scores(...,
                   normalize_logits=False)` gives for it, i.e. the token's entry in the scores
                   the decoder chose from: processed logits (greedy search), processed and
                   warped logits (sampling), processed (and, beam sampling, warped) log-probs
                   (beam search, whose `score` is their float32 sum / length ** penalty).
    beam_indices:  beam search only: for each generated token, the slot (0..K-1) of the live
                   beam it extended at that step, HF's `beam_indices` row. Empty otherwise.
    (These three stay empty for the tree search, which records none of them.)
    """

    ids: list[int]
    prompt_length: int
    logprob: float
    score: float | None = None
    # Equality is about what was decoded (ids and the sums). These per-token records are
    # detail that not every decoder keeps (the tree search does not), so they stay out of it.
    token_logprobs: list[float] = field(default_factory=list, compare=False)
    transition_scores: list[float] = field(default_factory=list, compare=False)
    beam_indices: list[int] = field(default_factory=list, compare=False)

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
    The three lists grow by one per generated token, as Hypothesis's do, which inherits them.
    """

    ids: list[int]
    score: float
    logprob: float
    # Equality is about what was decoded (ids and the sums). These per-token records are
    # detail that not every decoder keeps (the tree search does not), so they stay out of it.
    token_logprobs: list[float] = field(default_factory=list, compare=False)
    transition_scores: list[float] = field(default_factory=list, compare=False)
    beam_indices: list[int] = field(default_factory=list, compare=False)

    def __str__(self) -> str:
        return f"score {self.score:.4f}  {self.ids}"


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
    """A step of the pipeline that ran on this row (a processor or a warper, in the order they
    ran): its name, its parameter, how many tokens the row still allows after it, and the
    tokens it removed itself (None when it removed more than a chart could list)."""

    name: str
    param: object
    kept: int
    removed: list[int] | None = field(default_factory=list)


@dataclass
class RowStep:
    """One sequence extended by one token (or, in beam search, offered as K-of-2K candidates).

    index:      the sample (greedy, sampling) or live beam (beam search) this row extends.
    sequence:   the ids it extends, prompt included.
    candidates: the TOP_N most probable tokens by `prob` (then by `model_prob` among removed
                ones), then any chosen token not among them.
    cuts:       the pipeline's steps that ran, in order (processors, then warpers when sampling).
    chosen:     the token drawn (greedy, sampling), or this beam's tokens among the 2K.
    """

    index: int
    sequence: list[int]
    candidates: list[TokenProb]
    chosen: list[int]
    cuts: list[Cut] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict) -> RowStep:
        return cls(
            data["index"],
            list(data["sequence"]),
            [TokenProb(c["token"], c["prob"], c["model_prob"]) for c in data["candidates"]],
            list(data["chosen"]),
            [Cut(c["name"], c["param"], c["kept"], c.get("removed", [])) for c in data["cuts"]],
        )

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

    @classmethod
    def from_json(cls, data: dict) -> Step:
        return cls(
            data["number"],
            [RowStep.from_json(row) for row in data["rows"]],
            [BeamCandidate(c["beam"], c["token"], number(c["score"]), c["fate"])
             for c in data["candidates"]],
            [Beam(b["ids"], number(b["score"]), number(b["logprob"]), *per_token(b))
             for b in data["beams"]],
            [Hypothesis(h["ids"], h["prompt_length"], number(h["logprob"]), number(h["score"]),
                        *per_token(h))
             for h in data["finished"]],
        )  # fmt: skip

    def __str__(self) -> str:
        lines = [f"step {self.number}"]
        lines += [f"  {row}" for row in self.rows]
        lines += [f"  candidate {c}" for c in self.candidates]
        lines += [f"  live {b}" for b in self.beams]
        lines += [f"  finished {h}" for h in self.finished]
        return "\n".join(lines)


# What became of a drafted token in a round of assisted decoding (`DraftedToken.outcome`).
ACCEPTED = "accepted"  # the model agreed: it is in the text
REJECTED = "rejected"  # the model refused it: the model's own token took its place
UNCHECKED = "not checked"  # drafted after a rejected token (or after an EOS): never looked at


@dataclass
class DraftedToken:
    """One token a drafter guessed in a round of assisted decoding, and how the check went.

    q:       the drafter's probability of the token: 1.0 for a deterministic guess (prompt
             lookup, a greedy draft model), else q(token) of the draft model's warped
             distribution it was drawn from.
    p:       the model's probability of the token at its position, in the distribution it
             decodes from (after processors; sampling: after warpers too). None if UNCHECKED.
    ratio:   p / q (None if UNCHECKED). Sampling keeps the token when uniform < min(1, ratio);
             greedy search keeps it when it is the model's most likely token, whatever p is.
    uniform: the uniform in [0, 1) drawn to decide (sampling only; else None).
    outcome: ACCEPTED, REJECTED or UNCHECKED.
    """

    token: int
    q: float
    p: float | None
    ratio: float | None
    uniform: float | None
    outcome: str


@dataclass
class ResidualProb:
    """One token of the distribution drawn from after a rejection (sampling): the model's p,
    the drafter's q, and prob = max(0, p - q) / Z, its probability in the residual."""

    token: int
    p: float
    q: float
    prob: float


@dataclass
class Round:
    """One round of assisted decoding: draft, verify every guess in one model call, keep.

    number:          1, 2, ... within its sample.
    index:           the sample (0 for greedy search), as RowStep.index.
    sequence_before: the ids the round starts from, prompt included.
    drafted:         every token the drafter guessed, in order.
    bonus:           the model's own token, at the first rejected position (greedy: its most
                     likely token; sampling: a draw from the residual) or after the whole
                     draft was accepted (greedy: the argmax; sampling: a draw from p); its
                     `prob` is its probability in what it was chosen from. None when the
                     text ended at an accepted EOS first.
    emitted:         the tokens the round added to the text: the accepted ones, then the bonus.
    residual_top:    sampling, after a rejection: the residual's top tokens, with the ones the
                     model and the drafter liked best and the rejected and bonus tokens, by p.
    """

    number: int
    index: int
    sequence_before: list[int]
    drafted: list[DraftedToken]
    bonus: TokenProb | None
    emitted: list[int]
    residual_top: list[ResidualProb] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        """How many drafted tokens made it into the text."""
        return sum(d.outcome == ACCEPTED for d in self.drafted)

    @classmethod
    def from_json(cls, data: dict) -> Round:
        bonus = data["bonus"]
        return cls(
            data["number"],
            data["index"],
            list(data["sequence_before"]),
            [DraftedToken(**d) for d in data["drafted"]],
            None if bonus is None else TokenProb(**bonus),
            list(data["emitted"]),
            [ResidualProb(**r) for r in data["residual_top"]],
        )

    def __str__(self) -> str:
        marks = {ACCEPTED: "ok", REJECTED: "NO", UNCHECKED: "--"}
        drafted = " ".join(f"{d.token}:{marks[d.outcome]}" for d in self.drafted)
        bonus = "" if self.bonus is None else f" + model's {self.bonus.token}"
        return f"#{self.index} round {self.number}: drafted [{drafted}]{bonus} -> {self.emitted}"


@dataclass
class Trace:
    """The steps of one prompt's decoding, and why it stopped. Assisted decoding also fills
    `rounds`, one per draft-and-verify round (of every sample in turn); other decoders leave it
    empty."""

    decoder: str
    prompt: list[int]
    steps: list[Step] = field(default_factory=list)
    stop_reason: str = ""
    rounds: list[Round] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{self.decoder} from {self.prompt}: {len(self.steps)} steps, {self.stop_reason}"
        return "\n".join([head] + [str(s) for s in self.steps] + [str(r) for r in self.rounds])

    def to_json(self) -> dict:
        """The trace as JSON-ready dicts and lists (what --trace writes, what pictures read).
        JSON has no infinity, so a -inf log-prob (a removed token) is written as null."""
        return json_safe(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, data: dict) -> Trace:
        """The Trace that `to_json` wrote: `Trace.from_json(t.to_json()) == t`. (A file
        written before traces had rounds has none.)"""
        return cls(data["decoder"], list(data["prompt"]),
                   [Step.from_json(s) for s in data["steps"]], data["stop_reason"],
                   [Round.from_json(r) for r in data.get("rounds", [])])  # fmt: skip


@dataclass
class AssistStats:
    """How assisted decoding went (decoding/assisted.py), summed over a prompt's sequences.

    rounds:   calls to the target model (one per round: draft, then verify at once).
    drafted:  tokens the drafter proposed.
    accepted: drafted tokens that made it into the text. Every round also adds one token of
              the target's own (unless the text ended at EOS or max_new_tokens first), so the
              text has about accepted + rounds new tokens.
    """

    rounds: int = 0
    drafted: int = 0
    accepted: int = 0

    @property
    def acceptance_rate(self) -> float:
        """accepted / drafted (0.0 when nothing was drafted)."""
        return self.accepted / self.drafted if self.drafted else 0.0


@dataclass
class Decoded:
    """Everything a decoder produced for one prompt. `assistant`: the assisted decoders' stats,
    None for every other decoder.

    scores, logits: HF's `output_scores` / `output_logits`, filled only when the decoder was
    called with those keywords (a float32 [V] row per step per sequence is big: 200 KB for
    GPT-2). One float32 array [rows, V] per step: the scores the decoder chose from (as in
    `Hypothesis.transition_scores`) and the model's raw logits. Rows are greedy search's one
    sequence, sampling's samples in order, beam search's K beam slots (the live beams best
    first, which `Hypothesis.beam_indices` point into), for every step this prompt ran. A row
    minigpt never computed is NaN: a sample that had stopped, a beam slot that was empty (at
    step 1 there is only the prompt; HF fills the other K - 1 rows with copies of it).
    decoding/transition_scores.py reads them as HF does.
    """

    prompt: list[int]
    hypotheses: list[Hypothesis]
    trace: Trace | None = field(default=None, repr=False)
    assistant: AssistStats | None = None
    scores: list | None = field(default=None, repr=False, compare=False)
    logits: list | None = field(default=None, repr=False, compare=False)

    @property
    def best(self) -> Hypothesis:
        """The first hypothesis: the best one for beam search, the first draw for sampling."""
        return self.hypotheses[0]

    def __str__(self) -> str:
        return "\n".join(str(h) for h in self.hypotheses)


def json_safe(value):
    """Dicts, lists and floats ready for json.dumps: tuples become lists, and a non-finite
    float (only -inf occurs: a removed token's log-prob) becomes None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def per_token(data: dict) -> tuple[list, list, list]:
    """A Beam's or Hypothesis's per-token lists from JSON (a trace written before they
    existed has none)."""
    return (
        [number(x) for x in data.get("token_logprobs", [])],
        [number(x) for x in data.get("transition_scores", [])],
        list(data.get("beam_indices", [])),
    )


def number(value: float | None) -> float:
    """A float read back from what `json_safe` wrote, where None stood for -inf."""
    return -math.inf if value is None else float(value)
