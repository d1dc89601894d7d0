"""Assisted decoding: a cheap drafter guesses a few tokens, the model checks them all at once.

Not a new strategy: the same greedy search and sampling, faster. A model call reads all the
weights once whether it looks at one position or ten, so checking γ guessed tokens in one call
costs about as much as generating one:

    sequence = prompt
    until max_new_tokens are generated or the last one is EOS:
        draft  = drafter(sequence)                  # x_1..x_γ: a small model, or prompt lookup
        logits = model(sequence + draft)            # ONE call, the logits after each of the
                                                    # γ + 1 prefixes: rows 0..γ
        for i = 1..γ:
            greedy:   keep x_i if it is the model's argmax in row i-1
            sampling: keep x_i with probability min(1, p(x_i) / q(x_i))
            not kept: the model's own token from row i-1 instead, and the round ends
                      (greedy: the argmax; sampling: a draw from norm(max(0, p - q)))
        all kept: the model's own token from row γ as well (argmax, or a draw from p)
        sequence += the kept tokens and the model's token (cut after EOS)

Every round adds at least one token, the model's own, so a drafter that is always wrong makes
it an ordinary greedy search or sampling with one extra guess per call.

Greedy: every token kept is the model's argmax at its position, so the text is exactly
`greedy_search`'s, token for token (processors included: they act on each row as on a step).

Sampling (Leviathan et al. 2023; Chen et al. 2023): p and q are the model's and the drafter's
distributions at the position, both after processors and warpers, in sampling.py's order. The
token this rule emits is distributed exactly as p, not approximately:

    P(emit y) = P(y drafted and kept) + P(some draft refused) * residual(y)
              = q(y) min(1, p(y) / q(y)) + (1 - sum_x min(p(x), q(x))) * max(0, p(y) - q(y)) / Z
              = min(p(y), q(y)) + max(0, p(y) - q(y))         (Z = sum_x max(0, p(x) - q(x))
              = p(y)                                            = 1 - sum_x min(p(x), q(x)))

A deterministic drafter (prompt lookup, a greedy draft model) is the case q = 1 on its guess:
kept with probability p(x), else a draw from p without x. (HF draws from p and keeps x if the
draw is x: the same distribution.)
Same seed, same text; but a different stream of random numbers from `sample`, so not the
same text as `sample` for that seed. The uniforms come from `rng` in this order: sequences one
after the other (prompt-major); within a round, first one per token a sampling draft model
draws, then one per drafted token checked (up to the first refused), then one for the model's
own token (drawn even when the text ends at an EOS before it).

HF generate(assistant_model=..., prompt_lookup_num_tokens=...) does the same (utils.py:
_assisted_decoding, _speculative_sampling); its differences are in `DraftModel` and `lookup`
(decoding/drafters.py). A draft model stops a round early after a token it doubts, as HF's
does (assistant_confidence_threshold, 0.4 by default): that changes how many tokens are
drafted, never which tokens are generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from decoding.common import (
    NextTokenLogits,
    OnToken,
    as_prompts,
    ask_model_at_positions,
    check_context,
    check_eos,
    check_positive_int,
    check_rng,
    check_vocab,
)
from decoding.drafters import DraftModel, PromptLookup
from decoding.pipeline import Pipeline
from decoding.probs import log_softmax, softmax
from decoding.recorder import new_trace, record_check, record_round_start, record_row, record_stop
from decoding.results import AssistStats, Decoded, Hypothesis, Step, Trace
from decoding.sampling import draw
from decoding.stopping import MAX_TIME, STOP_STRING, MaxTime, Stopping, TokenStrings
from decoding.warpers import Warpers

# ------------------------------------------------------------------------- the sampling rule


def acceptance_probability(p: np.ndarray, q: np.ndarray, x: int) -> float:
    """min(1, p(x) / q(x)): how likely a token x drawn from q is kept, the model being p.

    >>> acceptance_probability(np.array([0.5, 0.5]), np.array([0.8, 0.2]), 0)
    0.625
    """
    return min(1.0, float(p[x]) / float(q[x]))


def residual(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """norm(max(0, p - q)): what to draw from once a drafted token was refused. It puts mass
    only where the model wants more than the drafter gave, just enough to make up for it.

    p and q equal to float32 rounding leave nothing (and then no token is ever refused, as
    p / q = 1); the residual is then p itself.

    >>> residual(np.array([0.5, 0.5]), np.array([0.8, 0.2])).tolist()
    [0.0, 1.0]
    """
    rest = np.maximum(0.0, p.astype(np.float64) - q.astype(np.float64))
    total = rest.sum()
    return rest / total if total > 0 else p.astype(np.float64)


def certain(token: int, vocab_size: int) -> np.ndarray:
    """q of a deterministic guess: probability 1 on it."""
    q = np.zeros(vocab_size, dtype=np.float32)
    q[token] = 1.0
    return q


class Check(NamedTuple):
    """What `verify` found at one position: whether the drafted token is kept, the token to
    emit, the scores it was chosen from [V] and the warp steps (sampling; else None). For the
    trace only, sampling also says the uniform the check drew and, after a rejection, the q
    and the residual the model's token was drawn from (values it computed anyway)."""

    kept: bool
    token: int
    scores: np.ndarray
    steps: list | None = None
    uniform: float | None = None
    q: np.ndarray | None = None
    residual: np.ndarray | None = None


