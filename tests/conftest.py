"""Shared fixtures. Real-data tests read the real datasets: from $CNN_DATA_DIR when it is set
(CI, which has no internet), otherwise downloaded once through keras.datasets into a cache
folder of .npz files. Either way they FAIL (never skip) when the data cannot be had."""

import hashlib
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


# Where the suite keeps plain (uncompressed) copies of LZMA-compressed archives, one folder per set of
# source files (their sizes and modification times).
UNCOMPRESSED_DIR = DOWNLOAD_DIR.parent / "datasets-uncompressed"


def uncompressed_copy(folder: Path, cache: Path = UNCOMPRESSED_DIR) -> Path:
    """A folder holding the same arrays as `folder`'s archives, stored without compression, made once
    per machine. The shared archives' entries are LZMA-compressed: CIFAR-10 takes seconds to read,
    in every process that reads it (the CLI, training processes, the app's server, the benchmarks),
    and the suite starts dozens of them. The arrays are identical (tests/test_datasets.py reads the
    original archives themselves)."""
    from cnn_core.data.datasets import dataset_info, load_npz, save_npz

    stats = [(folder / f"{name}.npz").stat() for name in DATASET_NAMES]
    key = hashlib.sha256(repr([(s.st_size, s.st_mtime_ns) for s in stats]).encode()).hexdigest()[:16]
    target = cache / key
    for name in DATASET_NAMES:
        if not (target / f"{name}.npz").is_file():
            save_npz(load_npz(dataset_info(name), folder / f"{name}.npz"), target)  # atomic: never half-written
    return target


@pytest.fixture(scope="session")
def original_data_dir() -> Path:
    """The real data folder as given (CNN_DATA_DIR, or the download folder)."""
    return real_data_dir()


@pytest.fixture(scope="session")
def data_dir(original_data_dir) -> Path:
    folder = uncompressed_copy(original_data_dir)
    # Pages, subprocesses and library calls that read CNN_DATA_DIR see the same folder.
    os.environ["CNN_DATA_DIR"] = str(folder)
    return folder


# The small real-data folder: real images, fewer of them, for tests that need "a trained run"
# rather than a good model. Training, evaluation, the detector's fit and temperature scaling all
# scale with the images, so every run on it ends in seconds.
SMALL_TRAIN, SMALL_TEST = 8000, 500


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


@pytest.fixture
def small_data_env(small_data_dir, monkeypatch) -> Path:
    """CNN_DATA_DIR set to the small real-data folder for this test: the runs it starts (in this
    process, a training process or the CLI) train and are evaluated on it."""
    monkeypatch.setenv("CNN_DATA_DIR", str(small_data_dir))
    return small_data_dir


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


def pytest_configure(config):
    """With pytest-xdist's workers (`-n`), the whole test run is background work at the priority the app
    gives its training processes (Linux's SCHED_IDLE, cnn_core/service/jobs.py): a training process one
    worker's test starts would otherwise get no CPU while the other worker's test keeps both cores busy.
    Set before the workers start, so they and every process they start inherit it."""
    if getattr(config.option, "numprocesses", None) and hasattr(os, "sched_setscheduler"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


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


# What a fresh Streamlit server holds that one AppTest could leave to the next: the training job, the
# cached card lists, evaluations and figures, the test images, snapshots and neighbour indexes. The
# loaded models (app_pages._common._load_predictor) are kept: that cache is keyed by the model's name
# and its file's modification time, so it never serves a changed file, and loading a model (LiteRT
# conversion included) is most of what a page's first visit costs. tests/test_app.py checks that this
# list names every cache_resource of the app but that one.
APP_RESOURCE_CACHES = {
    "app_pages._common": ["get_jobs"],
    "app_pages._confusion_view": ["_test_images"],
    "app_pages._history_view": ["_snapshots"],
    "app_pages._probe_view": ["_index"],
}
KEPT_RESOURCE_CACHES = {"app_pages._common": ["_load_predictor"], "app_pages._teach_view": ["warming"]}


def clear_server_state() -> None:
    """Forget everything a previous test's server held, except the loaded models (see above)."""
    import importlib

    import streamlit as st

    st.cache_data.clear()
    for module, names in APP_RESOURCE_CACHES.items():
        for name in names:
            getattr(importlib.import_module(module), name).clear()


def one_model_per_family() -> list[str]:
    """One shipped model per architecture: a bfloat16-trained one where the architecture has one (the
    precision whose float32 twin oneDNN's kernels could treat differently), else a digit model (so grey
    inputs are in too). Models of one architecture run the same layers, so checks that run every shipped
    model run these in the quick tier and in the oneDNN matrix."""
    from cnn_core.base.store import shipped_store

    store, chosen = shipped_store(), {}

    def preference(name):
        card = store.load_card(name)
        return card["precision"] != "bf16", card["dataset"] == "cifar10", name

    for name in sorted(store.names(), key=preference):
        chosen.setdefault(store.load_card(name)["hyperparameters"]["arch"], name)
    return sorted(chosen.values())


def every_shipped_model() -> list:
    """Every shipped model as pytest parameters; those outside one_model_per_family() marked slow, so the
    quick tier runs one of each family and the whole suite runs them all."""
    from cnn_core.base.store import shipped_store

    family = set(one_model_per_family())
    return [pytest.param(name, marks=() if name in family else pytest.mark.slow) for name in shipped_store().names()]


def pytest_collection_modifyitems(config, items):
    """The quick tier (`-m "not slow"`) starts no browser: a browser test must also be marked slow."""
    unmarked = [
        item.nodeid for item in items if item.get_closest_marker("browser") and not item.get_closest_marker("slow")
    ]
    if unmarked:
        raise pytest.UsageError(f"browser tests must be marked slow too (the quick tier starts no browser): {unmarked}")
    # Heaviest files first. pytest-xdist's `--dist loadfile` hands out whole files in collection order, the
    # last ones as workers free up: a long file handed out last keeps one worker busy while the other idles.
    # Files are ordered by how many of their tests are marked slow (most first), so the quick files come last.
    slow_count: dict[str, int] = {}
    for item in items:
        slow_count[item.fspath.strpath] = slow_count.get(item.fspath.strpath, 0) + bool(item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow_count[item.fspath.strpath])  # stable: each file's own order is kept
