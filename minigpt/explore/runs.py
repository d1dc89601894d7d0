"""A run in the background, answered a step at a time while its decoder is still going.

POST /api/start begins a LiveRun in a thread of its own; POST /api/steps waits until the run
holds the step the page asks for (or has ended) and answers with every step completed so far.
Nothing is decoded twice and nothing is cut short: the steps served early are the full run's
own, so they equal its final trace's first steps exactly.

How the server sees a trace the decoder is filling, without any decoder knowing:
- the run is asked for with trace=decoding.recorder.Watch(...), which hands over the Trace
  the decoder creates (LiveRun.started);
- every model call goes through api.CancellableLogits, whose before_call is
  LiveRun.before_model_call. A decoder asks for the next step's logits only after recording
  the last step, so there, in the decoder's own thread, everything recorded is complete: it is
  turned into JSON at once and the waiting answers are woken. (A step is complete once the
  decoder has moved on or the run has ended; it may still be filling the newest one.)
Where the live Trace is not the one the decoder returns (assisted sampling of several samples
merges their traces at the end) or there is none (the tree search), the run still goes on in
the background, and its steps answer when it has ended.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from decoding.recorder import Watch
from decoding.results import Trace, json_safe
from minigpt.cli.generate import token_ids_in
from minigpt.cli.strategies import ASSISTANCE
from minigpt.explore.api import (
    Cancelled,
    Prepared,
    answer_json,
    decode,
    early_stopping_steps,
    partial_json,
)


def live_trace_is_final(run) -> bool:
    """Whether the Trace a decoder starts is the one it returns. Not for assisted sampling of
    several samples: decoding/assisted.py runs them one after the other and merges their
    traces at the end (step k then holds every sample's row k).

    >>> from minigpt.cli.strategies import Run
    >>> live_trace_is_final(Run([1], 5, None, {"num_return_sequences": 3}))
    True
    >>> assisted = {"num_return_sequences": 3, "num_assistant_tokens": 4}
    >>> live_trace_is_final(Run([1], 5, None, assisted))
    False
    """
    assisted = any(run.options.get(name) is not None for name in ASSISTANCE)
    return not (assisted and (run.options.get("num_return_sequences") or 1) > 1)


class LiveRun:
    """One request's run: its cancel flag, the steps (and rounds) completed so far as JSON,
    and, once it has ended, its answer or its error. `changed` guards them all and is
    notified whenever they grow."""

    def __init__(self, run_id: str, prepared: Prepared) -> None:
        self.run_id, self.prepared = run_id, prepared
        self.cancelled = threading.Event()
        self.changed = threading.Condition()
        self.trace: Trace | None = None  # the decoder's live Trace, when it is the final one
        self.traces_started = 0
        self.steps: list[dict] = []  # the live trace's completed steps, as to_json writes them
        self.rounds: list[dict] = []  # and its completed rounds (assisted decoding)
        self.tokens: set[int] = set()  # the token ids those mention
        self.answer: dict | None = None
        self.error: BaseException | None = None
        self.ended_at: float | None = None  # time.monotonic() when it ended
        self.marks_lock = threading.Lock()
        self.marks: dict | None = None  # the early-stopping marks of the first `marked` steps
        self.marked = 0

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    # ----------------------------------------------------------- in the decoder's thread

    def decode(self, make_logits) -> None:
        """Run the request on make_logits() (an api.CancellableLogits built with
        before_call=self.before_model_call) and keep what it ended with, whatever that is:
        an answer waited for must come."""
        try:
            if self.cancelled.is_set():  # cancelled while it waited its turn
                raise Cancelled("the run was cancelled")
            logits = make_logits()
            run = self.prepared.request.run
            watch = Watch(self.started) if live_trace_is_final(run) else True
            hypotheses, trace = decode(self.prepared, logits, watch)
            answer = answer_json(self.prepared, hypotheses, trace, *self.whole_json(trace))
        except BaseException as e:  # kept for the answer; a bug is printed where it is served
            self.end(error=e)
        else:
            self.end(answer=answer)

    def started(self, trace: Trace) -> None:
        """The Watch's on_start: the decoder has created its Trace."""
        self.traces_started += 1
        # A second Trace would mean this one is not the one returned: serve no more of it.
        self.trace = trace if self.traces_started == 1 else None

    def before_model_call(self) -> None:
        """Everything the trace holds is complete: add what is new, as JSON."""
        trace = self.trace
        if trace is None:
            return
        steps = [json_safe(dataclasses.asdict(s)) for s in trace.steps[len(self.steps) :]]
        rounds = [json_safe(dataclasses.asdict(r)) for r in trace.rounds[len(self.rounds) :]]
        if steps or rounds:
            self.tokens |= token_ids_in(steps) | token_ids_in(rounds)
            with self.changed:
                self.steps += steps
                self.rounds += rounds
                self.changed.notify_all()

    def whole_json(self, trace) -> tuple[dict | None, set[int] | None]:
        """(trace.to_json(), the token ids it mentions) from the steps already turned into
        JSON, when `trace` is the live one (else (None, None): api.answer_json makes them)."""
        if trace is None or trace is not self.trace:
            return None, None
        self.before_model_call()  # the run has ended: its last steps are complete too
        whole = {"decoder": trace.decoder, "prompt": list(trace.prompt), "steps": self.steps,
                 "stop_reason": trace.stop_reason, "rounds": self.rounds}  # fmt: skip
        return whole, self.tokens | set(trace.prompt)

    def end(self, answer: dict | None = None, error: BaseException | None = None) -> None:
        with self.changed:
            self.answer, self.error, self.ended_at = answer, error, time.monotonic()
            self.changed.notify_all()

    # ------------------------------------------------------------ in a request's thread

    def units(self) -> int:
        """Completed rounds (assisted decoding) or else steps: what one Step reveals."""
        return len(self.rounds) if self.rounds else len(self.steps)

    def wait(self, upto: int | None) -> None:
        """Until `upto` units are complete (None: until the run has ended) or it has ended."""
        with self.changed:
            self.changed.wait_for(lambda: self.ended or (upto is not None and self.units() >= upto))

    def answer_so_far(self, since: tuple[int, int] = (0, 0)) -> dict:
        """The answer, or the partial answer with every completed step; the run's error if
        it failed (a bad option the decoder refused, or Cancelled). since = (steps, rounds)
        the page holds already: the trace then has only the ones after them (a long beam
        search's trace runs to megabytes, too much to send again at every step)."""
        with self.changed:
            ended, answer, error = self.ended, self.answer, self.error
            steps, rounds, trace = list(self.steps), list(self.rounds), self.trace
        if error is not None:
            raise error
        if ended:
            sent, since = after(answer["trace"], since)
            return {"run_id": self.run_id, "done": True, **answer, "trace": sent,
                    "since": since}  # fmt: skip
        run = self.prepared.request.run
        trace_json = {"decoder": trace.decoder if trace else "", "prompt": list(run.prompt),
                      "steps": steps, "stop_reason": "", "rounds": rounds}  # fmt: skip
        sent, since = after(trace_json, since)
        # The completed steps' records are no longer written to: safe to read from here.
        marks = self.marks_of(trace.steps[: len(steps)] if trace else [])
        return {"run_id": self.run_id, "done": False, **partial_json(self.prepared, sent, marks),
                "since": since}  # fmt: skip

    def marks_of(self, records: list) -> dict | None:
        """api.early_stopping_steps of the completed steps, carried on from the last answer's
        (whether a mode stops after a step depends on that step's beams and pool alone)."""
        with self.marks_lock:
            run = self.prepared.request.run
            new = early_stopping_steps(Trace("", list(run.prompt), records[self.marked :]), run)
            if new is not None:
                old = self.marks or {}
                self.marks = {mode: old[mode] if old.get(mode) is not None else at
                              for mode, at in new.items()}  # fmt: skip
            self.marked = max(self.marked, len(records))
            return None if self.marks is None else dict(self.marks)


def after(trace_json: dict, since: tuple[int, int]) -> tuple[dict, dict]:
    """(the trace without its first since = (steps, rounds), what was left out). A tree
    search's trace has no steps: it is sent whole.

    >>> after({"steps": [1, 2, 3], "rounds": []}, (2, 0))
    ({'steps': [3], 'rounds': []}, {'steps': 2, 'rounds': 0})
    """
    if "steps" not in trace_json:
        return trace_json, {"steps": 0, "rounds": 0}
    steps, rounds = since
    sent = {**trace_json, "steps": trace_json["steps"][steps:],
            "rounds": trace_json["rounds"][rounds:]}  # fmt: skip
    return sent, {"steps": steps, "rounds": rounds}
