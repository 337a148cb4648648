"""Test-set metrics from probabilities (cnn_core.analysis.evaluation), on a small known case, and the
test-time augmentation levels that make the probabilities (cnn_core.predict.inference)."""

import numpy as np
import pytest

from cnn_core.analysis.evaluation import cross_entropy, evaluation_from_probs, most_confused_cell
from cnn_core.data.datasets import Dataset, dataset_info


def test_cross_entropy_is_the_mean_negative_log_probability_of_the_true_class():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.25, 0.5, 0.25]], np.float32)
    labels = np.array([0, 2, 0])
    assert np.isclose(cross_entropy(probs, labels), -np.mean(np.log([0.7, 0.8, 0.25])), rtol=1e-6)
    certain_and_wrong = np.array([[1.0, 0.0, 0.0]], np.float32)
    assert 15 < cross_entropy(certain_and_wrong, np.array([1])) < 17  # clipped, not infinite


def test_per_class_accuracy_is_each_class_share_predicted_right():
    info = dataset_info("mnist")
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 1, 2, 2, 1, 1])
    probs = np.eye(10, dtype=np.float32)[pred] * 0.9 + 0.01
    data = Dataset(info, np.zeros((10, 28, 28), np.uint8), y, np.zeros((10, 28, 28), np.uint8), y, "sha")
    result = evaluation_from_probs(probs, data)
    accuracy = result["per_class_accuracy"]
    assert (accuracy["0"], accuracy["1"], accuracy["2"], accuracy["3"]) == (0.75, 1.0, 0.5, 0.0)
    assert most_confused_cell(result["confusion_matrix"]) == (2, 1)


def test_most_confused_cell_ignores_the_diagonal_and_takes_the_first_tie():
    assert most_confused_cell([[90, 3, 3], [1, 80, 0], [0, 3, 70]]) == (0, 1)
    assert most_confused_cell(np.array([[5, 0], [0, 5]])) == (0, 0)  # no mistakes: the first cell


def _position_sensitive_model(seed: int = 0, shape=(32, 32, 3)):
    """A softmax over a random dense layer of the raw pixels: its prediction changes with
    every mirror and every pixel of shift, unlike a trained convolutional net's."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def test_tta_levels_average_the_mirror_and_the_one_pixel_shifts(data_dir):
    from cnn_core.data.datasets import load_dataset
    from cnn_core.data.preprocess import to_model_input
    from cnn_core.predict.inference import predict_proba

    data = load_dataset("cifar10", data_dir)
    images, model = data.x_test[:6], _position_sensitive_model()
    x = to_model_input(images, data.info)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    up_left, down_right = padded[:, :32, :32], padded[:, 2:, 2:]

    def views(*arrays):
        return [model.predict_on_batch(a) for b in arrays for a in (b, b[:, :, ::-1])]

    plain = model.predict_on_batch(x)
    np.testing.assert_allclose(predict_proba(model, images, data.info, tta=0), plain, rtol=1e-5)
    np.testing.assert_allclose(predict_proba(model, images, data.info, tta=True), np.mean(views(x), axis=0), rtol=1e-5)
    level2 = predict_proba(model, images, data.info, tta=2)
    np.testing.assert_allclose(
        level2, 0.5 * np.mean(views(x), axis=0) + 0.5 * np.mean(views(up_left, down_right), axis=0), rtol=1e-5
    )
    assert not np.allclose(level2, predict_proba(model, images, data.info, tta=1))  # the shifts do count
    np.testing.assert_allclose(level2.sum(axis=1), 1.0, rtol=1e-5)
    # In batches smaller than the set, the same numbers.
    np.testing.assert_allclose(predict_proba(model, images, data.info, tta=2, batch_size=4), level2, rtol=1e-5)


def test_digit_tta_levels_average_one_pixel_shifts_and_never_the_mirror_image(data_dir):
    from cnn_core.data.datasets import load_dataset
    from cnn_core.predict.inference import predict_proba, tta_passes

    data = load_dataset("mnist", data_dir)
    images, model = data.x_test[:6], _position_sensitive_model(shape=(28, 28, 1))
    x = images[..., None].astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # zeros: the digits' black background

    def moved(dy, dx):
        return model.predict_on_batch(padded[:, 1 + dy : 29 + dy, 1 + dx : 29 + dx])

    np.testing.assert_allclose(moved(0, 0), model.predict_on_batch(x), rtol=1e-6)
    four = [moved(dy, dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]
    level1 = predict_proba(model, images, data.info, tta=1)
    np.testing.assert_allclose(level1, np.mean([moved(0, 0), *four], axis=0), rtol=1e-5)
    mirror = np.mean([model.predict_on_batch(x), model.predict_on_batch(x[:, :, ::-1])], axis=0)
    assert not np.allclose(level1, mirror, rtol=1e-3)
    level2 = predict_proba(model, images, data.info, tta=2)
    np.testing.assert_allclose(
        level2, np.mean([moved(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0), rtol=1e-5
    )
    # One drawing's views go through the network in one call; a set bigger than a batch, in several.
    np.testing.assert_allclose(predict_proba(model, images[:1], data.info, tta=2), level2[:1], rtol=1e-5)
    np.testing.assert_allclose(predict_proba(model, images, data.info, tta=2, batch_size=4), level2, rtol=1e-5)
    assert (tta_passes(1, "mnist"), tta_passes(2, "mnist"), tta_passes(2, "cifar10")) == (5, 9, 6)


@pytest.mark.parametrize("value, level", [(False, 0), (True, 1), (None, 0), (0, 0), (1, 1), (2, 2)])
def test_tta_settings_old_and_new_read_as_a_level(value, level):
    from cnn_core.predict.inference import tta_label, tta_level

    assert tta_level(value) == level and isinstance(tta_level(value), int) and not isinstance(tta_level(value), bool)
    assert tta_label(value, "cifar10") == ("off", "flip", "flip + 1-px shifts")[level]
    assert tta_label(value, "fashion_mnist") == tta_label(value, "cifar10")  # clothes mirror as photos do
    assert tta_label(value, "mnist") == ("off", "1-px shifts", "1-px shifts and diagonals")[level]


@pytest.mark.parametrize("value", [3, -1, "flip", 1.5])
def test_an_unknown_tta_setting_is_refused_in_words(value):
    from cnn_core.base.errors import ConfigError
    from cnn_core.predict.inference import tta_level

    with pytest.raises(ConfigError, match="level 0, 1 or 2"):
        tta_level(value)


def test_a_cells_images_come_from_the_test_set_only_when_it_is_the_one_evaluated():
    from cnn_core.analysis.evaluation import cell_items
    from cnn_core.base.store import shipped_store

    evaluation = shipped_store().load_eval("mnist_fast30")
    true, pred = most_confused_cell(evaluation["confusion_matrix"])
    first = cell_items(evaluation, true, pred)[0]  # from the gallery
    index = first["index"]
    full = np.zeros((evaluation["test_size"], 28, 28), np.uint8)
    full[index] = 255
    assert (cell_items(evaluation, true, pred, full)[0]["image"] == 255).all()
    smaller = np.zeros((index // 2, 28, 28), np.uint8)  # a trimmed data folder: its indices are not these
    np.testing.assert_array_equal(cell_items(evaluation, true, pred, smaller)[0]["image"], first["image"])
