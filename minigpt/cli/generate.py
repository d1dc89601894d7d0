"""`minigpt generate`: the flags become one decoder call, its result text, JSON and pictures.

    args --build_request--> Request (a Strategy + a Run) --strategy.run--> hypotheses, trace

Everything strategy-specific comes from the table in strategies.py; this file only knows the
HF rules that pick another strategy than the one named (temperature 0, a single beam).
"""

from __future__ import annotations

import argparse
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

import minigpt
from decoding.beam import check_beam_params
from decoding.render import save_picture, tree_dot
from decoding.render.output import check_picture_path
from decoding.results import Hypothesis
from decoding.stopping import Stopping
from minigpt.cli.options import MODEL_EOS, flag
from minigpt.cli.session import (
    Session,
    check_writable,
    jsonable,
    named_as_flags,
    open_session,
    print_notes,
)
from minigpt.cli.strategies import (
    ASSISTANCE,
    PROCESSORS,
    STRATEGIES,
    Run,
    Strategy,
    strategies_taking,
)
from minigpt.errors import MiniGPTError


@dataclass
class Request:
    """What to run: the strategy's table entry and the decoder call, every option resolved."""

    strategy: Strategy
    run: Run

    def finish_reason(self, h: Hypothesis) -> str:
        """ "eos" if the sequence ended with the EOS token, "stop_string" if it ended in one of
        --stop-strings, "max_time" if --max-time cut it short, else "length" (it ran out)."""
        eos = self.run.eos_token_id
        if eos is not None and h.new_ids[-1:] == [eos]:
            return "eos"
        stops = self.run.options.get("stop_strings")
        if stops and Stopping.of(stops, self.run.token_strings).ends_with_stop_string(h.ids):
            return "stop_string"
        if self.run.options.get("max_time") and len(h.new_ids) < self.run.max_new_tokens:
            return "max_time"
        return "length"


def generate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Decode, print (streamed, as text or as JSON), write the trace and the tree."""
    check_writable(args.trace, "--trace")
    check_writable(args.tree, "--tree")
    if args.tree:
        check_picture_path(args.tree)
    session = open_session(args.model)
    request = build_request(args, session)
    request.run.trace = bool(args.trace or args.tree)
    adapter = minigpt.NextTokenLogits(session.model)
    printer = None
    if request.strategy.streams and not args.json and returns(request) == 1:
        printer = TokenPrinter(session, request.run.prompt, out, err, request.run.eos_token_id)
        request.run.on_token = printer
    with named_as_flags():  # the decoder checks its options; its errors get our flag names
        hypotheses, trace = request.strategy.run(adapter, request.run)
    print_notes(session, err)
    if printer:
        printer.finish(request.finish_reason(hypotheses[0]))
    elif args.json:
        print(json.dumps(generate_json(request, hypotheses, session), ensure_ascii=False), file=out)
    else:
        print_hypotheses(request, hypotheses, session, out)
    write_outputs(args, request, trace, session, err)
    return 0


def returns(request: Request) -> int:
    return request.run.options.get("num_return_sequences", 1)


# ----------------------------------------------------------------------------- the request


def build_request(args: argparse.Namespace, session: Session) -> Request:
    """The table entry of --strategy, its options (given or defaulted), the prompt and EOS."""
    strategy = STRATEGIES[args.strategy]
    check_applicable(args, strategy)
    given = {name: getattr(args, name) for name in strategy.options}
    options = {name: default if given[name] is None else given[name]
               for name, default in strategy.options.items()}  # fmt: skip
    strategy, options = hf_redirects(strategy, options, given, session)
    if "seed" in options:
        options["seed"] = check_seed(options["seed"], session)
    max_new_tokens = strategy.max_new_tokens if args.max_new_tokens is None else args.max_new_tokens
    run = Run(read_prompt(args, session), max_new_tokens, resolve_eos(args, session), options)
    if options.get("stop_strings"):  # the text of every token, as HF's stop-string rule reads it
        tokenizer = session.tokenizer
        run.token_strings = [tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size)]
    return Request(strategy, run)


def check_applicable(args: argparse.Namespace, strategy: Strategy) -> None:
    """An option given for a strategy it does not apply to is an error naming both."""
    for name in {name for s in STRATEGIES.values() for name in s.options}:
        if getattr(args, name) is not None and name not in strategy.options:
            others = " or ".join(strategies_taking(name))
            raise MiniGPTError(
                f"{flag(name)} does not apply to --strategy {strategy.name}; it is for "
                f"--strategy {others}"
            )


def check_beam_options(options: dict) -> None:
    """A beam strategy's options, checked as HF checks them even where it runs no beams."""
    with named_as_flags():
        check_beam_params(*(options[name] for name in
                            ("num_beams", "num_return_sequences", "length_penalty",
                             "early_stopping")))  # fmt: skip