# ------------------------------------------------------------------------------- the decoders


def assisted_greedy_search(
    next_token_logits: NextTokenLogits,
    prompts: list[int] | list[list[int]],
    *,
    max_new_tokens: int,
    assistant_model: NextTokenLogits | None = None,
    num_assistant_tokens: int | None = None,
    num_assistant_tokens_schedule: str | None = None,
    assistant_confidence_threshold: float | None = None,
    prompt_lookup_num_tokens: int | None = None,
    max_matching_ngram_size: int | None = None,
    eos_token_id: int | None = None,
    stop_strings: str | list[str] | None = None,
    token_strings: TokenStrings | None = None,
    max_time: float | MaxTime | None = None,
    trace: bool = False,
    on_token: OnToken | None = None,
    **processing,
) -> list[Decoded]:
    """`greedy_search`, with a drafter: the same tokens, in fewer calls of the model.

    Give either `assistant_model` (a second next_token_logits callable with the same
    vocabulary; it drafts `num_assistant_tokens`, default 20, by greedy search, with the
    schedule "constant" or "heuristic", ending a round early after a token whose probability
    under the draft model is below `assistant_confidence_threshold`, default 0.4, as in HF; 0
    turns that off) or `prompt_lookup_num_tokens` (draft that many tokens
    by prompt lookup, matching n-grams of up to `max_matching_ngram_size`, default 2).
    Each Decoded's `assistant` says how many rounds ran and how many drafted tokens were kept.
    Prompts run one after the other; `on_token(i, token)`, **processing, stop_strings,
    token_strings and max_time as in greedy_search. A sequence stops at the first token that
    completes a stop string, even inside a round of accepted guesses (HF looks only at the
    end of a round, and may run past it), so the text stays greedy_search's; max_time is
    looked at after every round, as HF does.

    >>> table = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]]))
    >>> bigram = lambda seqs: table[[s[-1] for s in seqs]]
    >>> out = assisted_greedy_search(bigram, [2], max_new_tokens=6, assistant_model=bigram)[0]
    >>> out.best.new_ids, out.assistant
    ([2, 2, 2, 2, 2, 2], AssistStats(rounds=1, drafted=5, accepted=5))
    """
    batch = as_prompts(prompts)
    max_new_tokens = check_positive_int("max_new_tokens", max_new_tokens)
    check_context(next_token_logits, batch, max_new_tokens)
    eos = check_eos(eos_token_id)
    pipeline = Pipeline.of(None, **processing)
    stopping = Stopping.of(stop_strings, token_strings, max_time)
    drafter_args = (assistant_model, num_assistant_tokens, num_assistant_tokens_schedule,
                    assistant_confidence_threshold, prompt_lookup_num_tokens,
                    max_matching_ngram_size)  # fmt: skip
    check_assistant(next_token_logits, assistant_model, batch, max_new_tokens)
    results = []
    for i, prompt in enumerate(batch):
        score = Scorer(pipeline, len(prompt), eos)

        def pick(logits: np.ndarray, sequence: list[int], score=score):  # a draft's greedy step
            scores = score.for_draft(logits, sequence)
            if scores is None:
                return -1, None, 0.0  # every token banned here: stop drafting
            token = int(np.argmax(scores))
            return token, None, float(softmax(scores)[token])  # its confidence in it

        def verify(logits: np.ndarray, sequence: list[int], drafted: int | None, q, score=score):
            """The model's token after `sequence`, and whether it is the drafted one."""
            scores, steps = score(logits, sequence)  # refuses a row with every token banned
            token = int(np.argmax(scores[0]))  # the first maximum on ties, as greedy_search
            return Check(token == drafted, token, scores[0], steps)

        drafter = make_drafter(*drafter_args, pick, pipeline.processors, eos)
        stats = AssistStats()
        row_trace = new_trace(trace, "assisted greedy search", prompt)
        hypothesis, why = assisted_run(
            next_token_logits, prompt, drafter, verify, max_new_tokens, eos, stats, row_trace,
            0, (lambda token, i=i: on_token(i, token)) if on_token else None, stopping,
        )  # fmt: skip
        record_stop(row_trace, f"{why}; {describe(stats)}")
        results.append(Decoded(prompt, [hypothesis], row_trace, stats))
    return results


