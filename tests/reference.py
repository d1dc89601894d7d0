"""Access to the reference implementation (torch + transformers) for parity tests.

Parity tests are the proof that minigpt is exact, so they must never pass by being skipped
where it matters: CI sets MINIGPT_REQUIRE_REFERENCE=1, which turns a missing torch or
transformers into a failure. On a learner's machine without them they are reported as skipped.
"""

from __future__ import annotations

import os

import pytest


def require_reference():
    """Return (torch, transformers), or skip (fail under MINIGPT_REQUIRE_REFERENCE=1)."""
    try:
        import torch
        import transformers
    except ImportError as e:
        message = (
            f"reference parity test needs torch + transformers ({e}): pip install -e .[reference]"
        )
        if os.environ.get("MINIGPT_REQUIRE_REFERENCE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    torch.manual_seed(0)
    return torch, transformers
