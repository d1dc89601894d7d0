#!/usr/bin/env bash
# Render the pictures with Graphviz, in CI: every DOT file under docs/img must render to SVG,
# and the render tests must run (MINIGPT_REQUIRE_DOT=1 turns "dot is not installed" from a
# skip into a failure). Needs Graphviz's `dot` (apt-get install -y graphviz) and the .venv
# that `make setup` builds.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

if ! command -v dot >/dev/null; then
    echo "render_check: Graphviz's dot is not installed (apt-get install -y graphviz)" >&2
    exit 1
fi

shopt -s nullglob
pictures=(docs/img/*.dot)
if [ ${#pictures[@]} -eq 0 ]; then
    echo "render_check: no docs/img/*.dot: run python docs/build_walkthrough.py" >&2
    exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for picture in "${pictures[@]}"; do
    dot -Tsvg "$picture" -o "$out/$(basename "$picture" .dot).svg"
done
echo "render_check: rendered $(ls "$out" | wc -l) pictures from docs/img/*.dot"

MINIGPT_REQUIRE_DOT=1 "$PYTHON" -m pytest -q \
    tests/test_render.py tests/test_cli.py tests/test_walkthrough.py \
    -k "graphviz or save_picture or svg or pictures"
