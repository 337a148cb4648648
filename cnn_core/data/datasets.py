"""Datasets: what each one is, and where its arrays come from.

Sources, in order: a folder of `<name>.npz` files (given explicitly, or through
the `CNN_DATA_DIR` environment variable), then `keras.datasets` (downloads and
caches on first use). Arrays stay uint8 in their published shape: preprocessing
(`cnn_core.data.preprocess`) is the one place that turns them into model input.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from cnn_core.base.errors import DataError

DATA_DIR_ENV = "CNN_DATA_DIR"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    class_names: tuple[str, ...]
    input_shape: tuple[int, int, int]  # what the model sees: (H, W, C)
    raw_shape: tuple[int, ...]  # one sample as stored in the .npz
    keras_loader: str  # attribute of keras.datasets
    # Whether a picture's mirror image shows the same class: a shirt or a ship, yes; a mirrored 2
    # or 7 is no digit. Decides which views test-time augmentation averages (cnn_core.predict.inference).
    mirrorable: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist",
        "MNIST handwritten digits",
        tuple(str(d) for d in range(10)),
        (28, 28, 1),
        (28, 28),
        "mnist",
        mirrorable=False,
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist",
        "Fashion-MNIST clothes",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (28, 28, 1),
        (28, 28),
        "fashion_mnist",
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        "CIFAR-10 objects",
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        (32, 32, 3),
        (32, 32, 3),
        "cifar10",
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"Unknown dataset '{name}'. Choose one of: {', '.join(DATASETS)}.") from None


@dataclass
class Dataset:
    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # path of the .npz, or "keras.datasets"
    sha256: str | None = None  # of the .npz file when loaded from one
    meta: dict = field(default_factory=dict)

    @property
    def source_name(self) -> str:
        """Where the arrays came from, without this machine's folders: 'mnist.npz' or
        'keras.datasets' (what model cards and results record, beside the checksum)."""
        return Path(self.source).name if self.source.endswith(".npz") else self.source


@dataclass
class Split:
    """Training data with a validation part held out of it (fixed seed)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    value = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _validate_arrays(info: DatasetInfo, arrays: dict, where: str) -> None:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8:
            raise DataError(f"{where}: x_{split} must be uint8 pixels, found {x.dtype}.")
        if x.ndim < 1 or tuple(x.shape[1:]) != info.raw_shape:
            raise DataError(
                f"{where}: x_{split} must have shape (N, {', '.join(map(str, info.raw_shape))}) "
                f"for {info.name}, found {tuple(x.shape)}."
            )
        y = np.asarray(y).reshape(-1)
        if len(y) != len(x):
            raise DataError(f"{where}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels.")
        if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or y.max() >= info.num_classes)):
            raise DataError(f"{where}: y_{split} must hold integer labels 0..{info.num_classes - 1}.")


