"""Download a published GPT-2 checkpoint from the Hugging Face hub into the checkpoints directory.

    minigpt download gpt2                        # or: python -m minigpt download gpt2
    minigpt download gpt2-medium --dest /data/gpt2-medium
    python weights/scripts/download.py gpt2      # the same code, from a checkout

The checkpoint lands in checkpoints_dir()/NAME/: weights/NAME/ in a checkout, else
$MINIGPT_HOME/NAME/ or ~/.cache/minigpt/NAME/ (see minigpt/installation.py), where
`--model NAME` then finds it. Standard library only (no requests, no huggingface_hub), so it
runs before NumPy is installed. What it does, and why:

- Fetches config.json, tokenizer.json, vocab.json, merges.txt and model.safetensors from
  {HF_ENDPOINT}/{repo}/resolve/{revision}/{file}, at a pinned git revision of the hub repo, so
  every learner gets the same bytes.
- Writes each file to NAME.part and renames it only when complete (and, for the weights,
  verified), so a file at its final path is always whole.
- Resumes: if NAME.part exists (an earlier run was cut off), it asks the server for the missing
  bytes only (HTTP Range), and it retries a dropped connection the same way.
- Verifies the sha256 of model.safetensors against the value pinned below (the hub's Git LFS
  pointer for that file at that revision) before installing it.
- HF_ENDPOINT selects a mirror; HF_TOKEN is sent as "Authorization: Bearer ...", but never to a
  different host (the hub redirects weights to a CDN, which must not see the token).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from minigpt.errors import MiniGPTError
from minigpt.installation import checkpoints_dir

DEFAULT_ENDPOINT = "https://huggingface.co"
WEIGHTS_FILE = "model.safetensors"
# The small files first: a wrong revision or a missing token shows up before gigabytes move.
FILES = ("config.json", "tokenizer.json", "vocab.json", "merges.txt", WEIGHTS_FILE)
CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 30
ATTEMPTS = 3  # tries per file when the connection drops mid-transfer


@dataclass(frozen=True)
class PublishedModel:
    repo: str  # the hub repository
    revision: str  # the git commit of that repository we pin
    sha256: str  # sha256 of model.safetensors at that commit (its Git LFS oid)
    size: int | None  # bytes of model.safetensors, where a public source states it


# Revisions and hashes as published on the hub; each pair is quoted together by several public
# projects that pin these models (see the commit that added this table).
MODELS = {
    "gpt2": PublishedModel(
        "openai-community/gpt2",
        "607a30d783dfa663caf39e06633721c8d4cfcd7e",
        "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707",
        548_105_171,
    ),
    "gpt2-medium": PublishedModel(
        "openai-community/gpt2-medium",
        "6dcaa7a952f72f9298047fd5137cd6e4f05f41da",
        "fc5a354a19255ad494f3d71549390baca1ccf61d1d822b9408971705c687c9cd",
        1_519_984_962,
    ),
    "gpt2-large": PublishedModel(
        "openai-community/gpt2-large",
        "32b71b12589c2f8d625668d2335a01cac3249519",
        "5f47f3e12f91cd33b662ce7e433b6150ad5512b5884a2cee961b50e9c3bbebce",
        None,
    ),
    "gpt2-xl": PublishedModel(
        "openai-community/gpt2-xl",
        "15ea56dee5df4983c59b2538573817e1667135e2",
        "0f8b28eb05a8075f48b61b6f35332978c74fc7763fa9fb4051a1c30511736a6a",
        None,
    ),
    "distilgpt2": PublishedModel(
        "distilbert/distilgpt2",
        "2290a62682d06624634c1f46a6ad5be0f47f38aa",
        "e1ff18884359fe8beb795a5f414feb85a6ce3d929ad019c0d958c039d2b94a1b",
        352_824_413,
    ),
}


class DownloadError(MiniGPTError):
    """A failure the user can act on; main() and the `minigpt` command print it as one line."""


class TransferInterrupted(Exception):
    """The connection dropped mid-body; the .part file keeps what arrived, so we can resume."""


@dataclass(frozen=True)
class Expected:
    """What model.safetensors must be before it is installed (sha256 None = do not check)."""

    sha256: str | None
    size: int | None


# ---------------------------------------------------------------- URLs and HTTP requests


def hub_endpoint() -> str:
    """The hub's base URL: $HF_ENDPOINT (a mirror) or huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or DEFAULT_ENDPOINT


