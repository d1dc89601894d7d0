"""Every file path the code, tests and docs mention exists in the repository.

A learner who clones the repo follows these references; one that points at a file that moved
(or at the team's notes outside the repo) is a dead end. Paths are found as words that look like
a repo path: they start with a top-level folder of the repo and end in a file extension.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOP = ("minigpt", "decoding", "tests", "docs", "weights", "benchmarks", ".ci")
PATH = re.compile(
    r"(?<![\w/.-])((?:"
    + "|".join(re.escape(t) for t in TOP)
    + r")/[\w./-]*\.(?:py|md|json|sh|txt|svg|dot|safetensors))"
)
# Paths that are not files of this repo: what a command creates, and HF's own test file.
NOT_OURS = {
    "weights/gpt2/model.safetensors",  # python -m minigpt download gpt2
    "weights/corpus/stories.txt",  # weights/scripts/make_corpus.py
    "tests/generation/test_logits_process.py",  # in the transformers repository
    "tests/generation/test_stopping_criteria.py",  # in the transformers repository
}


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout
    return [
        REPO / p
        for p in out.split()
        if p.endswith((".py", ".md", ".sh", ".toml", "Makefile", "run"))
    ]


def test_every_mentioned_path_exists():
    missing = []
    for path in tracked_text_files():
        if not path.is_file():
            continue  # deleted in the working tree but still tracked
        for match in PATH.finditer(path.read_text(encoding="utf-8", errors="replace")):
            ref = match.group(1).rstrip(".")
            if ref in NOT_OURS or "*" in ref or "NAME" in ref:
                continue
            if not (REPO / ref).exists():
                missing.append(f"{path.relative_to(REPO)} mentions {ref}")
    assert missing == [], "\n".join(missing)


def test_nothing_points_outside_the_repository():
    """The team's reference notes live outside the repo; nothing here may send a reader there."""
    offenders = []
    for path in tracked_text_files():
        if path.is_file() and path.name != "test_doc_references.py":
            text = path.read_text(encoding="utf-8", errors="replace")
            if "../shared" in text or "decoding-spec.md" in text:
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
