"""The explorer's JSON API: a request is the `minigpt generate` command line it stands for.

    POST /api/run {"strategy": "beam", "prompt": "Once upon a time", "max_new_tokens": 8,
                   "options": {"num_beams": 3, "early_stopping": "never"}}

A request's options are HF's argument names, exactly the strategy table's options. Each value
goes through the same argparse `type` as its flag (`--num-beams` parses with int, so 3 is
taken and 3.5 is not), then `minigpt generate`'s own build_request resolves the defaults, the
seed and HF's redirects, and the strategy's run function decodes with trace=True. So a request
means what the same flags mean, and a bad one fails with the same one-line message, naming the
flag. The answer holds what `--json` prints and what `--trace FILE` writes, side by side.

Nothing here decodes: the page draws the trace. The one number computed here is where each
`early_stopping` mode would stop a beam search, and that is beam.py's own `why_stop` asked
about every recorded step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import threading

import minigpt
from decoding.beam import BeamRules, BeamState, why_stop
from decoding.results import Trace
from minigpt.cli.generate import Request, build_request, generate_json, token_ids_in
from minigpt.cli.options import MODEL_EOS, STRATEGY_OPTIONS, build_parser, dest, eos_arg, flag
from minigpt.cli.session import Session, jsonable, named_as_flags
from minigpt.cli.strategies import STRATEGIES, Strategy
from minigpt.errors import MiniGPTError

MAX_BODY_BYTES = 64 * 1024  # a prompt of a few pages; the server refuses larger bodies unread
MAX_PROMPT_TOKENS = 512
# How far one request may go: a run answers within seconds and a page can draw it. Options of
# strategies added later are bounded by their decoder and the tree's own node limit.
LIMITS = {
    "max_new_tokens": 200,
    "num_beams": 16,
    "num_return_sequences": 16,
    "num_assistant_tokens": 64,
    "prompt_lookup_num_tokens": 64,
    "max_matching_ngram_size": 16,
}
REQUEST_KEYS = {"strategy", "prompt", "prompt_ids", "max_new_tokens", "eos_token_id", "options",
                "run_id"}  # fmt: skip
STEPS_KEYS = {"run_id", "upto", "since"}  # POST /api/steps
EARLY_STOPPING_MODES = {"true": True, "false": False, "never": "never"}


class BadRequest(MiniGPTError):
    """A request the explorer refuses: HTTP 400 with this one-line message."""


class Cancelled(Exception):
    """The page cancelled the run (not a ValueError: no decoder may mistake it for bad input)."""


# ------------------------------------------------------------------------- what can be asked


def option_settings() -> dict[str, tuple[dict, str]]:
    """Each strategy option's argparse settings and help, by its HF name (top_p)."""
    return {dest(option_flag): (settings, text) for option_flag, settings, text in STRATEGY_OPTIONS}


def option_kind(settings: dict) -> dict:
    """How the page asks for a value: a number field, a choice, or free text.

    >>> option_kind({"type": int})
    {'kind': 'int'}
    >>> option_kind({"choices": ("a", "b")})
    {'kind': 'choice', 'choices': ['a', 'b']}
    >>> option_kind({"action": "store_true"}), option_kind({"action": "append"})
    ({'kind': 'flag'}, {'kind': 'list'})
    """
    if settings.get("action") == "store_true":
        return {"kind": "flag"}  # a checkbox: the flag given or not (--renormalize-logits)
    if settings.get("action") == "append":
        return {"kind": "list"}  # the flag repeated, once per value (--stop-strings S)
    convert = settings.get("type")
    if "choices" in settings:
        return {"kind": "choice", "choices": list(settings["choices"])}
    if convert is int or convert is float:
        return {"kind": convert.__name__}
    if convert is not None and convert.__name__ == "early_stopping_arg":
        return {"kind": "choice", "choices": list(EARLY_STOPPING_MODES)}
    return {"kind": "text"}


def strategy_json(strategy: Strategy) -> dict:
    """One strategy as the page shows it: its options, their defaults, kinds and help."""
    settings = option_settings()
    options = []
    for name, default in strategy.options.items():
        given, text = settings.get(name, ({}, ""))
        options.append({"name": name, "flag": flag(name), "default": jsonable(default),
                        "help": strategy.option_help.get(name, text), **option_kind(given),
                        "limit": LIMITS.get(name)})  # fmt: skip
    return {"name": strategy.name, "label": strategy.label, "options": options,
            "max_new_tokens": strategy.max_new_tokens, "score_name": strategy.score_name,
            "score_help": strategy.score_help}  # fmt: skip


def strategies_json(session: Session) -> dict:
    """GET /api/strategies: the table as it is now (a strategy added later shows up)."""
    return {
        "model": str(session.model_dir),
        "eos_token_id": session.model.config.eos_token_id,
        "vocab_size": session.model.config.vocab_size,
        "max_new_tokens_limit": LIMITS["max_new_tokens"],
        "strategies": [strategy_json(s) for s in STRATEGIES.values()],
    }


# --------------------------------------------------------------------- a request as flags


