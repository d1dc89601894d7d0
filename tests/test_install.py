"""minigpt installed from its wheel works anywhere, and a checkout is told apart from an install.

The slow test does what a user does: build the sdist and, from it, the wheel; install the wheel
into a fresh venv (no --system-site-packages, so a missing dependency shows); then run the
commands from an empty directory far from this checkout. It checks that everything the
commands need came in the wheel, and that they write nothing into the installed package:
downloads and the random stand-in go to ~/.cache/minigpt/. `make install-check` runs it, and
CI runs that; it needs PyPI (or pip's cache) for setuptools, numpy, safetensors and tokenizers.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import pytest
from test_download import CHECKPOINT, REVISION, WEIGHTS_SHA256, StubHub

import minigpt.installation as installation
from minigpt import cli

REPO = Path(__file__).resolve().parents[1]
VERSION = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M)[1]
BUNDLED = [
    "minigpt/data/minigpt-tiny/config.json",
    "minigpt/data/minigpt-tiny/model.safetensors",
    "minigpt/data/minigpt-tiny/tokenizer.json",
    "minigpt/data/minigpt-tiny/MODEL_CARD.md",
    "minigpt/data/minigpt-tiny-draft/config.json",
    "minigpt/data/minigpt-tiny-draft/model.safetensors",
    "minigpt/data/minigpt-tiny-draft/tokenizer.json",
    "minigpt/data/minigpt-tiny-draft/MODEL_CARD.md",
    "minigpt/data/gpt2-tokenizer/vocab.json",
    "minigpt/data/gpt2-tokenizer/merges.txt",
    "minigpt/data/gpt2-tokenizer/README.md",
    "minigpt/make_random.py",
    "minigpt/download.py",
    "minigpt/explore/static/index.html",
    "minigpt/explore/static/explore.js",
    "minigpt/explore/static/explore.css",
]


# ---------------------------------------------------------------- checkout or installed


def fake_package(root: Path, pyproject: str | None, weights: bool) -> Path:
    """A folder laid out like minigpt/ inside `root`, with or without a checkout around it."""
    (root / "minigpt").mkdir(parents=True)
    if pyproject is not None:
        (root / "pyproject.toml").write_text(pyproject)
    if weights:
        (root / "weights" / "scripts").mkdir(parents=True)
    return root / "minigpt"


def test_this_repository_is_a_checkout():
    assert installation.checkout_root() == REPO


@pytest.mark.parametrize(
    ("pyproject", "weights", "is_checkout"),
    [
        ('[project]\nname = "minigpt"\n', True, True),
        ('[project]\nname = "minigpt"\n', False, False),  # a stray pyproject.toml
        ('[project]\nname = "other"\n', True, False),  # some other project's checkout
        (None, True, False),  # site-packages with a package named weights beside minigpt
    ],
)
def test_a_checkout_needs_both_its_pyproject_and_weights(tmp_path, pyproject, weights, is_checkout):
    package = fake_package(tmp_path / "site-packages", pyproject, weights)
    expected = tmp_path / "site-packages" if is_checkout else None
    assert installation.checkout_root(package) == expected


def test_checkpoints_go_to_minigpt_home_then_weights_then_the_user_cache(tmp_path, monkeypatch):
    for variable in ("MINIGPT_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert installation.checkpoints_dir() == REPO / "weights"  # a checkout
    monkeypatch.setattr(installation, "checkout_root", lambda: None)  # installed
    assert installation.checkpoints_dir() == tmp_path / "home" / ".cache" / "minigpt"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert installation.checkpoints_dir() == tmp_path / "xdg" / "minigpt"
    monkeypatch.setenv("MINIGPT_HOME", str(tmp_path / "mine"))
    assert installation.checkpoints_dir() == tmp_path / "mine"


def test_version_comes_from_the_metadata_else_the_checkout(monkeypatch):
    assert installation.version() == importlib.metadata.version("minigpt") == VERSION

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert installation.version() == f"{VERSION} (from a checkout, not installed)"
    monkeypatch.setattr(installation, "checkout_root", lambda: None)
    assert installation.version() == "unknown (not installed)"


def test_minigpt_version(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"minigpt {VERSION}\n"


# ---------------------------------------------------------------- the wheel, installed


def run(command: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


def copy_sources(destination: Path) -> Path:
    """The checkout's files as git sees them (tracked, or new and not ignored), so that no
    build/ left over from an earlier build and no downloaded checkpoint can slip in."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], REPO)
    for name in filter(None, listed.stdout.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not there
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def new_venv(path: Path, *packages: str) -> Path:
    """A fresh venv without pip (this venv's pip installs into it: seconds, not ensurepip's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "venv", "--without-pip", path], path.parent)
    python = path / "bin" / "python"
    if packages:
        pip_install(python, *packages)
    return python


def pip_install(python: Path, *what: str) -> None:
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", *what], python.parent)


def build_sdist_then_wheel(sources: Path, out: Path) -> tuple[Path, Path]:
    """The sdist, then the wheel built from the unpacked sdist: the two calls that pip and
    `python -m build` make to setuptools, so a file missing from the sdist fails here too."""
    builder = new_venv(out / "build-venv", "setuptools>=77")
    call = "import sys; from setuptools import build_meta as b; print(b.build_{}(sys.argv[1]))"
    sdist = out / run([builder, "-c", call.format("sdist"), out], sources).stdout.split()[-1]
    with tarfile.open(sdist) as archive:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(out / "unpacked", **safe)
    unpacked = out / "unpacked" / sdist.name.removesuffix(".tar.gz")
    wheel = out / run([builder, "-c", call.format("wheel"), out], unpacked).stdout.split()[-1]
    return sdist, wheel


def files_under(directory: Path) -> set[str]:
    """Every file below `directory`, but Python's bytecode caches, which the interpreter
    writes by itself on import and which are not ours."""
    return {
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def user_env(home: Path, venv: Path, **extra: str) -> dict[str, str]:
    """A user's environment: a fresh HOME, the venv first on PATH, nothing pointing back here."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    for variable in ("PYTHONPATH", "MINIGPT_HOME", "XDG_CACHE_HOME", "HF_HOME", "HF_HUB_CACHE"):
        env.pop(variable, None)
    env.update(HOME=str(home), PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", COLUMNS="200")
    return env | extra


def check_explore_serves_its_page(work: Path, env: dict) -> None:
    """`minigpt explore` from the installed wheel: its page, its script, one run; Ctrl-C ends it."""
    command = ["minigpt", "explore", "--port", "0", "--no-browser"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    server = subprocess.Popen(command, cwd=work, env=env, **pipes)
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", server.stdout.readline())[0]
        with urllib.request.urlopen(url, timeout=60) as page:
            assert b"/static/explore.js" in page.read()
        with urllib.request.urlopen(url + "static/explore.js", timeout=60) as script:
            assert b"/api/steps" in script.read()  # what the page asks a run for
        run = urllib.request.Request(url + "api/run", data=b'{"prompt": "hi", "max_new_tokens": 2}',
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(run, timeout=60) as answer:
            assert len(json.loads(answer.read())["trace"]["steps"]) == 2
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 0 and "stopped" in err, err


@pytest.mark.slow
def test_the_wheel_installs_and_runs_from_anywhere_writing_nothing_into_site_packages(tmp_path):
    sdist, wheel = build_sdist_then_wheel(copy_sources(tmp_path / "src"), tmp_path / "dist")

    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "pyproject.toml", "README.md", *BUNDLED} <= in_sdist
    leaked = {n for n in in_sdist if n.startswith(("tests/", ".venv", "weights/", ".git"))}
    assert not leaked, f"the sdist holds {sorted(leaked)[:5]}"

    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert set(BUNDLED) <= in_wheel, sorted(set(BUNDLED) - in_wheel)
    dist_info = f"minigpt-{VERSION}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in in_wheel
    top_level = {name.split("/")[0] for name in in_wheel}
    assert top_level == {"minigpt", "decoding", dist_info}, top_level

    venv = tmp_path / "venv"
    python = new_venv(venv)
    pip_install(python, wheel)
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    installed = Path(run([python, "-c", purelib], tmp_path).stdout.strip()) / "minigpt"
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    env = user_env(home, venv)
    before = files_under(venv)

    def minigpt(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return run(["minigpt", *args], work, env | extra)

    assert minigpt("--version").stdout == f"minigpt {VERSION}\n"
    load = "import minigpt; print(minigpt.__file__, minigpt.load('minigpt-tiny').config.vocab_size)"
    loaded = run([python, "-c", load], work, env)
    assert loaded.stdout.split() == [str(installed / "__init__.py"), "1478"]
    demo = minigpt("demo")
    assert "greedy search" in demo.stdout and "RANDOM" not in demo.stdout + demo.stderr
    assert minigpt("generate", "hi", "--max-new-tokens", "5").stdout.startswith("hi")
    assert "perplexity" in minigpt("score", "hi").stdout
    assert "--no-browser" in minigpt("explore", "--help").stdout
    check_explore_serves_its_page(work, env)

    # `minigpt download` fills ~/.cache/minigpt/gpt2/, where --model gpt2 will look.
    with StubHub() as hub:
        hub.serve_checkpoint(CHECKPOINT)
        minigpt("download", "gpt2", "--revision", REVISION, "--sha256", WEIGHTS_SHA256,
                HF_ENDPOINT=hub.url)  # fmt: skip
    cache = home / ".cache" / "minigpt"
    assert sorted(p.name for p in (cache / "gpt2").iterdir()) == sorted(CHECKPOINT)

    # Without the bundled model, the random stand-in is built in the user's cache too.
    shutil.rmtree(installed / "data" / "minigpt-tiny")
    before -= {f for f in before if "data/minigpt-tiny/" in f}  # not the draft beside it
    noise = minigpt("generate", "hi", "--max-new-tokens", "3")
    assert "RANDOM" in noise.stderr and str(cache / "random-demo") in noise.stderr
    assert (cache / "random-demo" / "model.safetensors").is_file()

    assert files_under(venv) == before, "something was written into the venv"
    assert list(work.iterdir()) == [], "something was written into the working directory"