@dataclass(frozen=True)
class Scorer:
    """The pipeline at one position of a continuation of a prompt of prompt_length tokens:
    scorer(logits [V], sequence) -> (scores [1, V], steps)."""

    pipeline: Pipeline
    prompt_length: int
    eos: int | None

    def __call__(self, logits: np.ndarray, sequence: list[int]):
        return self.pipeline.apply(logits[None], [sequence], prompt_lengths=[self.prompt_length],
                                   eos_token_id=self.eos)  # fmt: skip

    def for_draft(self, logits: np.ndarray, sequence: list[int]) -> np.ndarray | None:
        """A draft model's scores [V] after `sequence`, in one run of the pipeline with no
        records (a draft's are never traced), or None where the processors left no token: a
        draft model stops drafting there (the model itself refuses such a row, as
        greedy_search and sample do)."""
        scores, _ = self.pipeline.apply(
            logits[None], [sequence], prompt_lengths=[self.prompt_length], eos_token_id=self.eos,
            dead_rows_ok=True, record=False,
        )  # fmt: skip
        return None if scores.max() == -np.inf else scores[0]


def assisted_sample(
    next_token_logits: NextTokenLogits,
    prompts: list[int] | list[list[int]],
    *,
    rng: np.random.Generator,
    max_new_tokens: int,
    assistant_model: NextTokenLogits | None = None,
    num_assistant_tokens: int | None = None,
    num_assistant_tokens_schedule: str | None = None,
    assistant_confidence_threshold: float | None = None,
    prompt_lookup_num_tokens: int | None = None,
    max_matching_ngram_size: int | None = None,
    temperature: float = 1.0,
    top_h: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    typical_p: float | None = None,
    epsilon_cutoff: float | None = None,
    eta_cutoff: float | None = None,
    num_return_sequences: int = 1,
    eos_token_id: int | None = None,
    stop_strings: str | list[str] | None = None,
    token_strings: TokenStrings | None = None,
    max_time: float | MaxTime | None = None,
    trace: bool = False,
    on_token: OnToken | None = None,
    **processing,
) -> list[Decoded]:
    """`sample`, with a drafter (speculative sampling): every token distributed exactly as
    sample()'s, in fewer calls of the model. The drafter's options are assisted_greedy_search's;
    a draft model samples its guesses from its own distribution, warped by the same warpers.
    Sequences run one after the other (see the module's docstring for the order of the random
    numbers); `on_token(r, token)` and the rows r as in sample. Each Decoded's `assistant`
    sums the stats of its num_return_sequences samples. **processing, stop_strings,
    token_strings and max_time as in assisted_greedy_search.

    >>> fixed = lambda seqs: np.tile(np.log([0.1, 0.2, 0.7]), (len(seqs), 1))
    >>> run = lambda seed: assisted_sample(fixed, [0], rng=np.random.default_rng(seed),
    ...                                    max_new_tokens=8, assistant_model=fixed)[0]
    >>> stats = run(7).assistant  # q = p: every drafted token is kept
    >>> run(7).best.new_ids == run(7).best.new_ids, stats.accepted == stats.drafted
    (True, True)
    """
    batch = as_prompts(prompts)
    check_rng(rng)
    max_new_tokens = check_positive_int("max_new_tokens", max_new_tokens)
    check_context(next_token_logits, batch, max_new_tokens)
    n_samples = check_positive_int("num_return_sequences", num_return_sequences)
    eos = check_eos(eos_token_id)
    warpers = Warpers(temperature=temperature, top_h=top_h, top_k=top_k, top_p=top_p,
                      min_p=min_p, typical_p=typical_p, epsilon_cutoff=epsilon_cutoff,
                      eta_cutoff=eta_cutoff)  # fmt: skip
    pipeline = Pipeline.of(warpers, **processing)
    stopping = Stopping.of(stop_strings, token_strings, max_time)
    drafter_args = (assistant_model, num_assistant_tokens, num_assistant_tokens_schedule,
                    assistant_confidence_threshold, prompt_lookup_num_tokens,
                    max_matching_ngram_size)  # fmt: skip
    check_assistant(next_token_logits, assistant_model, batch, max_new_tokens)
    results = []
    for i, prompt in enumerate(batch):
        score = Scorer(pipeline, len(prompt), eos)

        def distribution(logits: np.ndarray, sequence: list[int], score=score):
            """(warped logits [1, V], pipeline steps, probabilities [V]) after `sequence`."""
            warped, steps = score(logits, sequence)  # refuses a row with every token banned
            return warped, steps, softmax(warped)[0]

        def pick(logits: np.ndarray, sequence: list[int], score=score):  # a draft's sampling
            warped = score.for_draft(logits, sequence)
            if warped is None:
                return -1, None, 0.0  # every token banned here: stop drafting
            q = softmax(warped)
            token = draw(q, rng.random())
            return token, q, float(q[token])

        def verify(logits: np.ndarray, sequence: list[int], drafted: int | None, q):
            """Keep the drafted token with probability min(1, p/q); else the model's own draw."""
            warped, steps, p = distribution(logits, sequence)
            if drafted is None:  # after the whole draft: a plain draw from p
                return Check(False, draw(p, rng.random()), warped[0], steps)
            q = certain(drafted, len(p)) if q is None else q
            uniform = rng.random()
            if uniform < acceptance_probability(p, q, drafted):
                return Check(True, drafted, warped[0], steps, uniform)
            rest = residual(p, q)
            return Check(False, draw(rest, rng.random()), warped[0], steps, uniform, q, rest)

        stats = AssistStats()
        hypotheses, traces, at_eos = [], [], 0
        for s in range(n_samples):
            r = i * n_samples + s
            drafter = make_drafter(*drafter_args, pick, pipeline.processors, eos)
            row_trace = new_trace(trace, "assisted sampling", prompt)
            hypothesis, why = assisted_run(
                next_token_logits, prompt, drafter, verify, max_new_tokens, eos, stats,
                row_trace, s, (lambda token, r=r: on_token(r, token)) if on_token else None,
                stopping,
            )  # fmt: skip
            hypotheses.append(hypothesis)
            traces.append(row_trace)
            at_eos += why == "stopped at EOS"
        merged = merge_traces(traces)
        record_stop(merged, f"{at_eos} of {n_samples} samples stopped at EOS; {describe(stats)}")
        results.append(Decoded(prompt, hypotheses, merged, stats))
    return results


