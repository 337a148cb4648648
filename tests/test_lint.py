"""One formatter and linter for the whole tree: ruff, configured in pyproject.toml. The README's test
command (and so CI) fails on any finding, as it fails on any other broken rule."""

import subprocess
import sys

from conftest import REPO


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def test_ruff_finds_nothing_to_lint():
    out = _ruff("check", ".", "--output-format", "concise")
    assert out.returncode == 0, f"ruff check found problems (run `ruff check --fix .`):\n{out.stdout[-4000:]}"


def test_ruff_finds_nothing_to_format():
    out = _ruff("format", "--check", ".")
    assert out.returncode == 0, f"ruff format would change files (run `ruff format .`):\n{out.stdout[-4000:]}"


def test_the_lint_check_fails_on_a_finding(tmp_path):
    """The checks above can fail: the same configuration flags an unsorted import and a bad format."""
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nimport os\nx=1\n")
    config = str(REPO / "pyproject.toml")
    assert _ruff("check", "--config", config, str(bad)).returncode == 1
    assert _ruff("format", "--check", "--config", config, str(bad)).returncode == 1
