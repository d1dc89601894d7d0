"""minigpt/download.py against a stand-in hub served on 127.0.0.1 (never the network).

The stand-in serves a small random GPT-2 checkpoint in the hub's URL layout
({endpoint}/{repo}/resolve/{revision}/{file}), honours HTTP Range, and can misbehave on demand:
drop a connection mid-body, redirect to another host, answer 401/404. Each run is a real
subprocess, as a learner would run it, with HF_ENDPOINT pointing at the stand-in: mostly
weights/scripts/download.py, and `python -m minigpt download` for the command's own tests.
"""

from __future__ import annotations

import doctest
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from safetensors.numpy import load, load_file, save

from minigpt import download
from minigpt.hub import resolve_model_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "weights" / "scripts" / "download.py"  # a thin wrapper of minigpt.download
REVISION = "0123456789abcdef0123456789abcdef01234567"  # a revision nothing else pins
FILES = ("config.json", "tokenizer.json", "vocab.json", "merges.txt", "model.safetensors")


# ---------------------------------------------------------------- a random checkpoint


def random_checkpoint(seed: int = 0) -> dict[str, bytes]:
    """The five files of a tiny random GPT-2 (2 layers, width 16), as the hub would serve them."""
    rng = np.random.default_rng(seed)
    n_layer, n_embd, vocab, n_ctx = 2, 16, 64, 32
    shapes = {"wte.weight": (vocab, n_embd), "wpe.weight": (n_ctx, n_embd)}
    for i in range(n_layer):
        for name, shape in {
            "ln_1.weight": (n_embd,),
            "attn.c_attn.weight": (n_embd, 3 * n_embd),
            "attn.c_proj.weight": (n_embd, n_embd),
            "mlp.c_fc.weight": (n_embd, 4 * n_embd),
            "mlp.c_proj.weight": (4 * n_embd, n_embd),
        }.items():
            shapes[f"h.{i}.{name}"] = shape
    tensors = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    config = {"n_layer": n_layer, "n_head": 2, "n_embd": n_embd, "n_positions": n_ctx}
    return {
        "config.json": json.dumps(config | {"vocab_size": vocab}).encode(),
        "tokenizer.json": b'{"model": {"type": "BPE"}}',
        "vocab.json": json.dumps({chr(97 + i): i for i in range(26)}).encode(),
        "merges.txt": b"#version: 0.2\na b\n",
        "model.safetensors": save(tensors),
    }


CHECKPOINT = random_checkpoint()
WEIGHTS = CHECKPOINT["model.safetensors"]
WEIGHTS_SHA256 = hashlib.sha256(WEIGHTS).hexdigest()


# ---------------------------------------------------------------- a stand-in hub


