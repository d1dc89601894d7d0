"""The architecture's one rule: decoding/ needs NumPy only, and neither package needs torch."""

from __future__ import annotations

import subprocess
import sys


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


def test_decoding_imports_numpy_only():
    """decoding/ never pulls in the model, safetensors, tokenizers, torch or transformers."""
    modules = imported_after("import decoding")
    forbidden = {"minigpt", "safetensors", "tokenizers", "torch", "transformers"}
    print("decoding imported:", sorted(m for m in modules if not m.startswith("_"))[:40])
    assert not modules & forbidden


def test_minigpt_does_not_need_torch():
    """Loading the model and the CLI never imports the reference-only torch or transformers."""
    modules = imported_after("import minigpt, minigpt.cli, minigpt.tokenizer")
    assert not modules & {"torch", "transformers"}
