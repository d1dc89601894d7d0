"""Where minigpt's files live, whether it runs from a git checkout or from an installed wheel.

There are two kinds of files, and they live in different places:

- Data that ships inside the package, in minigpt/data/: the bundled model (minigpt-tiny) and
  GPT-2's vocabulary (gpt2-tokenizer). It is found with importlib.resources, the same way
  whether minigpt/ sits in a checkout or in site-packages, and it is only ever read.
- Checkpoints that a user downloads (`minigpt download gpt2`) or that minigpt builds (the random
  stand-in for the bundled model). In a checkout these go to the repository's weights/NAME/,
  next to the scripts that make them. An installed minigpt writes them to a directory of the
  user's instead: $MINIGPT_HOME if set, else $XDG_CACHE_HOME/minigpt, else ~/.cache/minigpt.
  Nothing is ever written into site-packages: it may be read-only or shared by several users,
  and `pip uninstall` would leave behind whatever it did not install itself.

Only the standard library is used here, so that the downloader can run before NumPy is there.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import os
import re
from pathlib import Path

from minigpt.errors import MiniGPTError

PACKAGE = "minigpt"
# The line of pyproject.toml that names this project; see checkout_root.
PROJECT_NAME_LINE = re.compile(r'^name\s*=\s*"minigpt"\s*$', re.MULTILINE)


def data_dir(name: str) -> Path:
    """A folder of the package's bundled data, minigpt/data/NAME/, as a real directory.

    >>> data_dir("gpt2-tokenizer").parts[-3:]
    ('minigpt', 'data', 'gpt2-tokenizer')
    """
    folder = importlib.resources.files(PACKAGE) / "data" / name
    # A normal install (and a checkout) gives a pathlib.Path. A package imported from a zip
    # archive would not, and its model.safetensors could not be memory-mapped.
    if not isinstance(folder, Path):
        raise MiniGPTError(
            f"minigpt's bundled data is inside an archive ({folder}); install minigpt unzipped"
        )
    return folder


def checkout_root(package_dir: Path | None = None) -> Path | None:
    """The repository's root if minigpt is imported from a git checkout, else None.

    In a checkout (an editable install, or running from the repository) minigpt/ sits next to
    the project's pyproject.toml and its weights/ folder of scripts. An installed minigpt sits
    in site-packages, next to other packages and never next to a pyproject.toml naming the
    project "minigpt" AND a weights/ folder: both are checked, so that neither a stray
    pyproject.toml nor a stray weights/ folder beside site-packages can fool it.
    `package_dir` is where minigpt/ is (default: this package's; tests pass others).
    """
    root = (package_dir or Path(__file__).parent).resolve().parent
    pyproject = root / "pyproject.toml"
    if not (pyproject.is_file() and (root / "weights").is_dir()):
        return None
    try:
        names_minigpt = PROJECT_NAME_LINE.search(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    return root if names_minigpt else None


def checkpoints_dir() -> Path:
    """Where downloaded and built checkpoints go: one folder per model name inside it.

    $MINIGPT_HOME if set (checkout or not); else weights/ in a checkout; else
    $XDG_CACHE_HOME/minigpt or ~/.cache/minigpt. It is only created when something is written.
    """
    explicit = os.environ.get("MINIGPT_HOME", "").strip()
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    root = checkout_root()
    if root is not None:
        return root / "weights"
    cache_home = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
    return Path(os.path.expandvars(cache_home)).expanduser() / "minigpt"


def version() -> str:
    """minigpt's version: from the installed package's metadata, else the checkout's
    pyproject.toml (running from a checkout that was never pip-installed), else "unknown".

    >>> version() != ""
    True
    """
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        pass
    root = checkout_root()
    if root is not None:
        found = re.search(r'^version\s*=\s*"([^"]+)"', (root / "pyproject.toml").read_text(), re.M)
        if found:
            return found[1] + " (from a checkout, not installed)"
    return "unknown (not installed)"
