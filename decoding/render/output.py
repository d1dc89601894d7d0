"""Write a picture: the DOT text always, and SVG/PNG/PDF through Graphviz's `dot` if installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DOT_SUFFIXES = (".dot", ".gv")
RENDERED_SUFFIXES = (".svg", ".png", ".pdf")
INSTALL_HINT = "install Graphviz (apt-get install graphviz, brew install graphviz)"


class PictureError(ValueError):
    """A picture that cannot be written: its one-line message says why and what to do.

    (A ValueError, like every decoding/ error, so that callers catch one kind of mistake.)
    """


def dot_available() -> bool:
    """True if Graphviz's `dot` program is on the PATH."""
    return shutil.which("dot") is not None


def check_picture_path(path: str | Path) -> Path:
    """The path, if its extension is one we can write; else a one-line PictureError."""
    path = Path(path)
    if path.suffix.lower() not in DOT_SUFFIXES + RENDERED_SUFFIXES:
        known = ", ".join(DOT_SUFFIXES + RENDERED_SUFFIXES)
        raise PictureError(f"{path}: unknown picture type {path.suffix!r}; use one of {known}")
    return path


def save_picture(dot_text: str, path: str | Path) -> tuple[list[Path], str]:
    """Write `dot_text` to `path` (.dot/.gv), or render it there (.svg/.png/.pdf).

    Rendering also keeps the DOT text next to the picture (same name, .dot). Returns the files
    written and a note for the user ("" if everything asked for was written): without
    Graphviz only the .dot file is written, and the note says how to get the picture.
    """
    path = check_picture_path(path)
    if path.suffix.lower() in DOT_SUFFIXES:
        path.write_text(dot_text, encoding="utf-8")
        return [path], ""
    dot_path = path.with_suffix(".dot")
    dot_path.write_text(dot_text, encoding="utf-8")
    if not dot_available():
        note = (
            f"wrote {dot_path}, but not {path}: Graphviz's `dot` is not installed; "
            f"{INSTALL_HINT}, then run: dot -T{path.suffix[1:].lower()} {dot_path} -o {path}"
        )
        return [dot_path], note
    render(dot_path, path)
    return [dot_path, path], ""


def render(dot_path: Path, out_path: Path) -> None:
    """Run `dot -T<format>` on a DOT file; a Graphviz failure becomes a one-line error."""
    fmt = out_path.suffix.lower()[1:]
    done = subprocess.run(
        ["dot", f"-T{fmt}", str(dot_path), "-o", str(out_path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        reason = " ".join(done.stderr.split())[:200] or f"exit status {done.returncode}"
        raise PictureError(f"Graphviz could not render {dot_path} to {out_path}: {reason}")
