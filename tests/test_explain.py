import numpy as np
import pytest

from cnn_core.analysis import explain
from cnn_core.data.datasets import dataset_info
from cnn_core.nets.models import build_model


def test_layer_table_covers_every_layer_with_explanations():
    model = build_model("seed", "cifar10")
    rows = explain.layer_table(model)
    assert [r["layer"] for r in rows] == [layer.name for layer in model.layers]
    assert sum(r["parameters"] for r in rows) == model.count_params()
    assert all(r["what it does"] for r in rows if r["type"] != "InputLayer")


@pytest.mark.parametrize("arch", ["seed", "fast", "turbo", "wide"])
def test_one_feature_map_stack_per_conv_layer(arch):
    model = build_model(arch, "cifar10")
    info = dataset_info("cifar10")
    maps = explain.feature_maps(model, np.zeros((32, 32, 3), np.uint8), info)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert list(maps) == [layer.name for layer in convs]
    assert [m.shape[-1] for m in maps.values()] == [layer.filters for layer in convs]
    assert all(m.dtype == np.float32 for m in maps.values())  # also from the bfloat16 `turbo` net


def test_first_layer_filters_are_scaled_kernels():
    model = build_model("seed", "mnist")
    filters = explain.first_layer_filters(model)
    assert filters.shape == (32, 3, 3, 1) and filters.min() >= 0 and filters.max() <= 1


def bars(n: int, seed: int):
    """A task decided by *what* is drawn, not where: a horizontal bar (class 0) or a vertical bar
    (class 1) at a random place on noise. The discriminative region is the bar itself."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 30, (n, 28, 28), dtype=np.uint8)
    y = np.arange(n) % 2
    boxes = []
    for i in range(n):
        r, c = rng.integers(2, 14, 2)
        box = (slice(r, r + 3), slice(c, c + 12)) if y[i] == 0 else (slice(r, r + 12), slice(c, c + 3))
        x[i][box] = 255
        boxes.append(box)
    return x, y, boxes


@pytest.mark.slow  # trains a model
@pytest.mark.parametrize("arch", ["seed", "fast"])
def test_grad_cam_highlights_the_discriminative_region(arch):
    import keras

    from cnn_core.train.recipes import resolve_config
    from cnn_core.train.training import compile_model, make_tf_dataset

    info = dataset_info("mnist")
    keras.utils.set_random_seed(0)
    x_train, y_train, _ = bars(800, seed=0)
    x_test, y_test, boxes = bars(20, seed=1)
    model = compile_model(build_model(arch, "mnist"), resolve_config("mnist", arch, no_augment=True), 13)
    model.fit(make_tf_dataset(x_train, y_train, info, 64, None, True, 0), epochs=5, verbose=0)
    accuracy = (model.predict(x_test[..., None].astype("float32"), verbose=0).argmax(1) == y_test).mean()
    assert accuracy >= 0.9, accuracy  # an explanation only means something for a model that learned the task
    hits = 0
    for i in range(len(x_test)):
        heat, cls = explain.grad_cam(model, x_test[i], info, int(y_test[i]))
        assert heat.shape == (28, 28) and 0 <= heat.min() and heat.max() <= 1 and cls == y_test[i]
        on_bar = np.zeros((28, 28), bool)
        on_bar[boxes[i]] = True
        hits += heat[on_bar].mean() > heat[~on_bar].mean()
    assert hits >= 15, hits  # measured: 18 of 20 for both architectures


def test_strongest_feature_maps_rank_by_mean_response_and_scale_each_map():
    maps = np.zeros((4, 4, 5), np.float32)
    maps[..., 1] = 1.0  # flat: no contrast to show
    maps[..., 3] = np.arange(16, dtype=np.float32).reshape(4, 4) * 2  # mean 15, the strongest
    maps[..., 4] = np.arange(16, dtype=np.float32).reshape(4, 4) - 10  # mean -2.5, the weakest
    ranked = explain.strongest_feature_maps(maps, count=3)
    assert [channel for channel, _ in ranked] == [3, 1, 2]
    tile = ranked[0][1]
    assert tile.dtype == np.uint8 and tile.shape == (4, 4)
    assert tile.min() == 0 and tile.max() == 255 and tile[0, 1] == int(2 / 30 * 255)
    assert ranked[1][1].max() == 0  # a flat map is black, not a division by zero
    assert len(explain.strongest_feature_maps(maps, count=32)) == 5


def test_first_layer_filter_tiles_are_pictures_of_each_kernel():
    grey = explain.first_layer_filter_tiles(build_model("seed", "mnist"))
    colour = explain.first_layer_filter_tiles(build_model("seed", "cifar10"))
    assert len(grey) == 32 and grey[0].shape == (3, 3) and grey[0].dtype == np.uint8
    assert colour[0].shape == (3, 3, 3)
    assert all(t.min() == 0 and t.max() == 255 for t in grey)  # each kernel spans its own range
