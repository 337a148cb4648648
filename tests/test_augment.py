import numpy as np

from cnn_core.data.augment import augmented_views, build_augmenter
from cnn_core.train.recipes import augment_choices


def test_augmenter_switches_per_transform():
    assert build_augmenter({"rotation": 0, "shift": 0, "zoom": 0, "flip": False}) is None
    names = [type(layer).__name__ for layer in build_augmenter(augment_choices("cifar10")).layers]
    assert names == ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom"]
    names = [type(layer).__name__ for layer in build_augmenter(augment_choices("mnist")).layers]
    assert "RandomFlip" not in names  # digits are never mirrored


def test_views_keep_shape_dtype_and_range_and_differ():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    views = augmented_views(image, "cifar10", augment_choices("cifar10"), n=6, seed=1)
    assert views.shape == (6, 32, 32, 3) and views.dtype == np.uint8
    assert len({v.tobytes() for v in views}) > 1  # random, not six copies


def test_mnist_views_are_grey_and_unchanged_when_off():
    digit = np.zeros((28, 28), np.uint8)
    digit[8:20, 12:16] = 255
    views = augmented_views(digit, "mnist", augment_choices("mnist"), n=4)
    assert views.shape == (4, 28, 28)
    assert 0 < views.mean() < 255
    same = augmented_views(digit, "mnist", {"rotation": 0, "shift": 0, "zoom": 0, "flip": False}, n=2)
    assert np.array_equal(same[0], digit) and np.array_equal(same[1], digit)