class StubHub:
    """An HTTP server on 127.0.0.1 that serves files by URL path and records each request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.drop_once: dict[str, str] = {}  # path -> "close" | "reset": cut the first body
        self.redirects: dict[str, str] = {}  # path -> absolute URL
        self.status: dict[str, int] = {}  # path -> an error status to answer with
        self.honour_range = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler_class())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def serve_checkpoint(self, files: dict[str, bytes], repo="openai-community/gpt2"):
        for name, body in files.items():
            self.files[self.path(name, repo)] = body

    @staticmethod
    def path(filename: str, repo="openai-community/gpt2", revision=REVISION) -> str:
        return f"/{repo}/resolve/{revision}/{filename}"

    def requests_for(self, path: str) -> list[dict[str, str]]:
        return [headers for p, headers in self.requests if p == path]

    def handler_class(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                hub.requests.append((self.path, dict(self.headers)))
                if self.path in hub.status:
                    return self.send_error(hub.status[self.path])
                if self.path in hub.redirects:
                    self.send_response(302)
                    self.send_header("Location", hub.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                body = hub.files.get(self.path)
                if body is None:
                    return self.send_error(404)
                self.send_body(body)

            def send_body(self, body: bytes):
                start = self.range_start()
                if start >= len(body) > 0:
                    return self.send_error(416)
                if start:
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                how = hub.drop_once.pop(self.path, None)
                if how is None:
                    return self.wfile.write(body[start:])
                self.wfile.write(body[start : start + (len(body) - start) // 2])
                self.wfile.flush()
                if how == "reset":  # an abortive close: the client sees ECONNRESET
                    linger = struct.pack("ii", 1, 0)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.close_connection = True

            def range_start(self) -> int:
                value = self.headers.get("Range")
                if not value or not hub.honour_range:
                    return 0
                return int(value.removeprefix("bytes=").split("-")[0])

        return Handler

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub():
    with StubHub() as server:
        server.serve_checkpoint(CHECKPOINT)
        yield server


def hub_env(endpoint: str, token: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a run against `endpoint`: no proxy, no inherited token or home."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("HF_TOKEN", None)
    env.pop("MINIGPT_HOME", None)
    env["HF_ENDPOINT"] = endpoint
    if token is not None:
        env["HF_TOKEN"] = token
    return env | extra


def run_script(endpoint: str, *args: str, token: str | None = None):
    """Run weights/scripts/download.py as a subprocess against `endpoint`."""
    command = [sys.executable, str(SCRIPT), "gpt2", "--revision", REVISION, *args]
    env = hub_env(endpoint, token)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def run_command(endpoint: str, *args: str, cwd: Path, **env: str):
    """Run `python -m minigpt download gpt2 ARGS` in `cwd` against `endpoint`."""
    command = [sys.executable, "-m", "minigpt", "download", "gpt2", *args]
    return subprocess.run(
        command, env=hub_env(endpoint, **env), cwd=cwd, capture_output=True, text=True, timeout=60
    )


def run_with_hash(endpoint: str, dest: Path, sha256: str = WEIGHTS_SHA256, **kwargs):
    return run_script(endpoint, "--dest", str(dest), "--sha256", sha256, **kwargs)


def assert_installed(dest: Path, files: dict[str, bytes] = CHECKPOINT):
    for name, body in files.items():
        assert (dest / name).read_bytes() == body, name
    assert not list(dest.glob("*.part")), "a .part file was left behind"


def assert_one_line_error(result, *fragments: str):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


# ---------------------------------------------------------------- the tests


def test_complete_download_installs_every_file_and_shows_progress(hub, tmp_path):
    result = run_with_hash(hub.url, tmp_path / "gpt2")
    assert result.returncode == 0, result.stderr
    assert_installed(tmp_path / "gpt2")
    loaded = load_file(tmp_path / "gpt2" / "model.safetensors")
    assert all(np.array_equal(loaded[k], v) for k, v in load(WEIGHTS).items())
    # text=True turns the bar's "\r" into line breaks, so each redraw is its own line here.
    progress = [line for line in result.stderr.splitlines() if "model.safetensors" in line]
    assert any("100%" in line and "kB" in line and "/s" in line for line in progress)


def test_files_already_present_are_not_fetched_again(hub, tmp_path):
    assert run_with_hash(hub.url, tmp_path).returncode == 0
    hub.requests.clear()
    result = run_with_hash(hub.url, tmp_path)
    assert result.returncode == 0 and hub.requests == []
    assert "already present" in result.stderr


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_cut_connection_is_resumed_with_a_range_request(hub, tmp_path, how):
    path = hub.path("model.safetensors")
    hub.drop_once[path] = how
    result = run_with_hash(hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    first, second = hub.requests_for(path)
    assert "Range" not in first
    assert second["Range"].startswith("bytes=") and second["Range"] != "bytes=0-"
    assert_installed(tmp_path)


def test_a_part_file_from_an_earlier_run_is_resumed(hub, tmp_path):
    (tmp_path / "model.safetensors.part").write_bytes(WEIGHTS[:1000])
    result = run_with_hash(hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.requests_for(hub.path("model.safetensors"))[0]["Range"] == "bytes=1000-"
    assert_installed(tmp_path)


def test_a_server_that_ignores_range_gets_a_fresh_start(hub, tmp_path):
    hub.honour_range = False
    (tmp_path / "model.safetensors.part").write_bytes(b"stale bytes from another file")
    result = run_with_hash(hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert_installed(tmp_path)


def test_sha256_mismatch_leaves_no_file_behind(hub, tmp_path):
    result = run_with_hash(hub.url, tmp_path, sha256="0" * 64)
    assert_one_line_error(result, "sha256 mismatch", "model.safetensors")
    assert not (tmp_path / "model.safetensors").exists()
    assert not (tmp_path / "model.safetensors.part").exists()


def test_pinned_size_mismatch_is_caught_before_hashing(tmp_path):
    part = tmp_path / "model.safetensors.part"
    part.write_bytes(b"x" * 10)
    with pytest.raises(download.DownloadError, match="10 bytes, expected 11"):
        download.verify(part, download.Expected("0" * 64, 11))
    assert not part.exists()


def test_404_is_one_clear_line(hub, tmp_path):
    del hub.files[hub.path("config.json")]
    result = run_with_hash(hub.url, tmp_path)
    assert_one_line_error(result, "not found (HTTP 404)", "config.json", "--revision")
    assert not (tmp_path / "config.json").exists()


def test_401_asks_for_a_token(hub, tmp_path):
    hub.status[hub.path("config.json")] = 401
    result = run_with_hash(hub.url, tmp_path)
    assert_one_line_error(result, "HTTP 401", "set HF_TOKEN")
    result = run_with_hash(hub.url, tmp_path, token="wrong")
    assert_one_line_error(result, "HTTP 401", "rejected HF_TOKEN")


def test_redirect_to_another_host_does_not_forward_the_token(hub, tmp_path):
    """The token reaches the hub, never the CDN; a resume through the redirect keeps Range."""
    weights_path = hub.path("model.safetensors")
    with StubHub() as cdn:
        cdn.files["/blob/abc"] = WEIGHTS
        cdn.drop_once["/blob/abc"] = "close"
        hub.redirects[weights_path] = f"{cdn.url}/blob/abc"
        result = run_with_hash(hub.url, tmp_path, token="hf_secret")
    assert result.returncode == 0, result.stderr
    assert_installed(tmp_path)
    assert all(h.get("Authorization") == "Bearer hf_secret" for _, h in hub.requests)
    cdn_requests = cdn.requests_for("/blob/abc")
    assert len(cdn_requests) == 2
    assert all("Authorization" not in h for h in cdn_requests)
    assert cdn_requests[1]["Range"].startswith("bytes=")


def test_offline_connection_refused_is_one_clear_line(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_with_hash(f"http://127.0.0.1:{port}", tmp_path / "gpt2")
    assert_one_line_error(result, "cannot connect", "connection refused")
    assert not (tmp_path / "gpt2").exists(), "an empty directory was left behind"


def test_dns_failure_reads_as_offline():
    error = urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
    message = download.describe_network_error(error, "https://huggingface.co/x/resolve/y/z")
    assert "cannot resolve huggingface.co" in message and "offline" in message


def test_an_unpinned_revision_is_refused_unless_verification_is_waived(hub, tmp_path):
    result = run_script(hub.url, "--dest", str(tmp_path))
    assert_one_line_error(result, "no sha256 is pinned", "--no-verify", "--sha256")
    assert hub.requests == [], "it should refuse before downloading anything"
    result = run_script(hub.url, "--dest", str(tmp_path), "--no-verify")
    assert result.returncode == 0, result.stderr
    assert "unchecked" in result.stderr
    assert_installed(tmp_path)


def test_a_malformed_sha256_option_is_refused(hub, tmp_path):
    result = run_with_hash(hub.url, tmp_path, sha256="abc")
    assert_one_line_error(result, "--sha256", "64 hexadecimal")


def test_the_pinned_table_is_well_formed_and_matches_the_loader():
    from minigpt.hub import HUB_REPOS

    assert set(download.MODELS) == set(HUB_REPOS)
    for name, model in download.MODELS.items():
        assert model.repo == HUB_REPOS[name][0]
        assert len(model.revision) == 40 and int(model.revision, 16) >= 0
        assert download.is_sha256(model.sha256) and model.sha256 == model.sha256.lower()


def test_token_header_is_dropped_only_when_the_host_changes():
    handler = download.SameHostAuthRedirectHandler()
    headers = {"Authorization": "Bearer t", "Range": "bytes=5-"}
    request = urllib.request.Request("http://a.example:80/x", headers=headers)
    same = handler.redirect_request(request, None, 302, "Found", {}, "http://a.example:80/y")
    other = handler.redirect_request(request, None, 302, "Found", {}, "http://a.example:81/y")
    assert same.get_header("Authorization") == "Bearer t"
    assert other.get_header("Authorization") is None
    assert other.get_header("Range") == "bytes=5-"


# ---------------------------------------------------------------- `minigpt download`


def test_the_minigpt_command_downloads_into_minigpt_home_by_default(hub, tmp_path, monkeypatch):
    """The same download through the CLI, from another directory, with no --dest: it goes to
    $MINIGPT_HOME/gpt2/, where `--model gpt2` looks, and nowhere near the working directory."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    args = ("--revision", REVISION, "--sha256", WEIGHTS_SHA256)
    result = run_command(hub.url, *args, cwd=work, MINIGPT_HOME=str(home))
    assert result.returncode == 0, result.stderr
    assert_installed(home / "gpt2")
    assert list(work.iterdir()) == []
    assert f"done: {home / 'gpt2'}" in result.stderr
    monkeypatch.setenv("MINIGPT_HOME", str(home))
    assert resolve_model_dir("gpt2") == home / "gpt2"