# ------------------------------------------------------------------------------- one sequence


def assisted_run(
    next_token_logits: NextTokenLogits,
    prompt: list[int],
    drafter,
    verify,
    max_new_tokens: int,
    eos: int | None,
    stats: AssistStats,
    trace: Trace | None,
    index: int,
    emit,
    stopping: Stopping | None = None,
) -> tuple[Hypothesis, str]:
    """Draft, verify, keep: the loop of the module's docstring for one sequence.

    verify(logits [V], sequence, drafted token or None, its q or None) -> a Check.
    Returns the hypothesis and why it stopped. With a trace, each round is recorded as a
    Round (record_round_start, then record_check per position) besides the usual RowSteps.
    """
    sequence = list(prompt)
    logprob = 0.0  # the model's log-probs of the generated tokens, as greedy_search sums them
    token_logprobs: list[float] = []  # each of them, and each token's transition score: its
    transition_scores: list[float] = []  # entry in the scores it was checked against
    generated = 0
    vocab_size = None
    while generated < max_new_tokens:
        # Leave room for the model's own token: draft at most max_new_tokens - generated - 1.
        draft = drafter.propose(sequence, max_new_tokens - generated - 1)
        n = len(draft.tokens)
        logits = ask_model_at_positions(next_token_logits, sequence + draft.tokens, n, vocab_size)
        if vocab_size is None:
            vocab_size = logits.shape[1]
            check_vocab(vocab_size, [prompt], eos)
        check_draft_vocab(drafter, vocab_size)
        stats.rounds += 1
        stats.drafted += n
        record_round_start(trace, index, sequence, draft.tokens, draft.q)

        accepted = 0
        for i in range(n + 1):  # row i: after the first i drafted tokens
            drafted = draft.tokens[i] if i < n else None
            q = draft.q[i] if draft.q is not None and i < n else None
            check = verify(logits[i], sequence, drafted, q)
            kept, token = check.kept, check.token
            model_logp = log_softmax(logits[i : i + 1])[0]
            record_row(
                trace, generated + 1, index, sequence, check.scores, model_logp, [token],
                check.steps,
            )  # fmt: skip
            record_check(trace, i, check.scores, model_logp, token, kept, check.uniform,
                         check.q, check.residual)  # fmt: skip
            sequence.append(token)
            logprob += float(model_logp[token])
            token_logprobs.append(float(model_logp[token]))
            transition_scores.append(float(check.scores[token]))
            generated += 1
            accepted += kept
            if emit is not None:
                emit(token)
            stop = "stopped at EOS" if token == eos else ""
            if not stop and stopping is not None and stopping.ends_with_stop_string(sequence):
                stop = STOP_STRING
            if stop:
                stats.accepted += accepted
                return Hypothesis(sequence, len(prompt), logprob, None, token_logprobs,
                                  transition_scores), stop  # fmt: skip
            if not kept:
                break
        stats.accepted += accepted
        drafter.update(n, accepted)
        if stopping is not None and stopping.time_is_up():  # once per round, as HF
            hypothesis = Hypothesis(sequence, len(prompt), logprob, None, token_logprobs,
                                    transition_scores)  # fmt: skip
            return hypothesis, MAX_TIME
    hypothesis = Hypothesis(sequence, len(prompt), logprob, None, token_logprobs, transition_scores)
    return hypothesis, "reached max_new_tokens"