def read_json(body: bytes, keys: set[str] = REQUEST_KEYS) -> dict:
    """The request body as a JSON object of `keys`, or a BadRequest saying what is wrong."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"the request body is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadRequest('the request body must be a JSON object, e.g. {"prompt": "Hi"}')
    unknown = sorted(set(data) - keys)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; the fields are {sorted(keys)}")
    return data


def flag_text(name: str, value: object) -> str:
    """A JSON value written as the user would type it after the flag.

    >>> flag_text("early_stopping", True), flag_text("top_p", 0.9), flag_text("num_beams", 4)
    ('true', '0.9', '4')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise BadRequest(f"{flag(name)} must be a number or a string, got {json.dumps(value)}")


def option_value(name: str, value: object):
    """One option's value, parsed as argparse parses its flag (None: not given)."""
    known = option_settings()
    if name not in known:
        raise BadRequest(f"unknown option {name!r}; the options are {sorted(known)}")
    if value is None:
        return None
    settings, _ = known[name]
    if settings.get("action") == "store_true":  # given as true, or not given (false)
        if not isinstance(value, bool):
            raise BadRequest(f"{flag(name)} is given or not: send true or false, got "
                             f"{json.dumps(value)}")  # fmt: skip
        return True if value else None
    if settings.get("action") == "append":  # one value per repetition of the flag
        values = [value] if isinstance(value, str) else value
        if not (isinstance(values, list) and values and all(isinstance(v, str) for v in values)):
            raise BadRequest(f"{flag(name)} takes a string or a list of strings, got "
                             f"{json.dumps(value)}")  # fmt: skip
        return list(values)
    text = flag_text(name, value)
    convert = settings.get("type", str)
    try:
        parsed = convert(text)
    except argparse.ArgumentTypeError as e:  # the flag's own parser says what it expects
        raise BadRequest(f"{flag(name)}: {e}") from None
    except ValueError:  # int() or float(), as argparse says it
        raise BadRequest(f"{flag(name)}: invalid {convert.__name__} value: {text!r}") from None
    choices = settings.get("choices")
    if choices and parsed not in choices:
        raise BadRequest(f"{flag(name)} must be one of {', '.join(choices)}, got {text!r}")
    return parsed


def int_field(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{flag(name)} must be an integer, got {json.dumps(value)}")
    return value


def prompt_ids_field(value: object) -> list[int]:
    ok = isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value
    )
    if not ok or not value:
        raise BadRequest("--prompt-ids must be a non-empty list of token ids, e.g. [40, 423]")
    return value


def generate_args(data: dict) -> argparse.Namespace:
    """The `minigpt generate` command line a request stands for, as argparse would give it."""
    args = build_parser().parse_args(["generate"])  # every flag at its default
    strategy = data.get("strategy", "greedy")
    if strategy not in STRATEGIES:
        raise BadRequest(
            f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)} (--strategy)"
        )
    args.strategy = strategy
    if data.get("prompt") is not None and not isinstance(data["prompt"], str):
        raise BadRequest("the prompt must be a string")
    args.prompt = data.get("prompt")
    if data.get("prompt_ids") is not None:
        args.prompt_ids = prompt_ids_field(data["prompt_ids"])
    if data.get("max_new_tokens") is not None:
        args.max_new_tokens = int_field("max_new_tokens", data["max_new_tokens"])
    if "eos_token_id" in data:  # null: never stop early, as --eos-token-id none
        eos = data["eos_token_id"]
        args.eos_token_id = None if eos is None else eos_arg(str(int_field("eos_token_id", eos)))
    else:
        args.eos_token_id = MODEL_EOS
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest('"options" must be a JSON object of HF-named options')
    for name, value in options.items():
        setattr(args, name, option_value(name, value))
    return args


def check_limits(run) -> None:
    """The explorer's own bounds, on the resolved run (so a default counts too)."""
    values = {**run.options, "max_new_tokens": run.max_new_tokens}
    for name, limit in LIMITS.items():
        value = values.get(name)
        if isinstance(value, int) and value > limit:
            raise BadRequest(f"{flag(name)} {value} is over the explorer's limit of {limit}")
    if len(run.prompt) > MAX_PROMPT_TOKENS:
        raise BadRequest(
            f"the prompt has {len(run.prompt)} tokens, over the explorer's limit of "
            f"{MAX_PROMPT_TOKENS}; shorten it"
        )


def option_named(message: str) -> str | None:
    """The HF name of the first flag a message names, for the page to point at.

    >>> option_named("--top-p must be a number in (0, 1], got 2.0")
    'top_p'
    """
    found = re.search(r"--([a-z][a-z-]*)", message)
    return dest(found[0]) if found else None


# ------------------------------------------------------------------------------ the run


