"""The `minigpt` command: generate text with any decoder, score a text, run the demo.

    python -m minigpt generate "Once upon a time" --strategy beam --num-beams 4
    python -m minigpt score "Once upon a time, there was a girl."
    python -m minigpt demo

This is the one place that imports both packages: it loads a model (minigpt/), wraps it in the
next-token-logits adapter, and hands that to a decoder (decoding/). Options are named after
Hugging Face `generate()`'s arguments. A mistake the user can fix ends the program with ONE
line on stderr and exit status 1 (2 for a malformed command line), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import secrets
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

import minigpt
from decoding.beam import beam_search, check_beam_params
from decoding.greedy import greedy_search
from decoding.probs import log_softmax
from decoding.processors import Processors
from decoding.results import Hypothesis
from decoding.sampling import sample
from decoding.tree import TreeSearchResult, exhaustive_tree_search
from decoding.warpers import Warpers
from minigpt.defaults import DEMO_PROMPT, RANDOM_NOTE, default_model_dir, is_random_demo
from minigpt.errors import MiniGPTError
from minigpt.render import save_picture, tree_dot
from minigpt.render.output import check_picture_path

STRATEGIES = ("greedy", "beam", "sample", "tree")
DEFAULT_MAX_NEW_TOKENS = 20
TREE_DEFAULT_DEPTH = 5  # the seed post's
DEFAULT_NUM_BEAMS = {"beam": 4, "tree": 2}  # tree: children per node, the post's 2
MAX_TREE_NODES = 5000  # the exhaustive tree grows as num_beams ** depth: refuse silly sizes

# Which strategies each strategy-specific option applies to. Giving it to another strategy is
# an error that names the option, rather than an option silently ignored.
APPLIES_TO = {
    "num_beams": ("beam", "tree"),
    "length_penalty": ("beam",),
    "early_stopping": ("beam",),
    "num_return_sequences": ("beam", "sample", "tree"),
    "temperature": ("sample",),
    "top_k": ("sample",),
    "top_p": ("sample",),
    "min_p": ("sample",),
    "typical_p": ("sample",),
    "repetition_penalty": ("greedy", "beam", "sample"),
    "no_repeat_ngram_size": ("greedy", "beam", "sample"),
    "seed": ("sample",),
}
WARPERS = ("temperature", "top_k", "top_p", "min_p", "typical_p")


class ModelEOS:
    """--eos-token-id's default, the model's EOS. Not a string, which argparse would parse."""

    def __repr__(self) -> str:
        return "the model's EOS"


MODEL_EOS = ModelEOS()


# =============================================================================== command line


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line gets one line on stderr, not usage + message, and
    each option's help stays on one line (at least 110 columns, help from column 30)."""

    def __init__(self, *args, **kwargs) -> None:
        width = max(shutil.get_terminal_size().columns, 110)
        kwargs.setdefault(
            "formatter_class",
            lambda prog: argparse.HelpFormatter(prog, max_help_position=30, width=width),
        )
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def prompt_ids_arg(text: str) -> list[int]:
    """Parse --prompt-ids: comma-separated non-negative integers, e.g. 40,423,257,4320."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated token ids like 40,423,257,4320, got {text!r}"
        )
    return [int(p) for p in parts]


def eos_arg(text: str) -> int | None:
    """Parse --eos-token-id: a token id, or "none" to never stop early."""
    if text.lower() == "none":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a token id or none, got {text!r}")
    return int(text)


def early_stopping_arg(text: str) -> bool | str:
    """Parse --early-stopping: true, false or never (HF's True, False, "never")."""
    values = {"true": True, "false": False, "never": "never"}
    if text.lower() not in values:
        raise argparse.ArgumentTypeError(f"expected true, false or never, got {text!r}")
    return values[text.lower()]


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: `generate`, `score`, `demo` and `download`."""
    from minigpt import download as downloader
    from minigpt.installation import version

    parser = OneLineParser(
        prog="minigpt", description="GPT-2 and its decoders in NumPy: generate, score, demo."
    )
    parser.add_argument("--version", action="version", version=f"minigpt {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_generate_options(commands.add_parser("generate", help="continue a prompt"))
    score = commands.add_parser("score", help="per-token log-probs and perplexity of a text")
    score.add_argument("text", metavar="TEXT", help="the text to score")
    add_model_option(score)
    score.add_argument("--json", action="store_true", help="print one JSON object instead")
    demo = commands.add_parser("demo", help="every strategy on one prompt (what make demo runs)")
    add_model_option(demo)
    fetch = commands.add_parser(
        "download",
        help="fetch a published GPT-2 checkpoint for --model NAME (resumable, sha256-checked)",
        description=downloader.DESCRIPTION,
        epilog="environment: " + downloader.ENVIRONMENT,
    )
    downloader.add_arguments(fetch)
    return parser


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="DIR|NAME",
        help="a checkpoint directory or a name (gpt2, ...); default: the bundled minigpt-tiny",
    )


# generate's options after PROMPT and --model: (flag, argparse settings, one line of help).
# Named like HF generate()'s arguments; `--help` prints the help lines.
GENERATE_OPTIONS = [
    ("--prompt-ids", {"type": prompt_ids_arg, "metavar": "IDS"},
     "the prompt as token ids instead of text, e.g. 40,423,257,4320"),
    ("--strategy", {"choices": STRATEGIES, "default": "greedy"},
     "greedy | beam (beam search) | sample | tree (the seed post's top-b tree)"),
    ("--max-new-tokens", {"type": int, "metavar": "N"},
     f"generate at most N tokens (default {DEFAULT_MAX_NEW_TOKENS}; tree: its depth, default 5)"),
    ("--num-beams", {"type": int, "metavar": "K"},
     "beam: beams kept per step (default 4); tree: children per node (default 2)"),
    ("--length-penalty", {"type": float, "metavar": "X"},
     "beam: rank by sum of log-probs / length**X (default 1.0; > 0 favours long)"),
    ("--early-stopping", {"type": early_stopping_arg, "metavar": "{true,false,never}"},
     "beam: stop at K finished (true), at HF's bound (false, default), exact (never)"),
    ("--num-return-sequences", {"type": int, "metavar": "N"},
     "beam: N best hypotheses; sample: N independent samples; tree: N best leaves"),
    ("--eos-token-id", {"type": eos_arg, "metavar": "ID|none", "default": MODEL_EOS},
     "stop once this token is generated; none = never (default: the model's EOS)"),
    ("--temperature", {"type": float, "metavar": "T"},
     "sample: divide the logits by T (< 1 sharper, > 1 flatter; 0 means greedy)"),
    ("--top-k", {"type": int, "metavar": "K"},
     "sample: keep only the K most likely tokens"),
    ("--top-p", {"type": float, "metavar": "P"},
     "sample: keep the most likely tokens until their mass reaches P (nucleus)"),
    ("--min-p", {"type": float, "metavar": "P"},
     "sample: keep the tokens at least P times as likely as the most likely one"),
    ("--typical-p", {"type": float, "metavar": "P"},
     "sample: keep the tokens whose surprise is nearest the entropy, up to mass P"),
    ("--repetition-penalty", {"type": float, "metavar": "R"},
     "greedy/beam/sample: R > 1 makes tokens already in the text less likely"),
    ("--no-repeat-ngram-size", {"type": int, "metavar": "N"},
     "greedy/beam/sample: never generate an N-gram the text already holds"),
    ("--seed", {"type": int, "metavar": "S"},
     "sample: the random seed; same seed, same text (default: a fresh one, printed)"),
    ("--json", {"action": "store_true"},
     "print JSON: prompt_ids, sequences [{ids, text, score, logprob, finish_reason}]"),
    ("--trace", {"metavar": "FILE"},
     "write what every step saw and chose to FILE, as JSON"),
    ("--tree", {"metavar": "FILE"},
     "draw the search tree to FILE: .dot, or .svg/.png/.pdf rendered by Graphviz"),
]  # fmt: skip


def add_generate_options(parser: argparse.ArgumentParser) -> None:
    """PROMPT, --model, then every option of GENERATE_OPTIONS."""
    parser.add_argument("prompt", nargs="?", metavar="PROMPT", help="the text to continue")
    add_model_option(parser)
    for flag, settings, help_line in GENERATE_OPTIONS:
        parser.add_argument(flag, help=help_line, **settings)


# ============================================================================== shared pieces


@dataclass
class Session:
    """A loaded model, its tokenizer, and where they came from."""

    model_dir: Path
    model: minigpt.GPT2
    tokenizer: object  # minigpt.tokenizer.Tokenizer
    notes: list[str] = dataclasses.field(default_factory=list)  # for stderr, once input is OK

    @property
    def is_random_demo(self) -> bool:
        return is_random_demo(self.model_dir)


def open_session(model: str | None) -> Session:
    """Load --model, or the default model (with a note when it is the random stand-in)."""
    from minigpt.hub import resolve_model_dir

    model_dir = default_model_dir() if model is None else resolve_model_dir(model)
    session = Session(model_dir, minigpt.load(model_dir), minigpt.load_tokenizer(model_dir))
    if session.is_random_demo:
        session.notes.append(RANDOM_NOTE.format(path=model_dir))
    return session


def print_notes(session: Session, err: TextIO) -> None:
    """The notes gathered so far. Printed only once the input is known to be good, so that a
    bad command still gets exactly one line on stderr."""
    for note in session.notes:
        print(note, file=err)
    session.notes.clear()


class StreamingLogits:
    """Wraps next_token_logits to print each token as soon as the decoder has chosen it.

    Greedy search and sampling with one sequence ask, at every step, for the logits of the
    prompt plus every token chosen so far; so each call shows us the token chosen at the step
    before. `finish` prints what no later call revealed (the last token). A StreamDecoder
    holds back an incomplete UTF-8 character until the token that completes it arrives.
    """

    def __init__(
        self, inner: Callable, prompt_length: int, tokenizer, out: TextIO, eos: int | None = None
    ) -> None:
        self.inner = inner
        self.printed = prompt_length  # tokens of the sequence already shown
        self.stream = tokenizer.stream_decoder()
        self.out = out
        self.eos = eos  # ends the text; never shown as "<|endoftext|>"
        # The decoders check this to refuse a run longer than the model's context.
        self.context_length = getattr(inner, "context_length", None)

    def __call__(self, sequences: list[list[int]]) -> np.ndarray:
        if len(sequences) == 1:
            self.show(sequences[0])
        return self.inner(sequences)

    def show(self, ids: list[int]) -> None:
        for token in ids[self.printed :]:
            if token != self.eos:
                self.out.write(self.stream.push(token))
        self.printed = max(self.printed, len(ids))
        self.out.flush()

    def finish(self, ids: list[int]) -> None:
        self.show(ids)
        self.out.write(self.stream.finish() + "\n")
        self.out.flush()


class CountingLogits:
    """Wraps next_token_logits to count the sequences sent to the model ("expansions")."""

    def __init__(self, inner: Callable) -> None:
        self.inner = inner
        self.expansions = 0
        self.context_length = getattr(inner, "context_length", None)

    def __call__(self, sequences: list[list[int]]) -> np.ndarray:
        self.expansions += len(sequences)
        return self.inner(sequences)


def check_writable(path: str | None, what: str) -> None:
    """Fail before any work if an output file could not be written."""
    if path is None:
        return
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise MiniGPTError(f"{what} {path} is a directory; give a file name")
    if not parent.is_dir():
        raise MiniGPTError(f"{what} {path}: directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise MiniGPTError(f"{what} {path} is not writable; choose another path")


def jsonable(value):
    """Dataclasses, tuples and floats made JSON-safe (a -inf log-prob becomes null)."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def visible_text(ids: list[int], session: Session) -> str:
    """The text of `ids` without the end-of-text token, as HF's decode(skip_special_tokens=True)
    shows it: a sequence that stopped at EOS ends there, and the marker is not text."""
    eos = session.tokenizer.eos_token_id
    return session.tokenizer.decode([t for t in ids if t != eos])


def finish_reason(h: Hypothesis, request: Request) -> str:
    """ "eos" if the sequence ended with the EOS token, else "length" (it ran out of tokens)."""
    ended = request.eos_token_id is not None and h.new_ids[-1:] == [request.eos_token_id]
    return "eos" if ended else "length"


class LineTracker:
    """Wraps stdout and remembers whether the last thing written ended a line, so that a
    Ctrl-C in the middle of streamed text can start a fresh line for the shell prompt."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner
        self.mid_line = False

    def write(self, text: str) -> int:
        if text:
            self.mid_line = not text.endswith("\n")
        return self.inner.write(text)

    def flush(self) -> None:
        self.inner.flush()


# The decoders' parameters as the CLI spells them: their errors say "top_p", the user typed
# "--top-p". (`max_new_tokens` and `eos_token_id` are checked by the decoders too.)
DECODER_PARAMETERS = (*APPLIES_TO, "max_new_tokens", "eos_token_id", "branching")


def flag_names(message: str) -> str:
    """A decoder's error message with its keyword names replaced by the CLI's flags.

    >>> flag_names("top_p must be a number in (0, 1], got 2.0")
    '--top-p must be a number in (0, 1], got 2.0'
    """
    pattern = r"\b(" + "|".join(DECODER_PARAMETERS) + r")\b"
    flag = {"branching": "num_beams"}  # the tree's children per node is --num-beams
    return re.sub(pattern, lambda m: "--" + flag.get(m[1], m[1]).replace("_", "-"), message)


@contextlib.contextmanager
def named_as_flags():
    """Turn a decoder's ValueError into a MiniGPTError that names the CLI's flags."""
    try:
        yield
    except MiniGPTError:
        raise  # minigpt's own messages already speak the user's language
    except ValueError as e:
        raise MiniGPTError(flag_names(one_line(e))) from None


# =================================================================================== generate


@dataclass
class Request:
    """The checked generate options: every strategy-specific value resolved."""

    strategy: str
    prompt: list[int]
    max_new_tokens: int
    eos_token_id: int | None
    options: dict  # the decoder's keyword arguments beyond these
    seed: int | None = None


def check_applicable(args: argparse.Namespace) -> None:
    """An option given for a strategy it does not apply to is an error naming both."""
    for name, strategies in APPLIES_TO.items():
        if getattr(args, name) is not None and args.strategy not in strategies:
            flag = "--" + name.replace("_", "-")
            raise MiniGPTError(
                f"{flag} does not apply to --strategy {args.strategy}; it is for "
                f"--strategy {' or '.join(strategies)}"
            )


def read_prompt(args: argparse.Namespace, session: Session) -> list[int]:
    """The prompt's token ids, from PROMPT or --prompt-ids (exactly one of them)."""
    if args.prompt is None and args.prompt_ids is None:
        raise MiniGPTError("no prompt: give PROMPT text or --prompt-ids")
    if args.prompt is not None and args.prompt_ids is not None:
        raise MiniGPTError("give the prompt as PROMPT text or as --prompt-ids, not both")
    if args.prompt_ids is not None:
        vocab = session.model.config.vocab_size
        bad = [t for t in args.prompt_ids if t >= vocab]
        if bad:
            raise MiniGPTError(
                f"--prompt-ids: token id {bad[0]} is outside the model's vocabulary [0, {vocab})"
            )
        return list(args.prompt_ids)
    ids = session.tokenizer.encode(args.prompt)
    if not ids:
        raise MiniGPTError("the prompt is empty: give some text to continue")
    return ids


def resolve_eos(args: argparse.Namespace, session: Session) -> int | None:
    """--eos-token-id, defaulting to the model's EOS; checked against the vocabulary."""
    eos = args.eos_token_id
    if eos is MODEL_EOS:
        eos = session.model.config.eos_token_id
    vocab = session.model.config.vocab_size
    if eos is not None and eos >= vocab:
        raise MiniGPTError(f"--eos-token-id {eos} is outside the model's vocabulary [0, {vocab})")
    return eos


def check_context(prompt: list[int], max_new_tokens: int, session: Session) -> None:
    """The prompt and everything generated must fit in the model's context window."""
    if max_new_tokens < 1:
        raise MiniGPTError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    context = session.model.config.n_positions
    if len(prompt) + max_new_tokens > context:
        raise MiniGPTError(
            f"the prompt ({len(prompt)} tokens) + --max-new-tokens {max_new_tokens} exceeds "
            f"the model's context of {context} tokens; shorten one of them"
        )


def check_tree_size(branching: int, depth: int) -> None:
    nodes = sum(branching**level for level in range(1, depth + 1)) if branching > 0 else 0
    if nodes > MAX_TREE_NODES:
        raise MiniGPTError(
            f"the exhaustive tree with {branching} children per node and depth {depth} has "
            f"{nodes} nodes (limit {MAX_TREE_NODES}); lower --num-beams or --max-new-tokens"
        )


def build_request(args: argparse.Namespace, session: Session) -> Request:
    """Check the options against the strategy and resolve their defaults."""
    check_applicable(args)
    strategy = args.strategy
    if strategy == "sample" and args.temperature == 0:
        # HF refuses T = 0; its limit T -> 0 is the argmax, so we run greedy and say so.
        if args.num_return_sequences not in (None, 1):
            raise MiniGPTError("--temperature 0 is greedy decoding: it has only one sequence")
        session.notes.append("note: --temperature 0 means greedy decoding; running it")
        strategy = "greedy"
    if strategy == "beam" and args.num_beams == 1:
        strategy = one_beam_is_greedy(args, session)
    prompt = read_prompt(args, session)
    default_depth = TREE_DEFAULT_DEPTH if strategy == "tree" else DEFAULT_MAX_NEW_TOKENS
    max_new_tokens = args.max_new_tokens if args.max_new_tokens is not None else default_depth
    check_context(prompt, max_new_tokens, session)
    request = Request(strategy, prompt, max_new_tokens, resolve_eos(args, session), {})
    request.options = decoder_options(args, strategy)
    if strategy == "tree":
        check_tree_size(request.options["branching"], max_new_tokens)
        leaves = request.options["branching"] ** max_new_tokens
        if request.options["num_return_sequences"] > leaves:
            raise MiniGPTError(f"--num-return-sequences must be at most the tree's {leaves} leaves")
    if strategy == "sample":
        if args.seed is not None and args.seed < 0:
            raise MiniGPTError(f"--seed must be a non-negative integer, got {args.seed}")
        request.seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
        if args.seed is None:
            session.notes.append(
                f"note: seed {request.seed} (pass --seed {request.seed} to repeat)"
            )
    return request


def one_beam_is_greedy(args: argparse.Namespace, session: Session) -> str:
    """HF's generate(num_beams=1) is greedy search: with one beam it never enters its beam
    search, so length_penalty and early_stopping change nothing. We do the same, and say so.

    (`decoding.beam_search(num_beams=1)` stays the textbook one-beam search: the same tokens
    unless EOS is involved, since a finished hypothesis then still competes with the beam.)
    """
    n = at_least_one("--num-return-sequences", args.num_return_sequences)
    if n > 1:
        raise MiniGPTError(f"--num-return-sequences ({n}) must be <= --num-beams (1)")
    with named_as_flags():  # checked as beam search would, though greedy ignores them
        length_penalty = 1.0 if args.length_penalty is None else args.length_penalty
        early_stopping = False if args.early_stopping is None else args.early_stopping
        check_beam_params(1, 1, length_penalty, early_stopping)
    session.notes.append(
        "note: --num-beams 1 runs greedy search, as HF generate(num_beams=1) does "
        "(--length-penalty and --early-stopping change nothing there)"
    )
    args.num_beams = args.length_penalty = args.early_stopping = None  # greedy takes none
    args.num_return_sequences = None
    return "greedy"


def decoder_options(args: argparse.Namespace, strategy: str) -> dict:
    """The keyword arguments the chosen decoder takes, from the options given."""
    n = at_least_one("--num-return-sequences", args.num_return_sequences)
    processors = {
        "repetition_penalty": args.repetition_penalty,
        "no_repeat_ngram_size": args.no_repeat_ngram_size,
    }
    if strategy in ("greedy", "sample", "beam"):
        with named_as_flags():
            Processors(**processors)  # a bad value fails here, before any note or output
    if strategy == "greedy":
        return processors
    if strategy == "sample":
        warpers = {name: getattr(args, name) for name in WARPERS if getattr(args, name) is not None}
        with named_as_flags():
            Warpers(**warpers)
        return {**processors, **warpers, "num_return_sequences": n}
    beams = at_least_one("--num-beams", args.num_beams, DEFAULT_NUM_BEAMS[strategy])
    if strategy == "tree":
        return {"branching": beams, "num_return_sequences": n}
    options = {
        "num_beams": beams,
        "num_return_sequences": n,
        "length_penalty": 1.0 if args.length_penalty is None else args.length_penalty,
        "early_stopping": False if args.early_stopping is None else args.early_stopping,
    }
    with named_as_flags():
        check_beam_params(*options.values())
    return {**processors, **options}


def at_least_one(flag: str, value: int | None, default: int = 1) -> int:
    """A count option (default if not given); 0 or less is a one-line error."""
    if value is None:
        return default
    if value < 1:
        raise MiniGPTError(f"{flag} must be at least 1, got {value}")
    return value


def run_decoder(request: Request, next_token_logits: Callable, want_trace: bool):
    """Run the decoder: (hypotheses, best first or in draw order; its trace or tree, or None)."""
    common = {"max_new_tokens": request.max_new_tokens, "eos_token_id": request.eos_token_id}
    prompt, options = request.prompt, dict(request.options)
    if request.strategy == "tree":
        n = options.pop("num_return_sequences")
        tree = exhaustive_tree_search(
            next_token_logits, prompt, branching=options["branching"],
            depth=request.max_new_tokens, eos_token_id=request.eos_token_id,
        )  # fmt: skip
        return best_leaves(tree, n), tree
    if request.strategy == "greedy":
        decoded = greedy_search(next_token_logits, prompt, **common, **options, trace=want_trace)
    elif request.strategy == "sample":
        rng = np.random.default_rng(request.seed)
        decoded = sample(next_token_logits, prompt, rng=rng, **common, **options, trace=want_trace)
    else:
        decoded = beam_search(next_token_logits, prompt, **common, **options, trace=want_trace)
    return decoded[0].hypotheses, decoded[0].trace


def best_leaves(tree: TreeSearchResult, n: int) -> list[Hypothesis]:
    """The tree's n best leaves by the post's score (ties: breadth-first order), best first."""
    if not 1 <= n <= len(tree.leaves):
        raise MiniGPTError(
            f"--num-return-sequences must be between 1 and the tree's {len(tree.leaves)} leaves"
        )
    leaves = sorted(tree.leaves, key=lambda node: -node.score)[:n]  # sorted() is stable
    return [Hypothesis(leaf.ids, len(tree.prompt), leaf.logprob) for leaf in leaves]


def generate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`minigpt generate`: decode, print (streamed, as text or as JSON), write trace and tree."""
    check_writable(args.trace, "--trace")
    check_writable(args.tree, "--tree")
    if args.tree:
        check_picture_path(args.tree)
    session = open_session(args.model)
    request = build_request(args, session)
    print_notes(session, err)
    adapter = minigpt.NextTokenLogits(session.model)
    want_trace = bool(args.trace or args.tree)
    stream = None
    if not args.json and request.strategy in ("greedy", "sample"):
        if request.options.get("num_return_sequences", 1) == 1:
            out.write(session.tokenizer.decode(request.prompt))
            stream = StreamingLogits(
                adapter, len(request.prompt), session.tokenizer, out, request.eos_token_id
            )
    with named_as_flags():
        hypotheses, trace = run_decoder(request, stream or adapter, want_trace)
    if stream:
        stream.finish(hypotheses[0].ids)
        if finish_reason(hypotheses[0], request) == "eos":
            print("note: the model ended the text (it generated <|endoftext|>)", file=err)
    elif args.json:
        print(json.dumps(generate_json(request, hypotheses, session), ensure_ascii=False), file=out)
    else:
        print_hypotheses(request, hypotheses, session, out)
    write_outputs(args, request, trace, session, err)
    return 0


def generate_json(request: Request, hypotheses: list[Hypothesis], session: Session) -> dict:
    """The --json object: the prompt's ids and every returned sequence."""
    sequences = [
        {
            "ids": h.ids,
            "text": visible_text(h.ids, session),
            "score": h.score if request.strategy == "beam" else None,
            "logprob": h.logprob,
            "finish_reason": finish_reason(h, request),
        }
        for h in hypotheses
    ]
    return jsonable({"prompt_ids": request.prompt, "sequences": sequences})


def print_hypotheses(
    request: Request, hypotheses: list[Hypothesis], session: Session, out: TextIO
) -> None:
    """Each sequence under a one-line header with its numbers."""
    for i, h in enumerate(hypotheses, 1):
        numbers = [f"logprob {h.logprob:.3f}"]
        if h.score is not None:
            numbers.insert(0, f"score {h.score:.3f}")
        if request.strategy == "tree":
            numbers.insert(0, f"post score {h.logprob / len(h.ids):.3f}")
        if finish_reason(h, request) == "eos":
            numbers.append("ended at <|endoftext|>")
        print(f"--- {i} of {len(hypotheses)} ({', '.join(numbers)})", file=out)
        print(visible_text(h.ids, session), file=out)


def write_outputs(args, request: Request, trace, session: Session, err: TextIO) -> None:
    """--trace as JSON, --tree as DOT (and a rendered picture when Graphviz is there)."""
    if trace is None:
        return
    if args.trace:
        tokens = sorted(token_ids_in(jsonable(trace)))
        record = {
            "strategy": request.strategy,
            "model": str(session.model_dir),
            "token_text": {t: session.tokenizer.decode([t]) for t in tokens},
            "trace": jsonable(trace),
        }
        Path(args.trace).write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    if args.tree:
        _, note = save_picture(tree_dot(trace, session.tokenizer.decode), args.tree)
        if note:
            print(f"note: {note}", file=err)


def token_ids_in(record) -> set[int]:
    """Every token id a trace mentions (the values under keys naming tokens or sequences)."""
    found: set[int] = set()
    if isinstance(record, dict):
        for key, value in record.items():
            if key in ("token", "chosen", "sequence", "ids", "prompt"):
                found |= {v for v in np.ravel(value if value is not None else []).tolist()}
            else:
                found |= token_ids_in(value)
    elif isinstance(record, list):
        for value in record:
            found |= token_ids_in(value)
    return {int(t) for t in found}


# ====================================================================================== score


def score_tokens(session: Session, text: str) -> dict:
    """Every token's log-prob given the tokens before it, and the text's perplexity.

    The first token has no context to be predicted from, so it gets no log-prob (null).
    Perplexity = exp(-mean log-prob) over the scored tokens.
    """
    ids = session.tokenizer.encode(text)
    context = session.model.config.n_positions
    if len(ids) < 2:
        raise MiniGPTError(f"score needs a text of at least 2 tokens, got {len(ids)}")
    if len(ids) > context:
        raise MiniGPTError(f"the text has {len(ids)} tokens, more than the context of {context}")
    logits = session.model.forward(ids)  # [T, V]: row t predicts token t + 1
    logp = log_softmax(logits[:-1])
    scored = [float(logp[t, ids[t + 1]]) for t in range(len(ids) - 1)]
    mean = float(np.mean(scored))
    tokens = [{"id": ids[0], "text": session.tokenizer.decode([ids[0]]), "logprob": None}]
    tokens += [
        {"id": i, "text": session.tokenizer.decode([i]), "logprob": lp}
        for i, lp in zip(ids[1:], scored)
    ]
    return {
        "ids": ids,
        "tokens": tokens,
        "sum_logprob": float(np.sum(scored)),
        "mean_logprob": mean,
        "perplexity": math.exp(-mean),
    }


def score(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`minigpt score`: a table of tokens and log-probs, then the perplexity."""
    session = open_session(args.model)
    result = score_tokens(session, args.text)
    print_notes(session, err)
    if args.json:
        print(json.dumps(jsonable(result), ensure_ascii=False), file=out)
        return 0
    from minigpt.render.dot import show_token

    print(f"{'pos':>4} {'id':>6}  {'token':<16} {'logprob':>8} {'prob':>7}", file=out)
    for pos, token in enumerate(result["tokens"]):
        lp = token["logprob"]
        numbers = "       -       -" if lp is None else f"{lp:8.3f} {math.exp(lp):7.2%}"
        print(f"{pos:>4} {token['id']:>6}  {show_token(token['text']):<16} {numbers}", file=out)
    n = len(result["ids"]) - 1
    print(
        f"perplexity {result['perplexity']:.2f} over {n} predicted tokens "
        f"(mean log-prob {result['mean_logprob']:.3f})",
        file=out,
    )
    return 0


# ======================================================================================= demo


def demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`minigpt demo`: one prompt through every strategy, with the command that repeats each."""
    session = open_session(args.model)
    print_notes(session, err)
    prompt = session.tokenizer.encode(DEMO_PROMPT)
    eos = session.model.config.eos_token_id
    config = session.model.config
    random = "  -- RANDOM weights: the text is noise" if session.is_random_demo else ""
    print(
        f"model {session.model_dir} ({config.n_layer} layers, {config.n_embd} wide, "
        f"{config.vocab_size} tokens){random}",
        file=out,
    )
    print(f"prompt: {DEMO_PROMPT!r} = {prompt}\n", file=out)
    runs = [
        ("greedy search", "--strategy greedy", "greedy", {}),
        ("beam search, 3 beams", "--strategy beam --num-beams 3", "beam",
         {"num_beams": 3, "num_return_sequences": 1, "length_penalty": 1.0,
          "early_stopping": False}),
        ("top-k sampling, k=20, seed 0", "--strategy sample --top-k 20 --seed 0", "sample",
         {"top_k": 20, "num_return_sequences": 1}),
        ("nucleus sampling, p=0.9, seed 0", "--strategy sample --top-p 0.9 --seed 0", "sample",
         {"top_p": 0.9, "num_return_sequences": 1}),
    ]  # fmt: skip
    model_flag = f" --model {shlex.quote(args.model)}" if args.model else ""
    for title, flags, strategy, options in runs:
        request = Request(strategy, prompt, DEFAULT_MAX_NEW_TOKENS, eos, options, seed=0)
        hypotheses, _ = run_decoder(request, minigpt.NextTokenLogits(session.model), False)
        show_run(out, title, visible_text(hypotheses[0].new_ids, session), model_flag, flags)
    show_tree_versus_beam(session, prompt, eos, model_flag, out)
    print("more: python -m minigpt generate --help, and docs/walkthrough.md", file=out)
    return 0


def show_tree_versus_beam(session: Session, prompt: list[int], eos, model_flag, out) -> None:
    """The seed post's exhaustive tree next to real beam search, same depth, same width."""
    depth = TREE_DEFAULT_DEPTH
    counter = CountingLogits(minigpt.NextTokenLogits(session.model))
    tree = exhaustive_tree_search(counter, prompt, branching=2, depth=depth, eos_token_id=eos)
    title = f"the seed post's exhaustive tree, 2 children per node, depth {depth}"
    show_run(
        out,
        f"{title} ({counter.expansions} sequences sent to the model)",
        visible_text(tree.best.new_ids, session),
        model_flag,
        "--strategy tree --num-beams 2",
    )
    counter = CountingLogits(minigpt.NextTokenLogits(session.model))
    beam = beam_search(counter, prompt, num_beams=2, max_new_tokens=depth, eos_token_id=eos)
    show_run(
        out,
        f"real beam search, 2 beams, {depth} tokens ({counter.expansions} sequences sent)",
        visible_text(beam[0].best.new_ids, session),
        model_flag,
        f"--strategy beam --num-beams 2 --max-new-tokens {depth}",
    )


def show_run(out: TextIO, title: str, continuation: str, model_flag: str, flags: str) -> None:
    print(f"{title}:", file=out)
    print(f"  {DEMO_PROMPT}{continuation}".replace("\n", "\n  "), file=out)
    print(
        f"  $ python -m minigpt generate {shlex.quote(DEMO_PROMPT)}{model_flag} {flags}\n", file=out
    )


# ======================================================================================= main


def download(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`minigpt download NAME`: the code of weights/scripts/download.py, in minigpt/download.py."""
    from minigpt import download as downloader

    return downloader.command(args, out, err)


COMMANDS = {"generate": generate, "score": score, "demo": demo, "download": download}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a MiniGPTError, ValueError or OSError becomes one stderr line."""
    args = build_parser().parse_args(argv)
    out = LineTracker(sys.stdout)
    try:
        return COMMANDS[args.command](args, out, sys.stderr)
    except (MiniGPTError, ValueError) as e:
        print(f"minigpt: error: {one_line(e)}", file=sys.stderr)
    except BrokenPipeError:  # the reader went away (`minigpt generate ... | head`): fine
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        print(f"minigpt: error: {one_line(e.strerror or e)}{where}", file=sys.stderr)
    except KeyboardInterrupt:
        if out.mid_line:  # Ctrl-C in the middle of streamed text: end its line first
            with contextlib.suppress(OSError, ValueError):
                out.write("\n")
                out.flush()
        print("minigpt: interrupted", file=sys.stderr)
        return 130
    return 1