def make_drafter(
    assistant_model,
    num_tokens,
    schedule,
    threshold,
    lookup_tokens,
    max_ngram,
    pick,
    processors,
    eos,
):
    """The drafter the options ask for: a DraftModel or a PromptLookup, never both."""
    if (assistant_model is None) == (lookup_tokens is None):
        raise ValueError(
            "assisted decoding needs a drafter: give assistant_model or prompt_lookup_num_tokens"
            if assistant_model is None
            else "give assistant_model or prompt_lookup_num_tokens, not both"
        )
    if assistant_model is None:
        for name, value in [("num_assistant_tokens", num_tokens),
                            ("num_assistant_tokens_schedule", schedule),
                            ("assistant_confidence_threshold", threshold)]:  # fmt: skip
            if value is not None:
                raise ValueError(
                    f"{name} is for assistant_model; prompt lookup drafts "
                    "prompt_lookup_num_tokens tokens every round"
                )
        return PromptLookup(lookup_tokens, max_ngram, processors, eos)
    if max_ngram is not None:
        raise ValueError("max_matching_ngram_size is for prompt_lookup_num_tokens")
    args = {} if num_tokens is None else {"num_tokens": num_tokens}
    if threshold is not None:
        args["confidence_threshold"] = threshold
    return DraftModel(assistant_model, pick, eos, schedule=schedule or "constant", **args)


def check_draft_vocab(drafter, vocab_size: int) -> None:
    draft_vocab = getattr(drafter, "vocab_size", None)
    if draft_vocab is not None and draft_vocab != vocab_size:
        raise ValueError(vocab_mismatch(draft_vocab, vocab_size))


def vocab_mismatch(draft_vocab: int, vocab_size: int) -> str:
    return (
        f"the assistant model's vocabulary has {draft_vocab} tokens and the model's "
        f"{vocab_size}: they must share one vocabulary"
    )


def check_assistant(model, assistant_model, prompts: list[list[int]], max_new_tokens: int) -> None:
    """At the door, what can be known before any call: the vocabularies, when both callables
    say theirs in a `vocab_size` attribute (minigpt's adapter does; otherwise the first call
    tells), and check_context for the assistant model, which reads at most the prompt and
    max_new_tokens - 1 new tokens (the model adds the last one itself)."""
    if assistant_model is None:
        return
    vocabs = getattr(assistant_model, "vocab_size", None), getattr(model, "vocab_size", None)
    if None not in vocabs and vocabs[0] != vocabs[1]:
        raise ValueError(vocab_mismatch(*vocabs))
    context = getattr(assistant_model, "context_length", None)
    longest = max(len(p) for p in prompts) + max_new_tokens - 1
    if context is not None and longest > context:
        raise ValueError(
            f"the assistant model's context of {context} is shorter than the prompt + "
            f"max_new_tokens - 1 = {longest} tokens; shorten the prompt or lower max_new_tokens"
        )


def describe(stats: AssistStats) -> str:
    return f"{stats.rounds} rounds, {stats.accepted} of {stats.drafted} drafted tokens accepted"


def merge_traces(traces: list[Trace | None]) -> Trace | None:
    """One trace of several samples run one after the other: step k holds every sample's
    row of step k, in sample order (as sample() records them, stepping all at once)."""
    if traces[0] is None:
        return None
    merged = Trace(traces[0].decoder, traces[0].prompt)
    steps: dict[int, Step] = {}
    for t in traces:
        for step in t.steps:
            steps.setdefault(step.number, Step(step.number, [])).rows.extend(step.rows)
    merged.steps = [steps[k] for k in sorted(steps)]
    merged.rounds = [r for t in traces for r in t.rounds]  # sample 0's rounds, then sample 1's
    return merged
