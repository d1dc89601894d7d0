"""The explorer's HTTP server: the standard library's ThreadingHTTPServer on 127.0.0.1 only.

    GET  /                 the page (static/index.html); GET /static/NAME its other files
    GET  /api/strategies   the strategy table: each strategy's options, defaults and help
    POST /api/run          decode one request with its trace (api.py says what a request is)
    POST /api/cancel       {"run_id": ID}: stop that run at its next model call

Threads, so that a cancel is heard while a run is going; the runs themselves take turns (one
model, two cores: running two at once would only make both slower). Every error is JSON,
{"error": "one line", "option": "top_p" or null}: 400 for a bad request, 409 for a cancelled
run, 413 for a body over api.MAX_BODY_BYTES, 403 for a Host header that is not this server's
(a web page elsewhere cannot reach it through a DNS name of its own).
"""

from __future__ import annotations

import importlib.resources
import json
import mimetypes
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from minigpt.cli.session import Session, one_line
from minigpt.errors import MiniGPTError
from minigpt.explore.api import (
    MAX_BODY_BYTES,
    BadRequest,
    Cancelled,
    option_named,
    read_json,
    run_request,
    strategies_json,
)

HOST = "127.0.0.1"  # never another interface: the page runs any model on this machine's CPU
MAX_RUN_ID = 64


def static_dir() -> Path:
    """The page's files, from the package (a checkout or an installed wheel alike)."""
    return Path(str(importlib.resources.files("minigpt.explore") / "static"))


class Explorer:
    """What the handlers share: the loaded model, the runs in progress, the turn to run."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.turn = threading.Lock()
        self.running: dict[str, threading.Event] = {}  # run_id -> its cancel flag
        self.registry_lock = threading.Lock()

    def run(self, data: dict) -> dict:
        run_id = data.get("run_id")
        if run_id is not None and not (isinstance(run_id, str) and 0 < len(run_id) <= MAX_RUN_ID):
            raise BadRequest(f"run_id must be a string of 1 to {MAX_RUN_ID} characters")
        cancelled = threading.Event()
        if run_id is not None:
            with self.registry_lock:  # registered before waiting its turn: cancellable then too
                self.running[run_id] = cancelled
        try:
            with self.turn:
                if cancelled.is_set():
                    raise Cancelled("the run was cancelled")
                return run_request(self.session, data, cancelled)
        finally:
            if run_id is not None:
                with self.registry_lock:
                    self.running.pop(run_id, None)

    def cancel(self, data: dict) -> dict:
        run_id = data.get("run_id")
        if not isinstance(run_id, str):
            raise BadRequest('give the run to cancel as {"run_id": "..."}')
        with self.registry_lock:
            event = self.running.get(run_id)
        if event is not None:
            event.set()
        return {"run_id": run_id, "cancelled": event is not None}


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
        routes = {"/api/run": self.explorer.run, "/api/cancel": self.explorer.cancel}
        action = routes.get(self.path)
        if action is None:
            self.send_error_json(404, f"no such endpoint: POST {self.path}")
            return
        body = self.read_body()
        if body is None:
            return
        try:
            self.send_json(200, action(read_json(body)))
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
