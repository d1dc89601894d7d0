"""`python -m minigpt ...` and the installed `minigpt` command both start here.

The command line itself lives in minigpt/cli/. This file only imports it inside a guard: the
import loads NumPy and the tokenizer library, which takes a moment, and a Ctrl-C in that moment
should end the program quietly (exit status 130, the shell's code for Ctrl-C), not with a
traceback through the import machinery.
"""

from __future__ import annotations

import sys

INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a program stopped by Ctrl-C


def main(argv: list[str] | None = None) -> int:
    try:
        from minigpt.cli import main as cli_main
    except KeyboardInterrupt:
        print("minigpt: interrupted", file=sys.stderr)
        return INTERRUPTED
    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
