"""The explorer's HTTP server: the standard library's ThreadingHTTPServer on 127.0.0.1 only.

    GET  /                 the page (static/index.html); GET /static/NAME its other files
    GET  /api/strategies   the strategy table: each strategy's options, defaults and help
    POST /api/start        start one request's traced run in the background: {"run_id": ID}
    POST /api/steps        {"run_id": ID, "upto": K}: the steps so far, once K are complete
    POST /api/run          decode one request with its trace, all at once (api.py says what a
                           request is; start + steps with "upto": null, in one call)
    POST /api/cancel       {"run_id": ID}: stop that run at its next model call

Threads, so that steps and a cancel are answered while a run is going (runs.py); the runs
themselves take turns (one model, two cores: running two at once would only make both
slower). Every error is JSON, {"error": "one line", "option": "top_p" or null}: 400 for a bad
request (or a run_id the server no longer holds), 409 for a cancelled run, 413 for a body over
api.MAX_BODY_BYTES, 403 for a Host header that is not this server's (a web page elsewhere
cannot reach it through a DNS name of its own).
"""

from __future__ import annotations

import importlib.resources
import json
import mimetypes
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import minigpt
from minigpt.cli.session import Session, one_line
from minigpt.errors import MiniGPTError
from minigpt.explore.api import (
    MAX_BODY_BYTES,
    REQUEST_KEYS,
    STEPS_KEYS,
    BadRequest,
    CancellableLogits,
    Cancelled,
    option_named,
    prepare,
    read_json,
    strategies_json,
)
from minigpt.explore.runs import LiveRun

HOST = "127.0.0.1"  # never another interface: the page runs any model on this machine's CPU
MAX_RUN_ID = 64


def static_dir() -> Path:
    """The page's files, from the package (a checkout or an installed wheel alike)."""
    return Path(str(importlib.resources.files("minigpt.explore") / "static"))


class Explorer:
    """What the handlers share: the loaded model, the runs (runs.py), the turn to run.

    At most MAX_RUNS runs are kept: a new one drops finished runs older than KEEP_SECONDS,
    then the oldest (cancelling it if it is still going) until there is room. The page has at
    most two panels with one run each, and cancels a panel's run when it starts another."""

    MAX_RUNS = 8
    KEEP_SECONDS = 600

    def __init__(self, session: Session) -> None:
        self.session = session
        self.turn = threading.Lock()
        self.runs: OrderedDict[str, LiveRun] = OrderedDict()  # oldest first
        self.registry_lock = threading.Lock()

    def model_logits(self):
        """The next-token-logits callable a run decodes with (a test may wrap it)."""
        return minigpt.NextTokenLogits(self.session.model)

    @property
    def running(self) -> dict[str, threading.Event]:
        """run_id -> cancel flag of each run not yet ended (going, or waiting its turn)."""
        with self.registry_lock:
            return {key: live.cancelled for key, live in self.runs.items() if not live.ended}

    # ------------------------------------------------------------------------ the endpoints

    def start(self, data: dict) -> dict:
        """POST /api/start: check the request, start its run in the background, answer its
        run_id at once (the page's own, or a new one)."""
        run_id = run_id_field(data.get("run_id"), required=False) or uuid.uuid4().hex[:16]
        live = LiveRun(run_id, prepare(self.session, data))
        self.register(live)
        threading.Thread(target=self.decode, args=(live,), daemon=True).start()
        return {"run_id": run_id}

    def steps(self, data: dict) -> dict:
        """POST /api/steps {"run_id": ID, "upto": K, "since": {"steps": S, "rounds": R}}:
        once K steps are complete (K rounds for assisted decoding; "upto" null or left out:
        once the run has ended), or the run has ended, the steps (and rounds) so far after the
        first S (R) the page has already; with "done": true, the whole answer of /api/run
        (its trace after those too)."""
        upto = data.get("upto")
        if upto is not None and (isinstance(upto, bool) or not isinstance(upto, int) or upto < 0):
            raise BadRequest(f"upto must be a step count (0 or more) or null, got {upto!r}")
        since = since_field(data.get("since"))
        live = self.find(run_id_field(data.get("run_id"), required=True))
        live.wait(upto)
        return live.answer_so_far(since)

    def run(self, data: dict) -> dict:
        """POST /api/run: the whole run at once (start, then wait for its end)."""
        live = self.find(self.start(data)["run_id"])
        live.wait(None)
        return live.answer_so_far()

    def cancel(self, data: dict) -> dict:
        run_id = data.get("run_id")
        if not isinstance(run_id, str):
            raise BadRequest('give the run to cancel as {"run_id": "..."}')
        with self.registry_lock:
            live = self.runs.get(run_id)
        going = live is not None and not live.ended
        if going:
            live.cancelled.set()
        return {"run_id": run_id, "cancelled": going}

    # ------------------------------------------------------------------------ the pieces

    def decode(self, live: LiveRun) -> None:
        """A run's thread: wait for the turn, then decode (the runs take turns: one model,
        a few cores; two at once would only make both slower)."""
        with self.turn:
            live.decode(lambda: CancellableLogits(self.model_logits(), live.cancelled,
                                                  live.before_model_call))  # fmt: skip

    def find(self, run_id: str) -> LiveRun:
        with self.registry_lock:
            live = self.runs.get(run_id)
        if live is None:
            raise BadRequest(
                f"no run {run_id!r} here (a finished run is kept {self.KEEP_SECONDS // 60} "
                "minutes); start it again"
            )
        return live

    def register(self, live: LiveRun) -> None:
        with self.registry_lock:
            now = time.monotonic()
            stale = [key for key, r in self.runs.items()
                     if r.ended and now - r.ended_at > self.KEEP_SECONDS]  # fmt: skip
            replaced = [live.run_id] if live.run_id in self.runs else []
            for key in stale + replaced:
                self.drop(key)
            while len(self.runs) >= self.MAX_RUNS:
                ended = [key for key, r in self.runs.items() if r.ended]
                self.drop(ended[0] if ended else next(iter(self.runs)))
            self.runs[live.run_id] = live

    def drop(self, run_id: str) -> None:
        """Forget a run (registry_lock held), cancelling it if it is still going."""
        self.runs.pop(run_id).cancelled.set()


