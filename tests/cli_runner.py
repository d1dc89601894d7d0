"""Run `python -m minigpt` as a user would, from a directory of the test's choosing, and check
that a refused command failed the way the project promises: exit status 1, exactly one line
on stderr, no traceback, nothing on stdout, and no file left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_minigpt(args: list, cwd: Path, text: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """`python -m minigpt ARGS` in `cwd`, the repository importable from there. With
    text=False the arguments and output are bytes (for input that is not UTF-8)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "minigpt", *args],
        capture_output=True,
        text=text,
        cwd=cwd,
        env=env,
        timeout=120,
        **kwargs,
    )


def assert_one_line_error(done: subprocess.CompletedProcess, cwd: Path, *words: str) -> str:
    """Exit 1, nothing on stdout, one stderr line naming `words`, and no file left in cwd."""
    err = done.stderr if isinstance(done.stderr, str) else done.stderr.decode("utf-8", "replace")
    print(err)
    assert done.returncode == 1, err
    assert not done.stdout, "text was printed before the error"
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("minigpt: error: ")
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    assert list(cwd.iterdir()) == [], "a file was left behind"
    return err


def run_in_process(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `minigpt ARGV` run in this process (fast), with
    argparse's exits counted as statuses. `capsys` is pytest's capture fixture."""
    from minigpt import cli

    try:
        status = cli.main(list(argv))
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err
