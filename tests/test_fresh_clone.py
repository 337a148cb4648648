"""A fresh clone tests itself: the README's one-line test command is what CI runs, the data
comes from $CNN_DATA_DIR or else from keras.datasets (faked here: no internet), and nothing
committed carries a path of the machine that made it."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from cnn_core.base.errors import DataError
from cnn_core.data import datasets
from cnn_core.data.datasets import download, load_dataset, load_npz
from conftest import DATASET_NAMES, real_data_dir

REPO = Path(__file__).resolve().parent.parent


def _fake_keras_mnist(monkeypatch, calls=None):
    """keras.datasets.mnist.load_data answering with small arrays of the published shapes and dtypes."""
    import keras

    rng = np.random.default_rng(0)
    arrays = (
        (rng.integers(0, 256, (60, 28, 28), dtype=np.uint8), rng.integers(0, 10, 60).astype(np.uint8)),
        (rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), rng.integers(0, 10, 20).astype(np.uint8)),
    )

    def load_data():
        if calls is not None:
            calls.append("mnist")
        return arrays

    monkeypatch.setattr(keras.datasets.mnist, "load_data", load_data)
    return arrays


def test_without_a_data_folder_the_data_comes_from_keras_datasets(monkeypatch):
    monkeypatch.delenv("CNN_DATA_DIR", raising=False)
    (x_train, _y_train), (_x_test, y_test) = _fake_keras_mnist(monkeypatch)
    data = load_dataset("mnist")
    assert data.source == data.source_name == "keras.datasets"
    np.testing.assert_array_equal(data.x_train, x_train)
    np.testing.assert_array_equal(data.y_test, y_test)


def test_download_writes_the_npz_layout_the_data_folder_reads(monkeypatch, tmp_path):
    (x_train, y_train), (x_test, _y_test) = _fake_keras_mnist(monkeypatch)
    path = download("mnist", tmp_path / "data")
    assert path == tmp_path / "data" / "mnist.npz"
    again = load_npz(datasets.dataset_info("mnist"), path)
    np.testing.assert_array_equal(again.x_train, x_train)
    np.testing.assert_array_equal(again.y_train, y_train)
    np.testing.assert_array_equal(again.x_test, x_test)
    assert again.source_name == "mnist.npz" and len(again.sha256) == 64
    assert not list((tmp_path / "data").glob(".*tmp*")), "no temporary file left behind"


def test_a_failed_download_says_what_to_do(monkeypatch, tmp_path):
    import keras

    def offline():
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DataError, match="Connect to the internet"):
        download("mnist", tmp_path)
    assert not (tmp_path / "mnist.npz").exists()


def test_cli_download_fills_a_data_folder(monkeypatch, tmp_path, capsys):
    from cnn_core.cli import main

    calls = []
    _fake_keras_mnist(monkeypatch, calls)
    assert main(["download", "--dataset", "mnist", "--data-dir", str(tmp_path)]) == 0
    assert (tmp_path / "mnist.npz").is_file() and calls == ["mnist"]
    assert main(["download", "--dataset", "mnist", "--data-dir", str(tmp_path)]) == 0  # kept, not fetched again
    assert calls == ["mnist"] and "already in" in capsys.readouterr().out
    monkeypatch.delenv("CNN_DATA_DIR", raising=False)
    assert main(["download", "--dataset", "mnist"]) == 2
    assert "--data-dir" in capsys.readouterr().err


def test_suite_data_comes_from_keras_datasets_when_no_folder_is_set(monkeypatch, tmp_path):
    _fake_keras_mnist(monkeypatch)
    fetched = []

    def fake_download(name, folder):  # the real download for MNIST (faked keras), copies of it otherwise
        fetched.append(name)
        path = download("mnist", folder)
        if name != "mnist":
            (Path(folder) / f"{name}.npz").write_bytes(path.read_bytes())

    folder = real_data_dir(environ={}, download=fake_download, download_dir=tmp_path / "cache")
    assert folder == tmp_path / "cache" and fetched == list(DATASET_NAMES)
    assert real_data_dir(environ={}, download=fake_download, download_dir=folder) == folder
    assert fetched == list(DATASET_NAMES), "a filled cache is not downloaded again"


def test_suite_fails_rather_than_skips_when_the_data_folder_lacks_files(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="failure, not a skip"):
        real_data_dir(environ={"CNN_DATA_DIR": str(tmp_path)})


def test_readme_test_command_is_one_line_ci_runs_verbatim():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = "bash tests/install.sh && python -m pytest"
    section = readme.split("## The two commands")[1].split("\n## ")[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert [b.strip() for b in blocks][1] == command, "the second command is the test command, on one line"
    assert not any("../shared" in b for b in blocks), "a fresh clone has no ../shared beside it"
    assert ci.rstrip().splitlines()[-1] == command
    assert "export CNN_DATA_DIR=../shared/datasets" in ci


# A string that holds an absolute POSIX path: a '/' starting two or more path parts, not inside a
# word ('images/s'), a URL ('https://host/x') or a relative path ('benchmarks/x.py').
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[\w.-]+/)+[\w.-]*")


BASE64 = re.compile(r"(data:[\w/+.-]+;base64,)?[A-Za-z0-9+/=]{100,}")


def _strings(value):
    """Every key and string value of a JSON document, except base64 image data (whose '/'s
    would read as paths)."""
    if isinstance(value, str):
        if not BASE64.fullmatch(value):
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_the_absolute_path_pattern():
    assert ABSOLUTE_PATH.search("/work/shared/datasets/mnist.npz")
    assert ABSOLUTE_PATH.search("data in /tmp/x/y")
    assert BASE64.fullmatch(
        "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAA/0lEQVR4nGNgGHhgPP/vfxD9/v/fGfn4/x8/f/9/" * 2
    )
    for fine in ("python benchmarks/inference.py", "images/s", "https://docs.streamlit.io/x/y", "mnist.npz", "1/2"):
        assert not ABSOLUTE_PATH.search(fine), fine


@pytest.mark.parametrize("folder", ["trained_models", "benchmarks/results"])
def test_no_committed_card_or_result_holds_an_absolute_path(folder):
    files = sorted((REPO / folder).glob("*.json")) + sorted((REPO / folder).glob("*.md"))
    assert files
    for path in files:
        texts = _strings(json.loads(path.read_text())) if path.suffix == ".json" else [path.read_text()]
        leaks = [m.group(0) for text in texts for m in ABSOLUTE_PATH.finditer(text)]
        assert not leaks, f"{path.relative_to(REPO)} records machine paths: {leaks[:3]}"