def since_field(value: object) -> tuple[int, int]:
    """(steps, rounds) the page holds already, from {"steps": S, "rounds": R} (null: none)."""
    if value is None:
        return 0, 0
    counts = [value.get(key, 0) for key in ("steps", "rounds")] if isinstance(value, dict) else []
    extra = isinstance(value, dict) and set(value) - {"steps", "rounds"}
    if extra or not counts or any(isinstance(c, bool) or not isinstance(c, int) or c < 0
                                  for c in counts):  # fmt: skip
        raise BadRequest(f'since must be {{"steps": S, "rounds": R}} of counts, got {value!r}')
    return counts[0], counts[1]


def run_id_field(value: object, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not (isinstance(value, str) and 0 < len(value) <= MAX_RUN_ID):
        raise BadRequest(f"run_id must be a string of 1 to {MAX_RUN_ID} characters")
    return value


class Handler(BaseHTTPRequestHandler):
    """One request. `explorer` is set on the subclass that make_server builds."""

    explorer: Explorer
    server_version = "minigpt-explore"
    quiet = True
    # The headers and the body go out as two writes; without this, Nagle's algorithm may hold
    # the body back until the client acknowledges the headers (up to 40 ms of a delayed ACK).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args) -> None:
        if not self.quiet:
            super().log_message(format, *args)

    # ---------------------------------------------------------------------- the routes

    def do_GET(self) -> None:
        if not self.host_ok():
            return
        path = self.path.split("?", 1)[0]
        if path == "/api/strategies":
            self.send_json(200, strategies_json(self.explorer.session))
        elif path in ("/", "/index.html"):
            self.send_static("index.html")
        elif path.startswith("/static/"):
            self.send_static(path[len("/static/") :])
        else:
            self.send_error_json(404, f"no such page: {path}")

    def do_POST(self) -> None:
        if not self.host_ok():
            return
        routes = {"/api/run": (self.explorer.run, REQUEST_KEYS),
                  "/api/start": (self.explorer.start, REQUEST_KEYS),
                  "/api/steps": (self.explorer.steps, STEPS_KEYS),
                  "/api/cancel": (self.explorer.cancel, REQUEST_KEYS)}  # fmt: skip
        action, keys = routes.get(self.path, (None, None))
        if action is None:
            self.send_error_json(404, f"no such endpoint: POST {self.path}")
            return
        body = self.read_body()
        if body is None:
            return
        try:
            self.send_json(200, action(read_json(body, keys)))
        except Cancelled as e:
            self.send_error_json(409, str(e))
        except (MiniGPTError, ValueError) as e:
            self.send_error_json(400, one_line(e))
        except Exception as e:  # a bug: the page gets one line, the terminal the traceback
            traceback.print_exc()
            self.send_error_json(500, f"internal error: {one_line(e)}")

    # ---------------------------------------------------------------------- the pieces

    def host_ok(self) -> bool:
        """Only requests addressed to this server by its loopback name (see the docstring)."""
        port = self.server.server_address[1]
        allowed = {f"{HOST}:{port}", f"localhost:{port}"}
        if self.headers.get("Host") in allowed:
            return True
        self.send_error_json(403, f"the explorer answers only to {HOST}:{port}")
        return False

    def read_body(self) -> bytes | None:
        """The request body, or None after answering 411/413 (an oversized body is not read)."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.send_error_json(411, "send the JSON body with a Content-Length")
            return None
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body must not be taken for a request
            self.send_error_json(
                413, f"the request body has {length} bytes, over the limit of {MAX_BODY_BYTES}"
            )
            return None
        return self.rfile.read(int(length))

    def send_static(self, name: str) -> None:
        folder = static_dir()
        files = {p.name: p for p in folder.iterdir() if p.is_file()}
        if name not in files:  # only the files that are there: no path ever leaves static/
            self.send_error_json(404, f"no such file: /static/{name}")
            return
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        self.send_bytes(200, files[name].read_bytes(), kind)

    def send_json(self, status: int, value: dict) -> None:
        body = json.dumps(value, ensure_ascii=False).encode("utf-8")
        self.send_bytes(status, body, "application/json; charset=utf-8")

    def send_error_json(self, status: int, message: str) -> None:
        self.send_json(status, {"error": message, "option": option_named(message)})

    def send_bytes(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


def make_server(session: Session, port: int, *, quiet: bool = True) -> ThreadingHTTPServer:
    """A server for `session`'s model on 127.0.0.1:port (0: a free port); not started yet."""
    handler = type("ExplorerHandler", (Handler,), {"explorer": Explorer(session), "quiet": quiet})
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True  # a run in progress does not keep Ctrl-C from ending it
    return server
