"""The app's shape: thin pages over cnn_core (issue #12). Every page and app.py fits in 100 lines,
the pages read nothing from benchmarks/, and cnn_core never imports Streamlit."""

import ast
import re

import pytest

from conftest import REPO

MAX_PAGE_LINES = 100
APP_FILES = sorted((REPO / "app_pages").rglob("*.py"))
PAGES = [p for p in APP_FILES if not p.name.startswith("_")]
LIBRARY_FILES = sorted((REPO / "cnn_core").rglob("*.py"))


def test_the_walks_find_every_page_and_module():
    """The lists the rules below check are recursive walks: a page or module in a subfolder is in them."""
    on_disk = [p for p in (REPO / "app_pages").iterdir() if p.suffix == ".py"]
    assert len(APP_FILES) >= len(on_disk) and len(PAGES) >= 10
    assert len(LIBRARY_FILES) == sum(1 for _ in (REPO / "cnn_core").glob("**/*.py")) > 40


def test_the_pages_are_the_ones_app_py_declares():
    declared = re.findall(r'^    \("(app_pages/[a-z_]+\.py)"', (REPO / "app.py").read_text(), flags=re.MULTILINE)
    assert sorted(declared) == [f"app_pages/{p.name}" for p in PAGES]


@pytest.mark.parametrize("path", [REPO / "app.py", *PAGES], ids=lambda p: p.name)
def test_every_page_is_at_most_100_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_PAGE_LINES, f"{path.relative_to(REPO)} has {lines} lines; move its rules into cnn_core"


def test_the_app_reads_nothing_from_benchmarks():
    """Benchmark figures a page shows come from beside the models (cnn_core.studio.benchmark_figures)."""
    for path in [REPO / "app.py", *APP_FILES]:
        tree = ast.parse(path.read_text())
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        assert "benchmarks" not in _imported_modules(path), f"{path.relative_to(REPO)} imports benchmarks"
        assert not [s for s in strings if "benchmarks" in s and "results" in s], (
            f"{path.relative_to(REPO)} names benchmarks/results"
        )
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == "benchmarks"], (
            f"{path.relative_to(REPO)} builds a path into benchmarks/"
        )


def _imported_modules(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_cnn_core_never_imports_streamlit(path):
    assert "streamlit" not in _imported_modules(path), f"{path.relative_to(REPO)} imports streamlit"
