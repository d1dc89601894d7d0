"""`minigpt explore`: serve the decoding explorer on 127.0.0.1 and open it in a browser.

    python -m minigpt explore [--model M] [--port P] [--no-browser]

The page and its JSON API are in minigpt/explore/. The model is loaded once, before the server
starts, so a bad --model is one line on stderr as for every other command.
"""

from __future__ import annotations

import argparse
import errno
import webbrowser
from typing import TextIO

from minigpt.cli.options import add_model_option
from minigpt.cli.session import open_session, print_notes
from minigpt.errors import MiniGPTError

DEFAULT_PORT = 8015


def add_explore_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_option(parser)
    port_help = f"the port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)"
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="P", help=port_help)
    parser.add_argument("--no-browser", action="store_true", help="only print the page's address")


def explore(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Load the model, start the server, open the page; Ctrl-C stops it."""
    from minigpt.explore.server import HOST, make_server

    if not 0 <= args.port <= 65535:
        raise MiniGPTError(f"--port must be between 0 and 65535, got {args.port}")
    session = open_session(args.model)
    try:
        server = make_server(session, args.port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise MiniGPTError(
                f"port {args.port} is in use; pass --port with another one (0 picks a free one)"
            ) from None
        raise
    url = f"http://{HOST}:{server.server_address[1]}/"
    print_notes(session, err)
    print(f"minigpt explore: {url} (model {session.model_dir}; Ctrl-C stops)", file=out)
    out.flush()
    if not args.no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("minigpt explore: stopped", file=err)
    finally:
        server.server_close()
    return 0