def hf_redirects(strategy: Strategy, options: dict, given: dict, session: Session):
    """Where HF generate() runs greedy search although another strategy was named."""
    greedy = STRATEGIES["greedy"]
    # What greedy search takes: the processors, and assistance, which accelerates both.
    processors = {name: options.get(name) for name in {**PROCESSORS, **ASSISTANCE}}
    if strategy.name == "sample" and given["temperature"] == 0:
        # HF refuses T = 0; its limit T -> 0 is the argmax, which no warper changes.
        if options["num_return_sequences"] != 1:
            raise MiniGPTError("--temperature 0 is greedy decoding: it has only one sequence")
        session.notes.append("note: --temperature 0 means greedy decoding; running it")
        return greedy, processors
    if strategy.name == "beam" and options["num_beams"] == 1:
        # HF's generate(num_beams=1) never enters beam search: it is greedy search, and a
        # length penalty or early stopping changes nothing. (decoding.beam_search(num_beams=1)
        # stays the textbook one-beam search: a finished hypothesis competes with the beam.)
        check_beam_options(options)
        session.notes.append(
            "note: --num-beams 1 runs greedy search, as HF generate(num_beams=1) does "
            "(--length-penalty and --early-stopping change nothing there)"
        )
        return greedy, processors
    if strategy.name == "beam-sample" and options["num_beams"] == 1:
        # HF's generate(do_sample=True, num_beams=1) is plain sampling (min_tokens_to_keep 1).
        check_beam_options(options)
        sampling = STRATEGIES["sample"]
        session.notes.append(
            "note: --num-beams 1 runs sampling, as HF generate(do_sample=True, num_beams=1) "
            "does (--length-penalty and --early-stopping change nothing there)"
        )
        return sampling, {name: options.get(name, default)
                          for name, default in sampling.options.items()}  # fmt: skip
    return strategy, options


def check_seed(seed: int | None, session: Session) -> int:
    """--seed, or a fresh one that the notes print so that the run can be repeated."""
    if seed is None:
        seed = secrets.randbelow(2**31)
        session.notes.append(f"note: seed {seed} (pass --seed {seed} to repeat)")
    if seed < 0:
        raise MiniGPTError(f"--seed must be a non-negative integer, got {seed}")
    return seed


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


# ----------------------------------------------------------------------------------- output


class TokenPrinter:
    """The `on_token` of a streamed sequence: the prompt at the first token, then each token's
    text as soon as the decoder chooses it. Nothing is printed before the decoder has accepted
    its options, so a bad option is still a single line on stderr. A StreamDecoder holds back
    half a UTF-8 character until its other half arrives; EOS ends the text, unprinted."""

    def __init__(self, session: Session, prompt: list[int], out: TextIO, err: TextIO, eos):
        self.session, self.prompt, self.out, self.err, self.eos = session, prompt, out, err, eos
        self.stream = session.tokenizer.stream_decoder()
        self.started = False

    def __call__(self, index: int, token: int) -> None:
        if not self.started:
            print_notes(self.session, self.err)
            self.out.write(self.session.visible_text(self.prompt))
            self.started = True
        if token != self.eos:
            self.out.write(self.stream.push(token))
        self.out.flush()

    def finish(self, reason: str) -> None:
        self.out.write(self.stream.finish() + "\n")
        self.out.flush()
        if reason == "eos":
            print("note: the model ended the text (it generated <|endoftext|>)", file=self.err)


class CountingLogits:
    """Wraps next_token_logits to count the sequences sent to the model ("expansions")."""

    def __init__(self, inner: Callable) -> None:
        self.inner = inner
        self.expansions = 0
        self.context_length = getattr(inner, "context_length", None)  # what decoders check

    def __call__(self, sequences: list[list[int]]) -> np.ndarray:
        self.expansions += len(sequences)
        return self.inner(sequences)


def generate_json(request: Request, hypotheses: list[Hypothesis], session: Session) -> dict:
    """The --json object: the prompt's ids and every returned sequence."""
    sequences = [
        {
            "ids": h.ids,
            "text": session.visible_text(h.ids),
            "score": h.score if request.strategy.score_name else None,
            "logprob": h.logprob,
            **per_token_scores(h),
            "finish_reason": request.finish_reason(h),
        }
        for h in hypotheses
    ]
    result = {"prompt_ids": request.run.prompt, "sequences": sequences}
    stats = request.run.assistant  # assisted decoding ran: how the drafts went
    if stats is not None:
        result["assistant"] = {name: getattr(stats, name) for name in
                               ("rounds", "drafted", "accepted")}  # fmt: skip
    return jsonable(result)


def per_token_scores(h: Hypothesis) -> dict:
    """One number per generated token: the model's raw log-prob (they add up to "logprob") and
    HF's transition score (compute_transition_scores, normalize_logits=False; docs/scores.md).
    None for a decoder that does not record them (the tree search)."""
    recorded = len(h.token_logprobs) == len(h.new_ids) == len(h.transition_scores)
    return {
        "token_logprobs": h.token_logprobs if recorded else None,
        "transition_scores": h.transition_scores if recorded else None,
    }


def print_hypotheses(
    request: Request, hypotheses: list[Hypothesis], session: Session, out: TextIO
) -> None:
    """Each sequence under a one-line header with its numbers."""
    for i, h in enumerate(hypotheses, 1):
        numbers = [f"logprob {h.logprob:.3f}"]
        if request.strategy.score_name:
            numbers.insert(0, f"{request.strategy.score_name} {h.score:.3f}")
        if request.finish_reason(h) == "eos":
            numbers.append("ended at <|endoftext|>")
        print(f"--- {i} of {len(hypotheses)} ({', '.join(numbers)})", file=out)
        print(session.visible_text(h.ids), file=out)


def write_outputs(args, request: Request, trace, session: Session, err: TextIO) -> None:
    """--trace as JSON, --tree as DOT (and a rendered picture when Graphviz is there)."""
    if trace is None:
        return
    if args.trace:
        trace_json = trace.to_json()  # Trace.from_json / TreeSearchResult.from_json read it back
        tokens = sorted(token_ids_in(trace_json))
        record = {
            "strategy": request.strategy.name,
            "model": str(session.model_dir),
            "token_text": {t: session.tokenizer.decode([t]) for t in tokens},
            "trace": trace_json,
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
