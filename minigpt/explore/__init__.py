"""`minigpt explore`: a local web page that steps through any decoder's trace.

    python -m minigpt explore            # then open http://127.0.0.1:8015/

The page draws only what a decoder recorded: the server runs a request through the command
line's own code (the strategy table, `minigpt generate`'s request building) with trace=True
and answers with the same trace JSON that `minigpt generate --trace FILE` writes. The run goes
on in the background while the page asks for its steps one at a time, each answered as soon as
the decoder has recorded it. Where to look:

    api.py       a JSON request -> the `minigpt generate` flags it means -> a traced run -> JSON
    server.py    the HTTP server (standard library, 127.0.0.1 only): routes, limits, cancel
    runs.py      a run in the background, its steps served while the decoder is still going
    static/      the page: index.html, explore.css, explore.js (no build step, no CDN)
"""
