"""Shared fixtures. Real-data tests need the .npz folder: they FAIL (never skip) without it."""

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO.parent / "shared" / "datasets"


def _data_dir() -> Path:
    return Path(os.environ.get("CNN_DATA_DIR") or DEFAULT_DATA_DIR)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    folder = _data_dir()
    missing = [n for n in ("mnist", "cifar10", "fashion_mnist") if not (folder / f"{n}.npz").is_file()]
    if missing:
        pytest.fail(f"Real-data tests need {', '.join(m + '.npz' for m in missing)} in {folder} "
                    f"(set CNN_DATA_DIR). Missing data is a failure, not a skip.")
    return folder


@pytest.fixture(autouse=True)
def isolated_runs(tmp_path, monkeypatch):
    """Every test writes runs into its own temporary folder, never into runs/."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("CNN_RUNS_DIR", str(runs))
    return runs


def block_region(label: int):
    """Where class `label`'s bright 4×4 block sits: a 3×4 grid kept away from the borders."""
    r, c = divmod(label, 4)
    return slice(4 + 6 * r, 8 + 6 * r), slice(4 + 5 * c, 8 + 5 * c)


def synthetic_dataset(name="mnist", n_train=240, n_test=100, seed=0):
    """A tiny learnable dataset: class k is a bright block at a class-specific place."""
    from cnn_core.datasets import Dataset, dataset_info

    info = dataset_info(name)
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n) % info.num_classes
        x = rng.integers(0, 40, size=(n, *info.raw_shape), dtype=np.uint8)
        for i, label in enumerate(y):
            x[i][block_region(int(label))] = 255
        return x, y.astype(np.int64)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return Dataset(info, x_train, y_train, x_test, y_test, source="synthetic", sha256=None)


@pytest.fixture
def tiny_mnist():
    return synthetic_dataset("mnist")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report on the item, so fixtures can screenshot failures."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
