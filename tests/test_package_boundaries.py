"""The architecture's rules, both ways round: decoding/ (with its pictures, decoding/render/)
needs NumPy only; the model package minigpt/ never needs the decoders or the pictures (only
its front ends join the two: the command line, minigpt/cli/, and the explorer built on it,
minigpt/explore/); and neither needs torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRONT_ENDS = {"cli", "explore"}  # the subpackages of minigpt/ that join model and decoders


def imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_decoding_imports_numpy_only():
    """decoding/ never pulls in the model, safetensors, tokenizers, torch or transformers."""
    modules = top_level(imported_after("import decoding, decoding.render, decoding.__main__"))
    forbidden = {"minigpt", "safetensors", "tokenizers", "torch", "transformers"}
    print("decoding imported:", sorted(m for m in modules if not m.startswith("_"))[:40])
    assert not modules & forbidden


def test_the_model_never_imports_the_decoders_or_the_pictures():
    """Every module of minigpt/ but the front ends, imported at once: no decoding module comes
    along."""
    package = REPO / "minigpt"
    names = [
        "minigpt." + ".".join(path.relative_to(package).with_suffix("").parts)
        for path in sorted(package.rglob("*.py"))
        if not FRONT_ENDS & set(path.relative_to(package).parts) and path.name != "__init__.py"
    ]
    names = [n for n in names if n != "minigpt.__main__"]  # it runs the CLI when imported
    modules = imported_after("import " + ", ".join(names))
    print("checked:", names)
    assert not {m for m in modules if m == "decoding" or m.startswith("decoding.")}


def test_only_the_cli_imports_decoding_in_its_source():
    """The same rule read from the source, so a lazy import inside a function is caught too."""
    offenders = []
    for path in sorted((REPO / "minigpt").rglob("*.py")):
        if FRONT_ENDS & set(path.relative_to(REPO / "minigpt").parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "decoding"]
    assert offenders == []


def test_minigpt_does_not_need_torch():
    """Loading the model and the CLI never imports the reference-only torch or transformers."""
    modules = top_level(imported_after("import minigpt, minigpt.cli, minigpt.tokenizer"))
    assert not modules & {"torch", "transformers"}


def module_imports(package: str) -> dict[str, set[str]]:
    """For each module of a package, the modules of the same package it imports (from source,
    TYPE_CHECKING blocks included: a cycle there is still a cycle for a reader)."""
    root = REPO / package
    graph: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        name = ".".join((package, *path.relative_to(root).with_suffix("").parts))
        name = name.removesuffix(".__init__")
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
        graph[name] = {m for m in found if m.startswith(package + ".") and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of `graph` as a list of modules, or [] if it has none (depth-first)."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return []
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt, path + [node])
            if cycle:
                return cycle
        done.add(node)
        return []

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return []


def test_decoding_has_no_import_cycle():
    """The imports run one way: probs -> warpers/processors -> results -> recorder -> decoders."""
    graph = module_imports("decoding")
    graph.pop("decoding", None)  # the package's __init__ gathers everything, by design
    assert find_cycle(graph) == []
    assert graph["decoding.results"] == set(), "the records import nothing from decoding/"


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_the_downloader_needs_only_the_standard_library():
    """Fetching weights must work before NumPy is installed (it is how a new user starts), so
    minigpt.download imports no third-party package; `import minigpt` itself is lazy."""
    modules = top_level(imported_after("import minigpt.download"))
    assert not modules & {"numpy", "safetensors", "tokenizers", "torch", "transformers"}
