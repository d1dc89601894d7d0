"""docs/scores.md: its tables are what docs/build_scores.py prints on the bundled model now,
and the page is linked from the README and docs/design.md."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("build_scores", REPO / "docs/build_scores.py")
build_scores = importlib.util.module_from_spec(_spec)
sys.modules["build_scores"] = build_scores  # its dataclass looks its module up by name
_spec.loader.exec_module(build_scores)


def test_the_page_is_what_a_fresh_run_prints():
    # The build also asserts every relation the page states (score = float32 sum of the
    # transition scores / n ** length_penalty, logprob = sum of token_logprobs, ...).
    assert build_scores.main(["--check"]) == 0, "run: python docs/build_scores.py"


def test_a_stale_table_is_noticed(tmp_path, monkeypatch):
    page = build_scores.DOC.read_text(encoding="utf-8")
    stale = tmp_path / "scores.md"
    stale.write_text(page.replace("| `.␣In␣the␣dream,␣he` |", "| `.␣In␣the␣dream,␣she` |", 1))
    monkeypatch.setattr(build_scores, "DOC", stale)
    assert build_scores.main(["--check"]) == 1


def test_every_block_of_the_page_is_generated():
    page = build_scores.DOC.read_text(encoding="utf-8")
    names = [m["name"] for m in build_scores.BLOCK.finditer(page)]
    assert len(names) >= 7
    for name in names:
        assert hasattr(build_scores, "block_" + name.replace("-", "_")), name


def test_the_page_is_linked_from_the_readme_and_the_design_notes():
    assert "docs/scores.md" in (REPO / "README.md").read_text(encoding="utf-8")
    assert "scores.md" in (REPO / "docs/design.md").read_text(encoding="utf-8")


def test_every_number_the_prose_quotes_is_in_a_generated_table():
    # The prose is hand-written: a number it quotes must still be one the tables print, so a
    # rebuilt table cannot leave the text behind.
    page = build_scores.DOC.read_text(encoding="utf-8")
    tables = "".join(m["body"] for m in build_scores.BLOCK.finditer(page))
    prose = build_scores.BLOCK.sub("", page)
    quoted = re.findall(r"-?\d+\.\d{4}", prose)
    assert quoted, "the prose quotes no number: this test checks nothing"
    for number in quoted:
        assert number in tables, f"{number} is quoted but no table prints it"
