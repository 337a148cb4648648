import subprocess
import sys

from conftest import REPO


def test_importing_the_library_never_imports_streamlit():
    code = ("import sys, cnn_core, cnn_core.cli, cnn_core.training, cnn_core.jobs, cnn_core.figures, "
            "cnn_core.evaluation, cnn_core.inference, cnn_core.augment, cnn_core.store; "
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_no_streamlit_import_in_library_sources():
    offenders = [p.name for p in (REPO / "cnn_core").glob("*.py") if "import streamlit" in p.read_text()]
    assert offenders == []
