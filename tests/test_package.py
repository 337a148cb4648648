"""The import rules of ARCHITECTURE.md, read from the sources' syntax trees (imports inside
functions count too) and checked against what Python really loads."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

LIBRARY = REPO / "cnn_core"
APP_FILES = [REPO / "app.py", *sorted((REPO / "pages").glob("*.py"))]
BENCHMARK_FILES = sorted((REPO / "benchmarks").glob("*.py"))
# Above the library: what it must never import (the app, the benchmarks, the tests, the UI toolkit).
NOT_FOR_THE_LIBRARY = ("streamlit", "app", "pages", "benchmarks", "tests", "conftest")
MAX_FUNCTION_LINES = 50
# Declarative tables, allowed to be long: the CLI's argument table and the card's literal.
DECLARATIVE = {"cli.py:build_parser", "cards.py:model_card"}


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every module a file imports, anywhere in it, as absolute dotted names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y / from . import x
                base = package or ""
                if node.module:
                    found.add(f"{base}.{node.module}")
                else:
                    found.update(f"{base}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def library_graph() -> dict[str, set[str]]:
    """cnn_core module → the cnn_core modules it imports."""
    modules = {p.stem for p in LIBRARY.glob("*.py")}
    graph = {}
    for path in LIBRARY.glob("*.py"):
        targets = {name.split(".")[1] for name in imported_modules(path, "cnn_core")
                   if name.startswith("cnn_core.") and name.split(".")[1] in modules}
        graph[path.stem] = targets - {path.stem}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, colouring nodes)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles_through_function_level_imports(tmp_path):
    (tmp_path / "low.py").write_text("def late():\n    from .high import thing\n")
    (tmp_path / "high.py").write_text("from .low import late\n")
    graph = {p.stem: {n.split(".")[1] for n in imported_modules(p, "pkg")} for p in tmp_path.glob("*.py")}
    assert find_cycle(graph) in (["high", "low", "high"], ["low", "high", "low"])
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_library_has_no_import_cycle():
    cycle = find_cycle(library_graph())
    assert cycle is None, "import cycle in cnn_core: " + " → ".join(cycle)


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.py")), ids=lambda p: p.name)
def test_the_library_never_imports_the_app_the_benchmarks_or_streamlit(path):
    bad = sorted(name for name in imported_modules(path, "cnn_core")
                 if name.split(".")[0] in NOT_FOR_THE_LIBRARY)
    assert bad == [], f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", APP_FILES + BENCHMARK_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_app_and_the_benchmarks_reach_the_engine_only_through_cnn_core(path):
    names = {name.split(".")[0] for name in imported_modules(path, path.parent.name)}
    if path in APP_FILES:  # the app may not lean on the benchmarks (they write beside the models instead)
        assert "benchmarks" not in names and "tests" not in names, path
    else:  # the benchmarks drive the engine and the app's pages from outside, never import them
        assert "pages" not in names and "app" not in names and "tests" not in names, path


def test_no_library_function_is_longer_than_a_screen():
    long = []
    for path in sorted(LIBRARY.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and f"{path.name}:{node.name}" not in DECLARATIVE:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert long == []


def test_importing_every_library_module_loads_no_streamlit_app_or_benchmarks():
    modules = ", ".join(f"cnn_core.{p.stem}" for p in sorted(LIBRARY.glob("*.py")) if p.stem != "__main__")
    code = (f"import sys, {modules}; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {NOT_FOR_THE_LIBRARY!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
