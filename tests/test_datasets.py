import numpy as np
import pytest

from cnn_core.data import datasets
from cnn_core.data.datasets import DataError, load_dataset, load_npz, split_validation, take_subset


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good_arrays(n=20):
    return {
        "x_train": np.zeros((n, 28, 28), np.uint8),
        "y_train": np.arange(n) % 10,
        "x_test": np.zeros((n // 2, 28, 28), np.uint8),
        "y_test": np.arange(n // 2) % 10,
    }


def test_reads_a_local_npz_folder(tmp_path):
    _write_npz(tmp_path / "mnist.npz", **_good_arrays())
    data = load_dataset("mnist", tmp_path, allow_download=False)
    assert data.x_train.shape == (20, 28, 28) and data.y_test.shape == (10,)
    assert data.sha256 == datasets.file_sha256(tmp_path / "mnist.npz")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("y_test"), "missing key.*y_test"),
        (lambda a: a.update(x_train=np.zeros((20, 32, 32), np.uint8)), r"shape \(N, 28, 28\).*\(20, 32, 32\)"),
        (lambda a: a.update(x_train=np.zeros((20, 28, 28), np.float32)), "must be uint8"),
        (lambda a: a.update(y_train=np.arange(20) + 5), "labels 0..9"),
        (lambda a: a.update(y_train=np.arange(7)), "20 images but y_train has 7"),
    ],
)
def test_malformed_npz_gets_a_clear_message(tmp_path, change, message):
    arrays = _good_arrays()
    change(arrays)
    _write_npz(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_npz(datasets.DATASETS["mnist"], tmp_path / "mnist.npz")


def test_corrupt_file_is_not_a_traceback(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"this is not a zip archive")
    with pytest.raises(DataError, match="could not be read as a .npz"):
        load_dataset("mnist", tmp_path, allow_download=False)


def test_missing_data_names_both_ways_to_get_it(tmp_path, monkeypatch):
    def offline(info):
        raise OSError("network is unreachable")

    monkeypatch.setattr(datasets, "_load_from_keras", offline)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path)
    text = str(err.value)
    assert "cifar10.npz" in text and "--data-dir" in text and "CNN_DATA_DIR" in text
    assert "keras.datasets" in text and "network is unreachable" in text


def test_unknown_dataset():
    with pytest.raises(DataError, match="Unknown dataset 'imagenet'.*mnist"):
        load_dataset("imagenet")


def test_validation_split_is_stratified_and_repeatable():
    x = np.arange(1000, dtype=np.int32).reshape(1000, 1)
    y = np.arange(1000) % 10
    a, b = split_validation(x, y, 100, seed=3), split_validation(x, y, 100, seed=3)
    assert np.array_equal(a.x_val, b.x_val)
    assert len(a.x_val) == 100 and len(a.x_train) == 900
    assert np.bincount(a.y_val).tolist() == [10] * 10
    assert not set(a.x_val[:, 0].tolist()) & set(a.x_train[:, 0].tolist())
    xs, ys = take_subset(a.x_train, a.y_train, 50, seed=1)
    assert len(xs) == 50 and np.bincount(ys).tolist() == [5] * 10


@pytest.mark.slow  # decompresses every real archive
def test_real_archives_match_their_published_shapes(original_data_dir, data_dir):
    for name, info in datasets.DATASETS.items():
        data = datasets.load_npz(info, original_data_dir / f"{name}.npz")  # the archive as shipped
        copy = load_dataset(name, data_dir)  # what the rest of the suite reads: the same arrays
        assert all(
            np.array_equal(getattr(data, k), getattr(copy, k)) for k in ("x_train", "y_train", "x_test", "y_test")
        )
        assert data.x_train.shape[1:] == info.raw_shape and data.x_train.dtype == np.uint8
        assert len(data.x_test) == 10_000 and set(np.unique(data.y_test)) == set(range(10))
