"""Shared fixtures. Real-data tests read the real datasets: from $CNN_DATA_DIR when it is set
(CI, which has no internet), otherwise downloaded once through keras.datasets into a cache
folder of .npz files. Either way they FAIL (never skip) when the data cannot be had."""

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import cnn_core  # noqa: F401  before any test imports TensorFlow: the package's oneDNN setting

REPO = Path(__file__).resolve().parent.parent
DATASET_NAMES = ("mnist", "cifar10", "fashion_mnist")
# Where keras.datasets' copies are written as .npz when CNN_DATA_DIR is not set.
DOWNLOAD_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnn_core" / "datasets"


def real_data_dir(environ=os.environ, download=None, download_dir: Path = DOWNLOAD_DIR) -> Path:
    """The folder of real .npz files the suite reads; fills the download folder when needed.
    Fails the test session with one message when neither way gives the data."""
    from cnn_core.base.errors import DataError

    if environ.get("CNN_DATA_DIR"):
        folder = Path(environ["CNN_DATA_DIR"]).expanduser()
        missing = [n for n in DATASET_NAMES if not (folder / f"{n}.npz").is_file()]
        if missing:
            pytest.fail(
                f"Real-data tests need {', '.join(m + '.npz' for m in missing)} in {folder} "
                f"(CNN_DATA_DIR). Missing data is a failure, not a skip."
            )
        return folder
    if download is None:
        from cnn_core.data.datasets import download
    folder = download_dir
    for name in DATASET_NAMES:
        if not (folder / f"{name}.npz").is_file():
            try:
                download(name, folder)
            except DataError as err:
                pytest.fail(
                    f"Real-data tests need the datasets: {err} Or set CNN_DATA_DIR to a folder of "
                    f"mnist.npz, cifar10.npz and fashion_mnist.npz. Missing data is a failure, not a skip."
                )
    return folder


@pytest.fixture(scope="session")
def data_dir() -> Path:
    folder = real_data_dir()
    # Pages, subprocesses and library calls that read CNN_DATA_DIR see the same folder.
    os.environ["CNN_DATA_DIR"] = str(folder)
    return folder


# The small real-data folder: real images, fewer of them, for tests that need "a trained run"
# rather than a good model. Training, evaluation, the detector's fit and temperature scaling all
# scale with the images, so every run on it ends in seconds.
SMALL_TRAIN, SMALL_TEST = 3000, 500


@pytest.fixture(scope="session")
def small_data_dir(data_dir, tmp_path_factory) -> Path:
    """A data folder like CNN_DATA_DIR holding, for each dataset, SMALL_TRAIN training and SMALL_TEST
    test images of the real one (class-balanced, seeded), as uncompressed .npz files (the shared
    CIFAR-10 archive is LZMA-compressed and takes seconds to read in every new process)."""
    from cnn_core.data.datasets import Dataset, load_dataset, save_npz, take_subset

    folder = tmp_path_factory.mktemp("small_data")
    for name in DATASET_NAMES:
        full = load_dataset(name, data_dir)
        x_train, y_train = take_subset(full.x_train, full.y_train, SMALL_TRAIN, seed=0)
        x_test, y_test = take_subset(full.x_test, full.y_test, SMALL_TEST, seed=0)
        save_npz(Dataset(full.info, x_train, y_train, x_test, y_test, source="small", sha256=None), folder)
    return folder


@pytest.fixture(scope="session")
def small_mnist(small_data_dir):
    from cnn_core.data.datasets import load_dataset

    return load_dataset("mnist", small_data_dir)


@pytest.fixture(scope="session")
def small_cifar10(small_data_dir):
    from cnn_core.data.datasets import load_dataset

    return load_dataset("cifar10", small_data_dir)


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
    from cnn_core.data.datasets import Dataset, dataset_info

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


def wait_for_job(jobs, until, timeout=300):
    """The job's snapshot once `until(snapshot)` holds; fails naming the state it was left in."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        snap = jobs.snapshot()
        if snap is not None and until(snap):
            return snap
        time.sleep(0.05)
    raise AssertionError(f"the training job did not reach the expected state: {jobs.snapshot()}")