class CancellableLogits:
    """next_token_logits that raises Cancelled at the next model call once `cancelled` is
    set, so a long run stops within one forward pass. It shows the decoders what the model
    has (its context length, vocabulary and one-pass check of drafted tokens), nothing more.
    `before_call()`, if given, runs first at every model call (runs.py reads the live trace
    there: a decoder asks for the next step's logits only after recording the last step)."""

    def __init__(self, inner, cancelled: threading.Event, before_call=None) -> None:
        self.inner, self.cancelled, self.before_call = inner, cancelled, before_call
        self.context_length = getattr(inner, "context_length", None)
        self.vocab_size = getattr(inner, "vocab_size", None)
        if hasattr(inner, "logits_at_positions"):
            self.logits_at_positions = self.at_positions

    def check(self) -> None:
        if self.before_call is not None:
            self.before_call()
        if self.cancelled.is_set():
            raise Cancelled("the run was cancelled")

    def __call__(self, sequences):
        self.check()
        return self.inner(sequences)

    def at_positions(self, sequence, n):
        self.check()
        return self.inner.logits_at_positions(sequence, n)


@dataclasses.dataclass
class Prepared:
    """A request resolved into the run it stands for, before any decoding: its own session
    (for its notes) and `minigpt generate`'s Request."""

    session: Session
    request: Request


def prepare(session: Session, data: dict) -> Prepared:
    """The request checked and resolved: a bad one fails here, before any model call."""
    session = dataclasses.replace(session, notes=[])  # this request's notes only
    request = build_request(generate_args(data), session)
    check_limits(request.run)
    return Prepared(session, request)


def decode(prepared: Prepared, logits, trace: object = True) -> tuple[list, object]:
    """(hypotheses, trace) of the strategy's run; `trace` is True or a recorder.Watch."""
    prepared.request.run.trace = trace
    with named_as_flags():  # the decoder checks its options; its errors get the flag names
        return prepared.request.strategy.run(logits, prepared.request.run)


def run_request(session: Session, data: dict, cancelled: threading.Event) -> dict:
    """A whole run at once: decode the request with trace=True; what --json prints and what
    --trace writes, plus the resolved request, the notes, and the early-stopping marks."""
    prepared = prepare(session, data)
    logits = CancellableLogits(minigpt.NextTokenLogits(session.model), cancelled)
    return answer_json(prepared, *decode(prepared, logits))


def answer_json(
    prepared: Prepared,
    hypotheses: list,
    trace,
    trace_json: dict | None = None,
    tokens: set[int] | None = None,
) -> dict:
    """The answer for a run that has ended (see the module's docstring). trace_json, tokens:
    the trace's to_json() and the token ids it mentions, when known already (runs.py has
    them step by step; a long beam search's take seconds to make again)."""
    request, session = prepared.request, prepared.session
    trace_json = trace.to_json() if trace_json is None else trace_json
    tokens = token_ids_in(trace_json) if tokens is None else tokens
    shown = tokens | {t for h in hypotheses for t in h.ids}
    answer = generate_json(request, hypotheses, session)
    answer |= {
        "strategy": request.strategy.name,  # after HF's redirects (temperature 0 -> greedy)
        "model": str(session.model_dir),
        "request": resolved(request.run),
        "notes": list(session.notes),
        "token_text": token_text(session, shown),
        "trace": trace_json,
        "early_stopping_steps": early_stopping_steps(trace, request.run),
    }
    return answer


def partial_json(prepared: Prepared, trace_json: dict, marks: dict | None) -> dict:
    """The answer for a run still going: the same fields but the final ones (`sequences`,
    `assistant`), and a trace of completed steps (and rounds); `marks`: the early-stopping
    marks reached so far (null: not yet)."""
    request, session = prepared.request, prepared.session
    shown = token_ids_in(trace_json) | set(request.run.prompt)
    return {
        "prompt_ids": request.run.prompt,
        "strategy": request.strategy.name,
        "model": str(session.model_dir),
        "request": resolved(request.run),
        "notes": list(session.notes),
        "token_text": token_text(session, shown),
        "trace": trace_json,
        "early_stopping_steps": marks,
    }


def token_text(session: Session, tokens: set[int]) -> dict:
    return {str(t): session.tokenizer.decode([t]) for t in sorted(tokens)}


def resolved(run) -> dict:
    """The request as it ran: every option given or defaulted (and the seed drawn)."""
    return jsonable({"options": run.options, "eos_token_id": run.eos_token_id,
                     "max_new_tokens": run.max_new_tokens})  # fmt: skip


def early_stopping_steps(trace, run) -> dict | None:
    """For a beam search: the step after which each early_stopping mode ends the search, by
    beam.py's why_stop on each recorded step (None: not within this run). The live beams and
    the pool do not depend on the mode, so one run answers for all three modes up to where
    it stopped."""
    beam_options = ("num_beams", "length_penalty", "early_stopping")
    if not isinstance(trace, Trace) or not all(name in run.options for name in beam_options):
        return None
    stops = {}
    for label, mode in EARLY_STOPPING_MODES.items():
        rules = BeamRules(run.options["num_beams"], run.max_new_tokens,
                          float(run.options["length_penalty"]), mode, run.eos_token_id)  # fmt: skip
        stops[label] = next(
            (step.number for step in trace.steps
             if why_stop(BeamState(trace.prompt, step.beams, step.finished), step.number, rules)),
            None,
        )  # fmt: skip
    return stops
