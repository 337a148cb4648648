"""Test-set metrics from probabilities (cnn_core.evaluation), on a small known case."""

import numpy as np

from cnn_core.datasets import Dataset, dataset_info
from cnn_core.evaluation import cross_entropy, evaluation_from_probs, most_confused_cell


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
