"""The explorer's server run in a thread of the test, and the JSON calls the page makes.

Shared by tests/test_explore_server.py, tests/test_explore_browser.py and the screenshot
script; the server is the real one (minigpt/explore/server.py) on a free port of 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from collections.abc import Iterator

from minigpt.cli.session import open_session
from minigpt.explore.server import make_server


@contextlib.contextmanager
def serving(model: str | None = None) -> Iterator:
    """(base URL, server) of an explorer for `model` (default: the bundled one)."""
    server = make_server(open_session(model), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def call(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, the JSON answer, or the raw bytes when it is not JSON) of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(data) if kind.startswith("application/json") else data


def post(server, path: str, value) -> tuple[int, dict]:
    """POST a JSON value, as the page does."""
    body = json.dumps(value).encode("utf-8")
    return call(server, "POST", path, body, {"Content-Type": "application/json"})


class Gated:
    """The model, one forward pass per permit: the test says when the decoder may go on, so
    a step is asked for while the run is provably still going (no timing anywhere)."""

    def __init__(self, inner, permits: threading.Semaphore) -> None:
        self.inner, self.permits = inner, permits
        self.context_length, self.vocab_size = inner.context_length, inner.vocab_size

    def __call__(self, sequences):
        self.permits.acquire()
        return self.inner(sequences)

    def logits_at_positions(self, sequence, n):
        self.permits.acquire()
        return self.inner.logits_at_positions(sequence, n)


@contextlib.contextmanager
def gated(server):
    """The server's runs decode with a Gated model; yields its permits (none yet)."""
    explorer = server.RequestHandlerClass.explorer
    permits = threading.Semaphore(0)
    real = explorer.model_logits
    explorer.model_logits = lambda: Gated(real(), permits)
    try:
        yield permits
    finally:
        explorer.model_logits = real
        permits.release(10**6)  # nothing stays blocked, whatever the test did