def load_npz(info: DatasetInfo, path: Path) -> Dataset:
    """Read and check one `<name>.npz`; every failure is a DataError with the path in it."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise DataError(
                    f"{path} is not a valid {info.name} archive: missing key(s) {', '.join(missing)} "
                    f"(expected {', '.join(NPZ_KEYS)})."
                )
            arrays = {k: npz[k] for k in NPZ_KEYS}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path} could not be read as a .npz archive ({err}).") from None
    _validate_arrays(info, arrays, str(path))
    return Dataset(
        info,
        arrays["x_train"],
        arrays["y_train"].reshape(-1).astype(np.int64),
        arrays["x_test"],
        arrays["y_test"].reshape(-1).astype(np.int64),
        source=str(path),
        sha256=file_sha256(path),
    )


def _load_from_keras(info: DatasetInfo) -> Dataset:
    import keras

    loader = getattr(keras.datasets, info.keras_loader)
    (x_train, y_train), (x_test, y_test) = loader.load_data()
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    _validate_arrays(info, arrays, "keras.datasets")
    return Dataset(
        info,
        x_train,
        y_train.reshape(-1).astype(np.int64),
        x_test,
        y_test.reshape(-1).astype(np.int64),
        source="keras.datasets",
    )


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, allow_download: bool = True) -> Dataset:
    """Load a dataset as uint8 arrays: local `.npz` first, then keras.datasets."""
    info = dataset_info(name)
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        path = folder / f"{name}.npz"
        if path.is_file():
            return _cached_npz(info.name, str(path.resolve()), path.stat().st_mtime_ns)
    download_error = None
    if allow_download:
        try:
            return _load_from_keras(info)
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - keras.datasets' network errors come in many types
            download_error = err
    where = (
        f"'{folder / (name + '.npz')}' does not exist" if folder else f"no data folder is set ({DATA_DIR_ENV} is empty)"
    )
    why = (
        f"; downloading through keras.datasets failed ({type(download_error).__name__}: {download_error})"
        if download_error
        else ""
    )
    raise DataError(
        f"The {name} dataset is not available: {where}{why}. Either connect to the internet so "
        f"keras.datasets can download it, or put {name}.npz (keys {', '.join(NPZ_KEYS)}, uint8) in a "
        f"folder and pass it with --data-dir or the {DATA_DIR_ENV} environment variable."
    )


@lru_cache(maxsize=3)
def _cached_npz(name: str, path: str, mtime_ns: int) -> Dataset:
    # CIFAR-10's LZMA archive takes seconds to read: load each file once per process.
    return load_npz(DATASETS[name], Path(path))


def save_npz(data: Dataset, folder: str | os.PathLike) -> Path:
    """Write a dataset as `<folder>/<name>.npz` (keys x_train y_train x_test y_test, uint8, the
    layout `load_npz` reads), atomically, so a data folder can be filled from keras.datasets."""
    from cnn_core.base.store import atomic_write

    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{data.info.name}.npz"
    arrays = {
        "x_train": data.x_train,
        "y_train": data.y_train.astype(np.uint8),
        "x_test": data.x_test,
        "y_test": data.y_test.astype(np.uint8),
    }
    atomic_write(target, lambda tmp: np.savez(tmp, **arrays))
    return target


def download(name: str, folder: str | os.PathLike) -> Path:
    """Fetch a dataset through keras.datasets (cached by Keras) into a data folder as .npz."""
    info = dataset_info(name)
    try:
        data = _load_from_keras(info)
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - keras.datasets' network errors come in many types
        raise DataError(
            f"Downloading {name} through keras.datasets failed ({type(err).__name__}: {err}). "
            "Connect to the internet, or copy the .npz files into the folder by hand."
        ) from None
    return save_npz(data, folder)


def dataset_available(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """True when a local .npz exists (a download may still work when this is False)."""
    folder = resolve_data_dir(data_dir)
    return bool(folder and (folder / f"{name}.npz").is_file())


def split_validation(x: np.ndarray, y: np.ndarray, val_size: int, seed: int) -> Split:
    """Hold out `val_size` training images, stratified by class, with a fixed seed."""
    if val_size <= 0:
        return Split(x, y, x[:0], y[:0])
    if val_size >= len(x):
        raise DataError(f"Validation size {val_size} must be smaller than the {len(x)} training images.")
    from sklearn.model_selection import train_test_split

    x_tr, x_val, y_tr, y_val = train_test_split(
        x, y, test_size=val_size, random_state=seed, stratify=_stratify(y, val_size)
    )
    return Split(x_tr, y_tr, x_val, y_val)


def take_subset(x: np.ndarray, y: np.ndarray, size: int | None, seed: int):
    """A class-balanced random subset of `size` images (all of them when size is None)."""
    if not size or size >= len(x):
        return x, y
    from sklearn.model_selection import train_test_split

    _, xs, _, ys = train_test_split(x, y, test_size=size, random_state=seed, stratify=_stratify(y, size))
    return xs, ys


def _stratify(y: np.ndarray, size: int):
    # Stratifying needs every class twice and room for each class in the smaller part.
    counts = np.bincount(y)
    return y if counts[counts > 0].min() >= 2 and size >= (counts > 0).sum() else None


def prepare_data(config: dict, data_dir=None, data: Dataset | None = None) -> tuple[Dataset, Split]:
    """The dataset and the run's train/validation split, exactly as a run's config says
    (`dataset`, `val_size`, `subset`, `seed`): the trainer and the calibration of a finished
    run rebuild the same split from the same config."""
    data = data or load_dataset(config["dataset"], data_dir)
    subset, seed = config["subset"], config["seed"]
    val_size = min(config["val_size"], len(data.x_train) // 5) if subset else config["val_size"]
    split = split_validation(data.x_train, data.y_train, val_size, seed)
    split.x_train, split.y_train = take_subset(split.x_train, split.y_train, subset, seed)
    quick_val_size = max(1000, (subset or 0) // 2)
    if subset and len(split.x_val) > quick_val_size:
        # A quick demo on a subset does not need thousands of validation images per epoch.
        split.x_val, split.y_val = take_subset(split.x_val, split.y_val, quick_val_size, seed)
    return data, split
