"""The strategy table: all the command line knows about each decoder, in one entry.

`minigpt generate --strategy NAME` looks NAME up here. An entry says which decoder runs and how
it is called, which options it takes (with their defaults), whether it can print its tokens as
they are chosen, and what its score means. The flags, their help, the validation, the JSON and
the demo all read this table, so a new decoder is one new entry (docs/design.md shows one).

The decoders check their own options (top_p in (0, 1], num_beams >= 1, ...); the CLI passes
the options through untouched and only rewrites the decoder's message into flag names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import minigpt
from decoding.assisted import assisted_greedy_search, assisted_sample
from decoding.beam import beam_search
from decoding.beam_sampling import beam_sample
from decoding.common import NextTokenLogits, OnToken
from decoding.greedy import greedy_search
from decoding.results import Hypothesis
from decoding.sampling import sample
from decoding.tree import exhaustive_tree_search
from minigpt.errors import MiniGPTError

DEFAULT_MAX_NEW_TOKENS = 20
MAX_TREE_NODES = 5000  # the exhaustive tree grows as num_beams ** depth: refuse silly sizes


@dataclass
class Run:
    """One decoder call, every option resolved: what a strategy's `run` function receives."""

    prompt: list[int]
    max_new_tokens: int
    eos_token_id: int | None
    options: dict  # the strategy's own options (Strategy.options), given or defaulted
    trace: bool = False
    on_token: OnToken | None = None  # for the strategies that stream
    assistant: object = None  # set by an assisted run: its AssistStats, for --json
    token_strings: list | None = None  # the bytes of every token id, when there are stop strings


# A strategy's run function: (next_token_logits, run) -> (hypotheses, trace or None).
Runner = Callable[[NextTokenLogits, Run], tuple[list[Hypothesis], object]]


@dataclass(frozen=True)
class Strategy:
    """One row of the table.

    options:     the options it takes beyond the prompt, --max-new-tokens and --eos-token-id,
                 each with its default (None: off, as in HF, unless the decoder says otherwise)
    streams:     its `run` calls `on_token`, so one sequence can be printed as it is made
    score_name:  how its Hypothesis.score is shown ("" if it has none); score_help says what
                 the number is
    """

    name: str
    label: str  # what --strategy's help says of it, if its name does not say it all
    run: Runner
    options: dict
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    streams: bool = False
    score_name: str = ""
    score_help: str = ""
    option_help: dict = field(default_factory=dict)  # where an option means something else here
    keywords: dict = field(default_factory=dict)  # decoder keyword -> its option, where they differ


def run_greedy(next_token_logits: NextTokenLogits, run: Run):
    options, assist = split_assistance(run.options, next_token_logits)
    decoder = assisted_greedy_search if assist else greedy_search
    (decoded,) = decoder(next_token_logits, run.prompt, **common(run), **options, **assist,
                         on_token=run.on_token)  # fmt: skip
    run.assistant = decoded.assistant
    return decoded.hypotheses, decoded.trace


def run_sample(next_token_logits: NextTokenLogits, run: Run):
    options, assist = split_assistance(run.options, next_token_logits)
    rng = np.random.default_rng(options.pop("seed"))  # the CLI has picked one if none was given
    decoder = assisted_sample if assist else sample
    (decoded,) = decoder(next_token_logits, run.prompt, rng=rng, **common(run), **options,
                         **assist, on_token=run.on_token)  # fmt: skip
    run.assistant = decoded.assistant
    return decoded.hypotheses, decoded.trace


def split_assistance(options: dict, next_token_logits: NextTokenLogits) -> tuple[dict, dict]:
    """(the decoder's own options, the assistance options given). Assistance is asked for
    when any of them is given; the assistant model named by --assistant-model is loaded here,
    and must have the model's vocabulary."""
    own = {k: v for k, v in options.items() if k not in ASSISTANCE}
    assist = {k: v for k, v in options.items() if k in ASSISTANCE and v is not None}
    if assist.get("assistant_model") is not None:
        assist["assistant_model"] = load_assistant(assist["assistant_model"], next_token_logits)
    return own, assist


def load_assistant(name: str, next_token_logits: NextTokenLogits) -> minigpt.NextTokenLogits:
    try:
        assistant = minigpt.NextTokenLogits(minigpt.load(name))
    except MiniGPTError as e:
        raise MiniGPTError(f"--assistant-model: {e}") from None
    vocab = getattr(next_token_logits, "vocab_size", None)
    if vocab is not None and assistant.vocab_size != vocab:
        raise MiniGPTError(
            f"--assistant-model {name} has a vocabulary of {assistant.vocab_size} tokens, the "
            f"model {vocab}: a draft model must share the model's vocabulary"
        )
    return assistant


def run_beam(next_token_logits: NextTokenLogits, run: Run):
    (decoded,) = beam_search(next_token_logits, run.prompt, **common(run), **run.options)
    return decoded.hypotheses, decoded.trace