def test_the_minigpt_command_reports_a_failure_in_one_line(hub, tmp_path):
    args = ("--revision", REVISION, "--dest", str(tmp_path), "--sha256", "0" * 64)
    result = run_command(hub.url, *args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("minigpt: error: sha256 mismatch")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "model.safetensors").exists()


def test_the_minigpt_command_lists_the_models_it_can_fetch():
    result = subprocess.run(
        [sys.executable, "-m", "minigpt", "download", "--help"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in download.MODELS:
        assert name in result.stdout
    assert "--revision" in result.stdout and "--sha256" in result.stdout


def test_the_default_destination_is_the_checkpoints_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIGPT_HOME", str(tmp_path))
    monkeypatch.setattr(download, "download_file", lambda url, final, expected=None: None)
    args = download.parse_args(["distilgpt2"])
    assert download.download_model("distilgpt2", args) == tmp_path / "distilgpt2"


def test_docstring_examples_run(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert doctest.testmod(download).failed == 0


@given(st.integers(min_value=0, max_value=10**13))
def test_format_bytes_round_trips_within_rounding(count):
    """A printed size, read back, is within display rounding of the true byte count."""
    number, unit = download.format_bytes(count).split()
    scale = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[unit]
    assert abs(float(number) * scale - count) <= 0.05 * scale + 0.5
    assert unit == "GB" or float(number) < 1000
