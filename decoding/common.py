"""What every decoder does the same way: check its arguments and ask the model.

A decoder talks to the model through one callable (see docs/design.md):

    next_token_logits(sequences: list[list[int]]) -> np.ndarray   # [len(sequences), vocab] float32

Everything here turns a mistake into a one-line ValueError at the door, so a learner never
meets a NumPy traceback three functions deep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from decoding.pipeline import Pipeline, check_some_token_left  # noqa: F401 (the decoders' too)
from decoding.warpers import ScoreStep

NextTokenLogits = Callable[[list[list[int]]], np.ndarray]
# Called with (sequence index, token) as soon as a decoder has chosen a token: for streaming.
OnToken = Callable[[int, int], None]


def _is_token_id(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def as_prompt(prompt: Sequence[int], name: str = "prompt") -> list[int]:
    """One prompt as a fresh list of Python ints; raise if it is empty or not token ids."""
    if isinstance(prompt, np.ndarray):
        prompt = prompt.tolist()
    if not isinstance(prompt, (list, tuple)) or not all(_is_token_id(t) for t in prompt):
        raise ValueError(f"{name} must be a list of int token ids, got {prompt!r:.60}")
    if len(prompt) == 0:
        raise ValueError(f"{name} is empty: give at least one token id (GPT-2 uses 50256 as BOS)")
    if min(prompt) < 0:
        raise ValueError(f"{name} contains a negative token id ({min(prompt)})")
    return [int(t) for t in prompt]


def as_prompts(prompts: Sequence[int] | Sequence[Sequence[int]]) -> list[list[int]]:
    """Accept one prompt ([40, 423]) or a batch ([[40, 423], [464]]); always return a batch.

    >>> as_prompts([40, 423])
    [[40, 423]]
    """
    if isinstance(prompts, np.ndarray):
        prompts = prompts.tolist()
    if not isinstance(prompts, (list, tuple)) or len(prompts) == 0:
        raise ValueError("prompts must be a non-empty list of token ids, or a list of such lists")
    if all(_is_token_id(t) for t in prompts):
        return [as_prompt(prompts)]
    return [as_prompt(p, f"prompt {i}") for i, p in enumerate(prompts)]


def check_positive_int(name: str, value: object) -> int:
    """An int >= 1 (bools are refused: True is not a count)."""
    if not _is_token_id(value) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def check_rng(rng: object) -> np.random.Generator:
    """The samplers' source of randomness: a np.random.Generator, injected, never global."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a np.random.Generator, e.g. np.random.default_rng(seed)")
    return rng


def check_eos(eos_token_id: object) -> int | None:
    """None (never stop early) or a non-negative int token id."""
    if eos_token_id is None:
        return None
    if not _is_token_id(eos_token_id) or eos_token_id < 0:
        raise ValueError(f"eos_token_id must be None or a token id >= 0, got {eos_token_id!r}")
    return int(eos_token_id)


def check_context(
    next_token_logits: NextTokenLogits, prompts: list[list[int]], max_new_tokens: int
) -> None:
    """Refuse, before any model call, a run that would outgrow the model's context window.

    A model can only see so many positions (GPT-2: 1024). A callable that knows its limit says
    so in a `context_length` attribute (minigpt's NextTokenLogits does; a toy table has none
    and no limit). Checking here, at the door, means a long run never fails halfway and loses
    the tokens it already generated.

    >>> class Toy:
    ...     context_length = 8
    ...     def __call__(self, seqs): return np.zeros((len(seqs), 3), np.float32)
    >>> check_context(Toy(), [[0, 1, 2]], max_new_tokens=6)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: the prompt (3 tokens) + max_new_tokens 6 = 9 tokens exceeds the model's context...
    """
    context = getattr(next_token_logits, "context_length", None)
    if context is None:
        return
    for i, prompt in enumerate(prompts):
        if len(prompt) + max_new_tokens > context:
            which = "the prompt" if len(prompts) == 1 else f"prompt {i}"
            raise ValueError(
                f"{which} ({len(prompt)} tokens) + max_new_tokens {max_new_tokens} = "
                f"{len(prompt) + max_new_tokens} tokens exceeds the model's context of "
                f"{context}; shorten the prompt or lower max_new_tokens"
            )


