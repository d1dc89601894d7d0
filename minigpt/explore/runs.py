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
from minigpt.cli.strategies import ASSISTANCE
from minigpt.explore.api import Cancelled, Prepared, answer_json, decode, partial_json


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
        self.answer: dict | None = None
        self.error: BaseException | None = None
        self.ended_at: float | None = None  # time.monotonic() when it ended

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    # ----------------------------------------------------------- in the decoder's thread

    def decode(self, logits) -> None:
        """Run the request on `logits` (an api.CancellableLogits built with
        before_call=self.before_model_call) and keep what it ended with."""
        try:
            if self.cancelled.is_set():  # cancelled while it waited its turn
                raise Cancelled("the run was cancelled")
            run = self.prepared.request.run
            watch = Watch(self.started) if live_trace_is_final(run) else True
            answer = answer_json(self.prepared, *decode(self.prepared, logits, watch))
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
            with self.changed:
                self.steps += steps
                self.rounds += rounds
                self.changed.notify_all()

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

    def answer_so_far(self) -> dict:
        """The answer, or the partial answer with every completed step; the run's error if
        it failed (a bad option the decoder refused, or Cancelled)."""
        with self.changed:
            ended, answer, error = self.ended, self.answer, self.error
            steps, rounds, trace = list(self.steps), list(self.rounds), self.trace
        if error is not None:
            raise error
        if ended:
            return {"run_id": self.run_id, "done": True, **answer}
        run = self.prepared.request.run
        trace_json = {"decoder": trace.decoder if trace else "", "prompt": list(run.prompt),
                      "steps": steps, "stop_reason": "", "rounds": rounds}  # fmt: skip
        # The completed steps' records are no longer written to: safe to read from here.
        records = trace.steps[: len(steps)] if trace else []
        return {"run_id": self.run_id, "done": False,
                **partial_json(self.prepared, trace_json, records)}  # fmt: skip
