"""The import rules of ARCHITECTURE.md, read from the sources' syntax trees (imports inside
functions count too) and checked against what Python really loads."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

LIBRARY = REPO / "cnn_core"
APP_FILES = [REPO / "app.py", *sorted((REPO / "app_pages").rglob("*.py"))]
BENCHMARK_FILES = sorted((REPO / "benchmarks").rglob("*.py"))
# Above the library: what it must never import (the app, the benchmarks, the tests, the UI toolkit).
NOT_FOR_THE_LIBRARY = ("streamlit", "app", "app_pages", "benchmarks", "tests", "conftest")
MAX_FUNCTION_LINES = 50
# Declarative tables, allowed to be long: the CLI's argument table and the card's literal.
DECLARATIVE = {"cli.py:build_parser", "cards.py:model_card"}
# cnn_core's subpackages, bottom to top: each may import only those before it (and itself).
# The modules at the top (cli, __main__, __init__) may import any of them.
PACKAGE_ORDER = ("base", "data", "nets", "predict", "analysis", "train", "studio", "teach", "service", "export")
TOP_LEVEL = {"__init__", "__main__", "cli"}


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


def library_files() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def module_name(path: Path) -> str:
    """cnn_core/train/recipes.py → cnn_core.train.recipes; a package's __init__ → the package."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    """The module's own package (for relative imports)."""
    return ".".join(path.relative_to(REPO).parts[:-1])


def library_modules() -> dict[str, Path]:
    return {module_name(p): p for p in library_files()}


def library_graph() -> dict[str, set[str]]:
    """cnn_core module → the cnn_core modules it imports (a name imported from a package counts
    as the package's module when it is one, else as the package)."""
    modules = library_modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_modules(path, package_of(path)):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported.startswith("cnn_core"):
                targets.add(imported)
        graph[name] = targets - {name}
    return graph


def layer_of(module: str) -> str:
    """A library module's subpackage ('base' … 'export'), or 'top' for cli, __main__ and the package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in PACKAGE_ORDER) else "top"


def test_the_library_is_grouped_into_the_declared_subpackages():
    found = {p.name for p in LIBRARY.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert found == set(PACKAGE_ORDER), f"subpackages on disk {sorted(found)}; PACKAGE_ORDER says {PACKAGE_ORDER}"
    loose = {p.stem for p in LIBRARY.glob("*.py")}
    assert loose == TOP_LEVEL, f"modules outside the subpackages: {sorted(loose - TOP_LEVEL)}"
    # The walk is recursive: every module in every subpackage is in the graph the rules check.
    assert len(library_graph()) == len(list(LIBRARY.rglob("*.py"))) > 40


def test_each_subpackage_imports_only_the_ones_below_it():
    rank = {name: i for i, name in enumerate(PACKAGE_ORDER)} | {"top": len(PACKAGE_ORDER)}
    upward = []
    for module, targets in sorted(library_graph().items()):
        for target in sorted(targets):
            if target == "cnn_core":
                target_layer = "top"
            else:
                target_layer = layer_of(target)
            if rank[target_layer] > rank[layer_of(module)]:
                upward.append(f"{module} → {target}")
    assert upward == [], "imports against the package order " + " < ".join(PACKAGE_ORDER) + ": " + ", ".join(upward)


def test_the_order_check_sees_upward_and_function_level_imports(tmp_path, monkeypatch):
    low = tmp_path / "cnn_core" / "base"
    low.mkdir(parents=True)
    (low / "low.py").write_text("def late():\n    from cnn_core.train import recipes\n")
    found = imported_modules(low / "low.py", "cnn_core.base")
    assert "cnn_core.train.recipes" in found and layer_of("cnn_core.train.recipes") == "train"
    assert layer_of("cnn_core.cli") == "top" and layer_of("cnn_core.base") == "base"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, colouring nodes)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
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


@pytest.mark.parametrize("path", library_files(), ids=lambda p: str(p.relative_to(LIBRARY)))
def test_the_library_never_imports_the_app_the_benchmarks_or_streamlit(path):
    bad = sorted(name for name in imported_modules(path, package_of(path)) if name.split(".")[0] in NOT_FOR_THE_LIBRARY)
    assert bad == [], f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", APP_FILES + BENCHMARK_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_app_and_the_benchmarks_reach_the_engine_only_through_cnn_core(path):
    names = {name.split(".")[0] for name in imported_modules(path, package_of(path))}
    if path in APP_FILES:  # the app may not lean on the benchmarks (they write beside the models instead)
        assert "benchmarks" not in names and "tests" not in names, path
    else:  # the benchmarks drive the engine and the app's pages from outside, never import them
        assert "app_pages" not in names and "app" not in names and "tests" not in names, path


def test_no_library_function_is_longer_than_a_screen():
    long = []
    for path in library_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and f"{path.name}:{node.name}" not in DECLARATIVE:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert long == []


@pytest.mark.slow  # a fresh process imports every module, TensorFlow included
def test_importing_every_library_module_loads_no_streamlit_app_or_benchmarks():
    modules = ", ".join(name for name in library_modules() if not name.endswith("__main__"))
    code = f"import sys, {modules}; print(sorted(m for m in sys.modules if m.split('.')[0] in {NOT_FOR_THE_LIBRARY!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_architecture_md_names_every_module_and_page():
    """ARCHITECTURE.md is the map a newcomer reads first: a module or page it does not name is a gap in it."""
    text = (REPO / "ARCHITECTURE.md").read_text()
    unnamed = [
        str(path.relative_to(REPO))
        for path in [*library_files(), *APP_FILES[1:]]
        if path.stem != "__init__" and f"`{path.stem}`" not in text and f"{path.stem}.py" not in text
    ]
    assert unnamed == [], f"ARCHITECTURE.md does not name {unnamed}"
    for package in PACKAGE_ORDER:
        assert f"### `{package}/`" in text, f"ARCHITECTURE.md has no section for cnn_core/{package}/"