def file_url(repo: str, revision: str, filename: str) -> str:
    """The hub's download URL for one file of a repository at one revision.

    >>> file_url("openai-community/gpt2", "main", "config.json")  # with HF_ENDPOINT unset
    'https://huggingface.co/openai-community/gpt2/resolve/main/config.json'
    """
    return f"{hub_endpoint()}/{repo}/resolve/{revision}/{filename}"


def request_headers() -> dict[str, str]:
    """Headers for every request; the token rides along only if HF_TOKEN is set."""
    headers = {"User-Agent": "minigpt-download/0.1"}
    token = os.environ.get("HF_TOKEN", "").strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


class SameHostAuthRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but drop the Authorization header when the redirect leaves the host.

    The hub answers a request for model.safetensors with a redirect to a CDN. urllib would copy
    our token to the CDN; a token is meant for the host it was issued for, so we remove it.
    """

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new_request = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new_request is not None and not same_host(req.full_url, newurl):
            new_request.remove_header("Authorization")
        return new_request


def same_host(url_a: str, url_b: str) -> bool:
    """True if both URLs name the same scheme, host and port.

    >>> same_host("https://huggingface.co/a", "https://cdn-lfs.huggingface.co/b")
    False
    """
    a, b = urlsplit(url_a), urlsplit(url_b)
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())


OPENER = urllib.request.build_opener(SameHostAuthRedirectHandler)


def open_url(url: str, start: int):
    """Open url for reading from byte `start` on; raise DownloadError with a one-line reason."""
    request = urllib.request.Request(url, headers=request_headers())
    if start > 0:
        request.add_header("Range", f"bytes={start}-")
    try:
        return OPENER.open(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start > 0:
            return None  # "range not satisfiable": the .part file already holds every byte
        raise DownloadError(describe_http_error(error.code, url)) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise DownloadError(describe_network_error(error, url)) from None


def describe_http_error(code: int, url: str) -> str:
    """One line saying what an HTTP error status means here and what to do about it."""
    if code == 404:
        return f"not found (HTTP 404): {url} - check the model name, --revision and HF_ENDPOINT"
    if code in (401, 403):
        if os.environ.get("HF_TOKEN"):
            return f"access refused (HTTP {code}) for {url}: the hub rejected HF_TOKEN"
        return f"access refused (HTTP {code}) for {url}: set HF_TOKEN to a hub access token"
    return f"the server answered HTTP {code} for {url}; try again later or set HF_ENDPOINT"


def describe_network_error(error: Exception, url: str) -> str:
    """One line for a failure to reach the server at all (offline, DNS, refused, timeout)."""
    host = urlsplit(url).netloc
    reason = getattr(error, "reason", error)  # URLError wraps the socket error in .reason
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve {host}: are you offline? (HF_ENDPOINT selects a mirror)"
    if isinstance(reason, ConnectionRefusedError):
        return f"cannot connect to {host} (connection refused): offline, or HF_ENDPOINT is wrong?"
    if isinstance(reason, TimeoutError):
        return f"{host} did not answer within {TIMEOUT_SECONDS} s: check your connection"
    return f"cannot reach {host}: {reason}"


# ---------------------------------------------------------------- progress bar


def format_bytes(count: float) -> str:
    """Human-readable size in decimal units, as the hub shows sizes.

    >>> format_bytes(512), format_bytes(548_105_171)
    ('512 B', '548.1 MB')
    """
    if count < 1000:
        return f"{count:.0f} B"
    for unit in ("kB", "MB"):
        count /= 1000
        if round(count, 1) < 1000:  # so 999.97 kB prints as 1.0 MB, not 1000.0 kB
            return f"{count:.1f} {unit}"
    return f"{count / 1000:.1f} GB"


class ProgressBar:
    """A one-line progress bar on stderr: name, percent, bar, bytes done / total, speed."""

    WIDTH = 24
    # On a terminal "\r" redraws one line in place; in a log file every redraw is a new line.
    REDRAW_SECONDS = 0.1 if sys.stderr.isatty() else 5.0

    def __init__(self, label: str, total: int | None, done: int = 0):
        self.label, self.total, self.done = label, total, done
        self.started_at, self.started_with = time.monotonic(), done  # resumed bytes don't count
        self.drawn_at = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        if time.monotonic() - self.drawn_at >= self.REDRAW_SECONDS:
            self.draw()

    def finish(self) -> None:
        self.draw()
        sys.stderr.write("\n")

    def draw(self) -> None:
        self.drawn_at = time.monotonic()
        elapsed = max(self.drawn_at - self.started_at, 1e-6)
        speed = format_bytes((self.done - self.started_with) / elapsed) + "/s"
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            filled = int(fraction * self.WIDTH)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            size = f"{format_bytes(self.done)} / {format_bytes(self.total)}"
            line = f"{self.label:<18} {fraction:4.0%} [{bar}] {size}  {speed}"
        else:
            line = f"{self.label:<18} {format_bytes(self.done)}  {speed}"
        sys.stderr.write("\r" + line.ljust(79))
        sys.stderr.flush()


# ---------------------------------------------------------------- downloading one file


def part_path(final: Path) -> Path:
    """Where a file grows while it downloads: model.safetensors -> model.safetensors.part."""
    return final.with_name(final.name + ".part")


def fetch_into_part(url: str, part: Path) -> None:
    """Bring part up to the whole file at url, asking only for the bytes it lacks.

    Raises TransferInterrupted if the connection drops; what arrived stays in part.
    """
    have = part.stat().st_size if part.exists() else 0
    response = open_url(url, start=have)
    if response is None:
        return  # the server says there is nothing after byte `have`: part is complete
    with response:
        if response.status != 206:  # the server ignored Range and sends everything
            have = 0
        total = body_total(response, have)
        part.parent.mkdir(parents=True, exist_ok=True)  # only now: no empty dirs when offline
        with part.open("ab" if have else "wb") as out:
            copy_body(response, out, ProgressBar(part.name.removesuffix(".part"), total, have))
    received = part.stat().st_size
    if total is not None and received < total:
        raise TransferInterrupted(f"got {format_bytes(received)} of {format_bytes(total)}")


def body_total(response, start: int) -> int | None:
    """The full file size, from Content-Range (resumed) or Content-Length (from scratch)."""
    content_range = response.headers.get("Content-Range", "")  # "bytes 100-999/1000"
    if "/" in content_range and not content_range.endswith("/*"):
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return start + int(length) if length is not None else None


def copy_body(response, out, progress: ProgressBar) -> None:
    """Stream the response body into out, chunk by chunk, advancing the progress bar."""
    try:
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as error:
                raise TransferInterrupted(str(error) or type(error).__name__) from None
            if not chunk:
                return
            out.write(chunk)
            progress.advance(len(chunk))
    finally:
        progress.finish()


def fetch_with_retries(url: str, part: Path) -> None:
    """fetch_into_part, resuming up to ATTEMPTS times if the connection drops."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return fetch_into_part(url, part)
        except TransferInterrupted as why:
            if attempt == ATTEMPTS:
                raise DownloadError(
                    f"download of {part.name.removesuffix('.part')} interrupted ({why}); "
                    "run the same command again to resume"
                ) from None
            print(f"connection lost ({why}); resuming", file=sys.stderr)
            time.sleep(0.5 * attempt)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so a 6 GB file needs no 6 GB of memory."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify(part: Path, expected: Expected) -> None:
    """Check a finished download; on mismatch delete it (never resume bad bytes) and raise."""
    name = part.name.removesuffix(".part")
    size = part.stat().st_size
    if expected.size is not None and size != expected.size:
        part.unlink()
        raise DownloadError(f"{name} has {size:,} bytes, expected {expected.size:,}; deleted it")
    if expected.sha256 is None:
        return
    print(f"checking sha256 of {name} ...", file=sys.stderr)
    actual = sha256_of(part)
    if actual != expected.sha256:
        part.unlink()
        raise DownloadError(
            f"sha256 mismatch for {name}: got {actual}, expected {expected.sha256}; "
            "deleted the download (a corrupt mirror or a changed file upstream?)"
        )


