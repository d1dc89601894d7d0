"""The command line's words: commands, flags and their one-line help (argparse).

generate's flags are named after Hugging Face generate()'s arguments. Which strategies take a
flag comes from the strategy table (strategies.py), so the help can say it and a flag given to
the wrong strategy is refused by name.
"""

from __future__ import annotations

import argparse
import shutil

from minigpt.cli.strategies import DEFAULT_MAX_NEW_TOKENS, STRATEGIES, strategies_taking


class ModelEOS:
    """--eos-token-id's default, the model's EOS. Not a string, which argparse would parse."""

    def __repr__(self) -> str:
        return "the model's EOS"


MODEL_EOS = ModelEOS()


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


def token_ids_arg(text: str) -> list[int]:
    """Parse --suppress-tokens and the like: comma-separated token ids, e.g. 198,628."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated token ids like 198,628, got {text!r}"
        )
    return [int(p) for p in parts]


def bad_words_arg(text: str) -> list[list[int]]:
    """Parse --bad-words-ids: token-id sequences separated by ';', e.g. 464,3290;1234."""
    return [token_ids_arg(word) for word in text.split(";")]


def sequence_bias_arg(text: str) -> list[list]:
    """Parse --sequence-bias: IDS=BIAS pairs separated by ';', e.g. 464,3290=-2.5;1234=1."""
    pairs = []
    for piece in text.split(";"):
        ids, sep, bias = piece.partition("=")
        try:
            value = float(bias)
        except ValueError:
            value = None
        if not sep or value is None:
            raise argparse.ArgumentTypeError(
                f"expected IDS=BIAS pairs like 464,3290=-2.5;1234=1, got {text!r}"
            )
        pairs.append([token_ids_arg(ids), value])
    return pairs


def decay_arg(text: str) -> tuple[int, float]:
    """Parse --exponential-decay-length-penalty: START,FACTOR, e.g. 10,1.5."""
    start, sep, factor = text.partition(",")
    try:
        return int(start), float(factor)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected START,FACTOR like 10,1.5, got {text!r}"
        ) from None


def early_stopping_arg(text: str) -> bool | str:
    """Parse --early-stopping: true, false or never (HF's True, False, "never")."""
    values = {"true": True, "false": False, "never": "never"}
    if text.lower() not in values:
        raise argparse.ArgumentTypeError(f"expected true, false or never, got {text!r}")
    return values[text.lower()]


def strategy_help() -> str:
    return " | ".join(f"{s.name} ({s.label})" if s.label else s.name for s in STRATEGIES.values())


def max_new_tokens_help() -> str:
    others = [f", {s.name}: {s.max_new_tokens}" for s in STRATEGIES.values()
              if s.max_new_tokens != DEFAULT_MAX_NEW_TOKENS]  # fmt: skip
    return f"generate at most N tokens (default {DEFAULT_MAX_NEW_TOKENS}{''.join(others)})"


def common_options() -> list[tuple[str, dict, str]]:
    """Options every strategy takes: (flag, argparse settings, help). Made when the parser is,
    from the table as it is then."""
    return [
        ("--prompt-ids", {"type": prompt_ids_arg, "metavar": "IDS"},
         "the prompt as token ids instead of text, e.g. 40,423,257,4320"),
        ("--strategy", {"choices": tuple(STRATEGIES), "default": "greedy"}, strategy_help()),
        ("--max-new-tokens", {"type": int, "metavar": "N"}, max_new_tokens_help()),
        ("--eos-token-id", {"type": eos_arg, "metavar": "ID|none", "default": MODEL_EOS},
         "stop once this token is generated; none = never (default: the model's EOS)"),
    ]  # fmt: skip


# Options of some strategies: (flag, argparse settings, help). Which strategies take each comes
# from the table and is named in front of the help; a strategy whose entry gives the option a
# meaning of its own (Strategy.option_help) gets its own piece of the line.
STRATEGY_OPTIONS = [
    ("--num-beams", {"type": int, "metavar": "K"}, "beams kept (default 4)"),
    ("--length-penalty", {"type": float, "metavar": "X"},
     "rank by sum of log-probs / length**X (default 1; > 0: longer)"),
    ("--early-stopping", {"type": early_stopping_arg, "metavar": "{true,false,never}"},
     "true: at K finished, false (default): HF's bound, never: exact"),
    ("--num-return-sequences", {"type": int, "metavar": "N"}, "N best hypotheses"),
    ("--temperature", {"type": float, "metavar": "T"},
     "divide the logits by T (< 1 sharper; for sample 0 is greedy)"),
    ("--top-k", {"type": int, "metavar": "K"}, "keep only the K most likely tokens"),
    ("--top-p", {"type": float, "metavar": "P"},
     "keep the top tokens until their mass reaches P (nucleus)"),
    ("--min-p", {"type": float, "metavar": "P"},
     "keep tokens at least P times as likely as the top one"),
    ("--typical-p", {"type": float, "metavar": "P"},
     "keep tokens of surprise nearest the entropy, up to mass P"),
    ("--top-h", {"type": float, "metavar": "H"},
     "keep the likeliest while their entropy stays <= H times all"),
    ("--epsilon-cutoff", {"type": float, "metavar": "E"}, "keep tokens of probability at least E"),
    ("--eta-cutoff", {"type": float, "metavar": "E"},
     "keep tokens above min(E, sqrt(E) exp(-entropy))"),
    ("--repetition-penalty", {"type": float, "metavar": "R"},
     "R > 1 makes tokens already in the text rarer"),
    ("--no-repeat-ngram-size", {"type": int, "metavar": "N"},
     "never generate an N-gram the text already holds"),
    ("--min-new-tokens", {"type": int, "metavar": "N"}, "no EOS before N new tokens"),
    ("--bad-words-ids", {"type": bad_words_arg, "metavar": "IDS[;IDS]"},
     "never generate these id sequences, e.g. 5,6;7"),
    ("--sequence-bias", {"type": sequence_bias_arg, "metavar": "IDS=B[;IDS=B]"},
     "add B to the score of the token completing IDS"),
    ("--suppress-tokens", {"type": token_ids_arg, "metavar": "IDS"}, "never generate these ids"),
    ("--begin-suppress-tokens", {"type": token_ids_arg, "metavar": "IDS"},
     "never start the continuation with these ids"),
    ("--exponential-decay-length-penalty", {"type": decay_arg, "metavar": "START,F"},
     "after START new tokens, raise EOS by F**n"),
    ("--renormalize-logits", {"action": "store_true", "default": None},
     "log-softmax the scores after all the rest"),
    ("--stop-strings", {"action": "append", "metavar": "S"},
     "stop once the text ends in S (repeatable)"),
    ("--max-time", {"type": float, "metavar": "SECONDS"}, "stop after SECONDS of generating"),
    ("--seed", {"type": int, "metavar": "S"},
     "the random seed, same seed same text (default: a fresh one)"),
    ("--assistant-model", {"metavar": "DIR|NAME"},
     "a draft model (same vocabulary) guesses tokens, the model checks"),
    ("--num-assistant-tokens", {"type": int, "metavar": "N"},
     "tokens the draft model guesses per round (default 20)"),
    ("--num-assistant-tokens-schedule", {"choices": ("constant", "heuristic"),
                                         "metavar": "{constant,heuristic}"},
     "keep N (default), or +2 after a round all accepted, else -1"),
    ("--assistant-confidence-threshold", {"type": float, "metavar": "C"},
     "end a round after a guess the draft gives p < C (default 0.4)"),
    ("--prompt-lookup-num-tokens", {"type": int, "metavar": "N"},
     "guess N tokens by finding the last tokens earlier in the text"),
    ("--max-matching-ngram-size", {"type": int, "metavar": "N"},
     "prompt lookup matches at most the last N tokens (default 2)"),
]  # fmt: skip

OUTPUT_OPTIONS = [
    ("--json", {"action": "store_true"},
     "print JSON: prompt_ids, sequences [{ids, text, scores, finish_reason}] (README)"),
    ("--trace", {"metavar": "FILE"}, "write what every step saw and chose to FILE, as JSON"),
    ("--tree", {"metavar": "FILE"},
     "draw the search tree to FILE: .dot, or .svg/.png/.pdf rendered by Graphviz"),
]  # fmt: skip


def dest(flag: str) -> str:
    """--top-p -> top_p, the name argparse, the table and the decoders use."""
    return flag[2:].replace("-", "_")


def flag(name: str) -> str:
    """top_p -> --top-p."""
    return "--" + name.replace("_", "-")


def strategy_option_help(option_flag: str, text: str) -> str:
    """'greedy/beam: TEXT', or 'beam/beam-sample: TEXT; tree: ITS OWN' where an entry has its
    own words (strategies with the same words share one piece, in the table's order)."""
    name = dest(option_flag)
    pieces: dict[str, list[str]] = {}  # words -> the strategies they are for
    for s in strategies_taking(name):
        pieces.setdefault(STRATEGIES[s].option_help.get(name, text), []).append(s)
    return "; ".join(f"{'/'.join(names)}: {words}" for words, names in pieces.items())


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="DIR|NAME",
        help="a checkpoint directory or a name (gpt2, ...); default: the bundled minigpt-tiny",
    )


def add_generate_options(parser: argparse.ArgumentParser) -> None:
    """PROMPT, --model, the common options, each strategy option, the outputs."""
    parser.add_argument("prompt", nargs="?", metavar="PROMPT", help="the text to continue")
    add_model_option(parser)
    for option_flag, settings, text in common_options():
        parser.add_argument(option_flag, help=text, **settings)
    for option_flag, settings, text in STRATEGY_OPTIONS:
        parser.add_argument(option_flag, help=strategy_option_help(option_flag, text), **settings)
    for option_flag, settings, text in OUTPUT_OPTIONS:
        parser.add_argument(option_flag, help=text, **settings)


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
    from minigpt.cli.explore import add_explore_arguments

    add_explore_arguments(commands.add_parser("explore", help="watch the decoders step, in a page"))
    return parser