def check_vocab(vocab_size: int, prompts: list[list[int]], eos_token_id: int | None) -> None:
    """Once the first logits tell us the vocabulary size, every id we hold must fit in it."""
    if eos_token_id is not None and eos_token_id >= vocab_size:
        raise ValueError(
            f"eos_token_id {eos_token_id} is outside the vocabulary (size {vocab_size})"
        )
    for i, prompt in enumerate(prompts):
        if max(prompt) >= vocab_size:
            raise ValueError(
                f"prompt {i} has token id {max(prompt)}, outside the vocabulary (size {vocab_size})"
            )


def ask_model(
    next_token_logits: NextTokenLogits, sequences: list[list[int]], vocab_size: int | None = None
) -> np.ndarray:
    """Next-token logits of every sequence in ONE call, checked: [len(sequences), V] float32.

    The callable gets copies, so nothing it does can change our beams.
    """
    logits = np.asarray(next_token_logits([list(s) for s in sequences]), dtype=np.float32)
    n = len(sequences)
    wrong_shape = f"next_token_logits returned shape {logits.shape} for {n} sequences"
    return checked_logits(logits, n, vocab_size, wrong_shape)


def checked_logits(
    logits: np.ndarray, rows: int, vocab_size: int | None, wrong_shape: str
) -> np.ndarray:
    """The model's answer, if it is [rows, V] float32 logits with the vocabulary size known so
    far (None on the first call) and no NaN or +inf; else a ValueError (`wrong_shape` opens
    the message for a wrong shape)."""
    if logits.ndim != 2 or logits.shape[0] != rows or logits.shape[1] == 0:
        raise ValueError(f"{wrong_shape}; expected [{rows}, vocab_size]")
    if vocab_size is not None and logits.shape[1] != vocab_size:
        raise ValueError(
            f"next_token_logits changed the vocabulary size from {vocab_size} to {logits.shape[1]}"
        )
    top = logits.max()  # NaN if any logit is NaN: one pass instead of two elementwise checks
    if np.isnan(top) or top == np.inf:
        raise ValueError("next_token_logits returned NaN or +inf logits: check the model weights")
    return logits


def processed_logits(
    next_token_logits: NextTokenLogits,
    sequences: list[list[int]],
    pipeline: Pipeline,
    vocab_size: int | None,
    prompts: list[list[int]],
    eos_token_id: int | None,
    prompt_lengths: list[int],
    record: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[ScoreStep], int]:
    """One step of greedy search or sampling up to the choice: (raw logits, the scores after
    the pipeline, its steps, vocab size). Checks the model's answer, the prompts against the
    vocabulary on the first step (vocab_size None), and (the pipeline does) that the
    processors left every row a token to choose. prompt_lengths: one per sequence; record:
    whether the pipeline makes its steps' records (for a trace)."""
    logits = ask_model(next_token_logits, sequences, vocab_size)
    if vocab_size is None:
        vocab_size = logits.shape[1]
        check_vocab(vocab_size, prompts, eos_token_id)
    # on logits (beam search runs the same pipeline on log-probs)
    scores, steps = pipeline.apply(
        logits, sequences, prompt_lengths=prompt_lengths, eos_token_id=eos_token_id,
        record=record,
    )  # fmt: skip
    return logits, scores, steps, vocab_size


def ask_model_at_positions(
    next_token_logits: NextTokenLogits,
    sequence: list[int],
    n: int,
    vocab_size: int | None = None,
) -> np.ndarray:
    """The next-token logits after each of the last n + 1 prefixes of `sequence`, in ONE call.

    Row i (0 <= i <= n) is what follows `sequence[: len(sequence) - n + i]`: [n + 1, V] float32.
    Assisted decoding checks n drafted tokens this way. A callable that can do it in one pass
    over the sequence says so with a `logits_at_positions(sequence, n)` method (minigpt's
    adapter has one); any other callable gets the n + 1 prefixes as one batch, the same numbers.

    >>> bigram = lambda seqs: np.eye(3, dtype=np.float32)[[s[-1] for s in seqs]]
    >>> ask_model_at_positions(bigram, [0, 2, 1], n=2).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    method = getattr(next_token_logits, "logits_at_positions", None)
    if method is None:
        prefixes = [sequence[: len(sequence) - n + i] for i in range(n + 1)]
        return ask_model(next_token_logits, prefixes, vocab_size)
    logits = np.asarray(method(list(sequence), n), dtype=np.float32)
    wrong_shape = f"logits_at_positions returned shape {logits.shape} for n = {n}"
    return checked_logits(logits, n + 1, vocab_size, wrong_shape)