def download_file(url: str, final: Path, expected: Expected | None = None) -> None:
    """Download url to final via final.part: resume, verify if asked, then rename."""
    if final.exists():
        print(f"{final.name}: already present, skipped", file=sys.stderr)
        return
    part = part_path(final)
    fetch_with_retries(url, part)
    if expected is not None:
        verify(part, expected)
    os.replace(part, final)  # atomic: the final path holds either nothing or the whole file


# ---------------------------------------------------------------- the command line


def expected_weights(model: PublishedModel, revision: str, args: argparse.Namespace) -> Expected:
    """What model.safetensors must hash to, or a DownloadError if we cannot know it."""
    if args.sha256:
        if not is_sha256(args.sha256):
            raise DownloadError(f"--sha256 {args.sha256!r} is not 64 hexadecimal digits")
        return Expected(args.sha256.lower(), None)
    if args.no_verify:
        print("warning: --no-verify: installing model.safetensors unchecked", file=sys.stderr)
        return Expected(None, None)
    if revision != model.revision:
        raise DownloadError(
            f"no sha256 is pinned for revision {revision} (only for {model.revision}), so "
            "model.safetensors could not be verified: pass --sha256 HEX, or --no-verify to "
            "install it unchecked"
        )
    return Expected(model.sha256, model.size)


