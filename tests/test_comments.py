"""Comments state rules; figures live in benchmarks/results/. No comment or docstring in the library,
the pages or app.py carries a date, a CPU or machine name, or a "measured on/here …" history: it says
the rule and why, and may point to the benchmarks/results/*.md that holds the figure.
Reads the sources only (tokenize for comments, ast for docstrings): no TensorFlow."""

import ast
import io
import re
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHECKED_FOLDERS = ("cnn_core", "app_pages")
CHECKED_FILES = ("app.py",)

FORBIDDEN = {
    "a date": re.compile(r"\b20\d\d-\d\d(-\d\d)?\b"),
    "a CPU or machine name": re.compile(
        r"\bZen ?[2-5]\b|\bEPYC\b|\bXeon\b|\bSapphire Rapids\b|\bRyzen\b|\bCore i[3579]\b|\bAVX2[- ]only\b"
        r"|\b\d+-core\b",
        re.IGNORECASE,
    ),
    "a measurement's history": re.compile(r"\bmeasured (on|here)\b|\bwas measured\b|\(measured\b", re.IGNORECASE),
}
DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def checked_files(repo: Path = REPO) -> list[Path]:
    files = [repo / name for name in CHECKED_FILES]
    for folder in CHECKED_FOLDERS:
        files += sorted((repo / folder).rglob("*.py"))
    return files


def comments(source: str):
    """(line, text) of every comment token."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def docstrings(source: str, filename: str = "<source>"):
    """(line, text) of every line of every module, class and function docstring."""
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, DOCSTRING_OWNERS) or not node.body:
            continue
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            for offset, line in enumerate(first.value.value.splitlines()):
                yield first.lineno + offset, line


def violations(path: Path, repo: Path = REPO) -> list[str]:
    """'file:line: what: text' for each comment or docstring line that breaks a rule."""
    source = path.read_text(encoding="utf-8")
    name = path.relative_to(repo) if path.is_relative_to(repo) else path
    found = set()
    for kind, lines in (("comment", comments(source)), ("docstring", docstrings(source, str(path)))):
        for line, text in lines:
            for what, pattern in FORBIDDEN.items():
                if pattern.search(text):
                    found.add((line, kind, what, text.strip()))
    return [f"{name}:{line}: {kind} with {what}: {text}" for line, kind, what, text in sorted(found)]


def test_comments_and_docstrings_state_rules_not_dated_figures():
    found = [v for path in checked_files() for v in violations(path)]
    assert not found, (
        "Comments and docstrings state the rule and why; a dated figure, a machine or a measurement's "
        "history belongs in benchmarks/results/*.md (a comment may point there):\n" + "\n".join(found)
    )


def test_the_checker_catches_planted_comments_and_docstrings(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        '"""Module docstring.\n\nTrains at 217 images/s, measured on a 2-core Zen 3."""\n'
        "\n"
        "X = 1  # on 2026-12-04 this was 99.70%\n"
        "\n"
        "\n"
        "def f():\n"
        '    """Faster on an EPYC (measured by hand)."""\n'
        '    return "measured on the test set"  # a string is no comment\n'
    )
    found = violations(planted, repo=tmp_path)
    assert [v.split(": ")[0] + ": " + v.split(": ")[1] for v in found] == [
        "planted.py:3: docstring with a CPU or machine name",
        "planted.py:3: docstring with a measurement's history",
        "planted.py:5: comment with a date",
        "planted.py:9: docstring with a CPU or machine name",
        "planted.py:9: docstring with a measurement's history",
    ]

    clean = tmp_path / "clean.py"
    clean.write_text(
        '"""oneDNN\'s kernels on every x86 CPU: they train the airbench net faster than XLA or Eigen\n'
        '(benchmarks/results/step_profile.md)."""\n'
        "\n"
        "BATCH = 128  # larger batches save little time and cost memory (benchmarks/results/memory.md)\n"
        'LABEL = "measured on this CPU, 2026-12-04"  # user-visible text is not checked\n'
    )
    assert violations(clean, repo=tmp_path) == []


def test_every_pattern_catches_its_examples():
    examples = {
        "a date": ["2026-12-04", "on 2026-11"],
        "a CPU or machine name": [
            "Zen 3",
            "zen4",
            "AMD EPYC",
            "a Xeon",
            "Sapphire Rapids",
            "Ryzen 7",
            "Core i7",
            "AVX2 only",
            "AVX2-only",
            "a 2-core VM",
        ],
        "a measurement's history": ["measured on CIFAR-10", "Measured here", "it was measured", "(measured 3 ms)"],
    }
    for what, texts in examples.items():
        for text in texts:
            assert FORBIDDEN[what].search(text), (what, text)
    for text in ("AVX2 and FMA", "cores: 2", "the measured figures", "2 cores", "2026 entries", "measurement"):
        assert not any(p.search(text) for p in FORBIDDEN.values()), text