def run_beam_sample(next_token_logits: NextTokenLogits, run: Run):
    options = dict(run.options)
    rng = np.random.default_rng(options.pop("seed"))  # the CLI has picked one if none was given
    (decoded,) = beam_sample(next_token_logits, run.prompt, rng=rng, **common(run), **options)
    return decoded.hypotheses, decoded.trace


def run_tree(next_token_logits: NextTokenLogits, run: Run):
    branching, depth = run.options["num_beams"], run.max_new_tokens
    check_tree_size(branching, depth)
    tree = exhaustive_tree_search(
        next_token_logits, run.prompt, branching=branching, depth=depth,
        eos_token_id=run.eos_token_id,
    )  # fmt: skip
    return tree.best_leaves(run.options["num_return_sequences"]), tree  # the tree is its trace


def common(run: Run) -> dict:
    """The keyword arguments every decoder of decoding/ takes (and the token table, for a run
    with stop strings)."""
    keywords = {
        "max_new_tokens": run.max_new_tokens,
        "eos_token_id": run.eos_token_id,
        "trace": run.trace,
    }
    if run.token_strings is not None:
        keywords["token_strings"] = run.token_strings
    return keywords


def check_tree_size(branching: int, depth: int) -> None:
    """The CLI's own limit: a tree beyond a few thousand nodes can be neither run nor drawn."""
    if not (isinstance(branching, int) and isinstance(depth, int)) or branching < 1 or depth < 1:
        return  # not a size: the decoder itself refuses it, with its own message
    nodes = sum(branching**level for level in range(1, depth + 1))
    if nodes > MAX_TREE_NODES:
        raise MiniGPTError(
            f"the exhaustive tree with {branching} children per node and depth {depth} has "
            f"{nodes} nodes (limit {MAX_TREE_NODES}); lower --num-beams or --max-new-tokens"
        )


# The logits processors and the stopping criteria: greedy, beam, sample and beam-sample take
# them all (decoding/pipeline.py, decoding/stopping.py). --stop-strings needs the text of every
# token, which generate.py adds as Run.token_strings.
PROCESSORS = {"repetition_penalty": None, "no_repeat_ngram_size": None, "min_new_tokens": None,
              "bad_words_ids": None, "sequence_bias": None, "suppress_tokens": None,
              "begin_suppress_tokens": None, "exponential_decay_length_penalty": None,
              "renormalize_logits": False, "stop_strings": None, "max_time": None}  # fmt: skip
# Assisted decoding (decoding/assisted.py): greedy search and sampling, with a drafter.
ASSISTANCE = {"assistant_model": None, "num_assistant_tokens": None,
              "num_assistant_tokens_schedule": None, "assistant_confidence_threshold": None,
              "prompt_lookup_num_tokens": None,
              "max_matching_ngram_size": None}  # fmt: skip
WARPERS = {"temperature": 1.0, "top_h": None, "top_k": None, "top_p": None, "min_p": None,
           "typical_p": None, "epsilon_cutoff": None, "eta_cutoff": None}  # fmt: skip

STRATEGIES = {
    s.name: s
    for s in [
        Strategy("greedy", "", run_greedy, {**PROCESSORS, **ASSISTANCE}, streams=True),
        Strategy(
            "beam", "", run_beam,
            {"num_beams": 4, "num_return_sequences": 1, "length_penalty": 1.0,
             "early_stopping": False, **PROCESSORS},
            score_name="score",
            score_help="sum of log-probs / new tokens ** length_penalty (HF's sequences_scores)",
        ),
        Strategy(
            "sample", "", run_sample,
            {**WARPERS, **PROCESSORS, "num_return_sequences": 1, "seed": None, **ASSISTANCE},
            streams=True,
            option_help={"num_return_sequences": "N samples"},
        ),
        Strategy(
            # No label: --strategy's one line of help has no room, and the name says it.
            "beam-sample", "", run_beam_sample,
            {"num_beams": 4, "num_return_sequences": 1, "length_penalty": 1.0,
             "early_stopping": False, **WARPERS, **PROCESSORS, "seed": None},
            score_name="score",
            score_help="sum of warped log-probs / new tokens ** length_penalty "
                       "(HF's sequences_scores)",
        ),
        Strategy(
            "tree", "the seed post's top-b tree", run_tree,
            {"num_beams": 2, "num_return_sequences": 1}, max_new_tokens=5,
            score_name="post score",
            score_help="the seed post's score: sum of log-probs / all tokens, prompt included",
            option_help={"num_beams": "children per node (default 2)",
                         "num_return_sequences": "N best leaves"},
            keywords={"branching": "num_beams", "depth": "max_new_tokens"},
        ),
    ]
}  # fmt: skip


def strategies_taking(option: str) -> list[str]:
    """The names of the strategies that take `option` (an argparse dest such as "top_p").

    >>> strategies_taking("num_beams")
    ['beam', 'beam-sample', 'tree']
    """
    return [s.name for s in STRATEGIES.values() if option in s.options]