def is_sha256(text: str) -> bool:
    """True for a hex sha256 digest: 64 characters from 0-9a-f."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower())


def download_model(name: str, args: argparse.Namespace) -> Path:
    """Fetch every file of one published model into its destination directory."""
    model = MODELS[name]
    revision = args.revision or model.revision
    expected = expected_weights(model, revision, args)  # refuse before downloading, not after
    dest = Path(args.dest).expanduser() if args.dest else checkpoints_dir() / name
    print(f"{name}: {model.repo} at {revision} -> {dest}", file=sys.stderr)
    for filename in FILES:
        url = file_url(model.repo, revision, filename)
        download_file(url, dest / filename, expected if filename == WEIGHTS_FILE else None)
    return dest


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options, shared by this module's own main() and `minigpt download`."""
    parser.add_argument("name", choices=sorted(MODELS), help="which model")
    parser.add_argument("--revision", help="hub git revision (default: the pinned commit)")
    parser.add_argument("--dest", help=f"directory to fill (default: {checkpoints_dir()}/NAME)")
    parser.add_argument("--sha256", help="expected sha256 of model.safetensors (for --revision)")
    parser.add_argument("--no-verify", action="store_true", help="install unverified weights")
    return parser


DESCRIPTION = "Download a published GPT-2 checkpoint (resumable, sha256-verified)."
ENVIRONMENT = "HF_ENDPOINT (a hub mirror), HF_TOKEN (an access token), MINIGPT_HOME (see --dest)."


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION, epilog="Environment: " + ENVIRONMENT)
    return add_arguments(parser).parse_args(argv)


def command(args: argparse.Namespace, out, err) -> int:
    """Download what `args` asks for: `minigpt download NAME` (minigpt/cli/ prints a
    DownloadError as its one error line) and main() below."""
    try:
        dest = download_model(args.name, args)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=err)
        return 130
    print(f"done: {dest}", file=err)
    return 0


def main(argv: list[str] | None = None) -> int:
    """weights/scripts/download.py and `python -m minigpt.download`."""
    args = parse_args(argv)
    try:
        return command(args, sys.stdout, sys.stderr)
    except DownloadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
