"""airbench94's method in Keras (the `airbench` net and recipe): the whitening stem, the
dirac init, per-variable learning rates with L2 through the momentum, the triangle schedule and
the weight averaging, each checked against what it promises, and one short real training run."""

import keras
import numpy as np
import pytest

from cnn_core.base.errors import ConfigError
from cnn_core.nets.initialisers import dirac_identity, initialise_from_data, patch_whitening_kernel
from cnn_core.nets.models import WHITEN_LAYER, build_model
from cnn_core.train.callbacks import Lookahead
from cnn_core.train.optimizer import GroupedSGD, MuonSGD, TriangleSchedule
from cnn_core.train.recipes import resolve_config


def _patches(x, k):
    _n, h, w, c = x.shape
    return np.concatenate(
        [x[:, i : h - k + 1 + i, j : w - k + 1 + j, :] for i in range(k) for j in range(k)], axis=-1
    ).reshape(-1, k * k * c)


def test_whitening_kernel_decorrelates_real_photo_patches(data_dir):
    from cnn_core.data.datasets import load_dataset

    x = load_dataset("cifar10", data_dir).x_train[:500].astype(np.float64) / 64 - 2
    kernel = patch_whitening_kernel(x, 2, 24, eps=0.0)
    assert kernel.shape == (2, 2, 3, 24)
    np.testing.assert_allclose(kernel[..., 12:], -kernel[..., :12])  # each filter with its negation
    # Projected onto the first 12 filters, the patches have (nearly) the identity covariance.
    projected = _patches(x, 2) @ kernel[..., :12].reshape(12, 12)
    covariance = projected.T @ projected / len(projected)
    np.testing.assert_allclose(covariance, np.eye(12), atol=1e-3)


def test_whitening_stem_filter_count_is_checked():
    with pytest.raises(ValueError, match="at most 24 filters"):
        patch_whitening_kernel(np.zeros((2, 8, 8, 3)), 2, 26)


def test_dirac_init_passes_the_first_channels_through():
    rng = np.random.default_rng(0)
    kernel = dirac_identity(np.zeros((3, 3, 4, 6), np.float32))
    conv = keras.layers.Conv2D(6, 3, padding="same", use_bias=False)
    x = rng.normal(size=(1, 5, 5, 4)).astype(np.float32)
    conv.build(x.shape)
    conv.set_weights([kernel])
    out = keras.ops.convert_to_numpy(conv(x))
    np.testing.assert_allclose(out[..., :4], x, atol=1e-6)
    np.testing.assert_allclose(out[..., 4:], 0.0, atol=1e-6)


def test_the_keras_net_has_the_peers_layer_shapes():
    from benchmarks.step_profile import PEER_LAYERS

    model = build_model("airbench", "cifar10")
    ours = [
        tuple(layer.get_weights()[0].shape)
        for layer in model.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
    ]
    theirs = [(k, k, cin, cout) if kind.startswith("conv") else (cin, cout) for kind, _, _, cin, cout, k in PEER_LAYERS]
    assert ours == theirs
    bn = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bn and all(layer.gamma is None and layer.momentum == 0.6 for layer in bn)  # scale-free, fast stats


def _one_step(multipliers, l2=0.0, freeze_after=None, steps=1):
    variables = [keras.Variable(np.ones(3, np.float32), name=name) for name in ("kernel", "beta", "frozen")]
    optimizer = GroupedSGD(
        learning_rate=0.1, momentum=0.5, l2=l2, lr_multipliers=multipliers, freeze_after=freeze_after
    )
    for _ in range(steps):
        optimizer.apply_gradients([(np.full(3, 0.5, np.float32), v) for v in variables])
    return [keras.ops.convert_to_numpy(v)[0] for v in variables]


def test_grouped_sgd_scales_each_variables_learning_rate():
    kernel, beta, frozen = _one_step({"beta": 64.0, "frozen": 0.0})
    assert frozen == 1.0
    np.testing.assert_allclose((1 - beta) / (1 - kernel), 64.0, rtol=1e-5)


def test_grouped_sgd_decay_shrinks_every_weight_by_the_same_share():
    # With a zero gradient the L2 term alone moves the weights: the same step for both groups.
    variables = [keras.Variable(np.ones(3, np.float32), name=name) for name in ("kernel", "beta")]
    optimizer = GroupedSGD(learning_rate=0.1, momentum=0.0, l2=0.01, lr_multipliers={"beta": 64.0})
    optimizer.apply_gradients([(np.zeros(3, np.float32), v) for v in variables])
    kernel, beta = (keras.ops.convert_to_numpy(v)[0] for v in variables)
    np.testing.assert_allclose([kernel, beta], [1 - 0.1 * 0.01] * 2, rtol=1e-6)


def test_grouped_sgd_freezes_a_variable_after_its_step():
    moved_once = _one_step({}, freeze_after={"frozen": 1}, steps=1)
    moved_thrice = _one_step({}, freeze_after={"frozen": 1}, steps=3)
    assert moved_once[2] == moved_thrice[2] < 1.0  # stepped once, then held
    assert moved_thrice[0] < moved_once[0]


def test_grouped_sgd_round_trips_through_its_config():
    optimizer = GroupedSGD(
        learning_rate=0.1, momentum=0.85, l2=0.001, lr_multipliers={"beta": 64.0}, freeze_after={"whiten/bias": 147}
    )
    twin = GroupedSGD.from_config(optimizer.get_config())
    assert (twin.l2, twin.lr_multipliers, twin.freeze_after, twin.nesterov) == (
        0.001,
        {"beta": 64.0},
        {"whiten/bias": 147},
        True,
    )


def test_triangle_schedule_rises_to_the_peak_then_falls_to_its_end():
    schedule = TriangleSchedule(1.5, peak_step=23, total_steps=100, start_factor=0.2, end_factor=0.07)
    values = [float(schedule(step)) for step in (0, 23, 100, 150)]
    np.testing.assert_allclose(values, [0.3, 1.5, 0.105, 0.105], rtol=1e-5)
    assert float(schedule(10)) < float(schedule(20)) and float(schedule(60)) > float(schedule(90))


def test_lookahead_resets_the_weights_to_their_running_average():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    lookahead = Lookahead(every=1, decay=0.5, power=0, total_steps=10)  # keep half of the average each step
    start = model.get_weights()[0].copy()
    lookahead.set_model(model)
    lookahead.on_train_begin()
    model.train_on_batch(np.ones((4, 2), np.float32), np.full((4, 1), 5.0, np.float32))
    stepped = model.get_weights()[0].copy()
    lookahead.on_train_batch_end(0)
    np.testing.assert_allclose(model.get_weights()[0], 0.5 * start + 0.5 * stepped, rtol=1e-6)


def test_lookahead_ends_on_the_average_but_a_run_shorter_than_its_period_keeps_its_steps():
    def run(total_steps: int) -> tuple[np.ndarray, np.ndarray]:
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        lookahead = Lookahead(every=5, decay=0.5, power=0, total_steps=total_steps)
        lookahead.set_model(model)
        lookahead.on_train_begin()
        for batch in range(total_steps):
            model.train_on_batch(np.ones((4, 2), np.float32), np.full((4, 1), 5.0, np.float32))
            stepped = model.get_weights()[0].copy()
            lookahead.on_train_batch_end(batch)
            if batch == 4:
                averaged = model.get_weights()[0].copy()  # the average taken at step 5
        return model.get_weights()[0], (averaged if total_steps > 5 else stepped)

    # 7 steps: averaged at step 5, then steps 6 and 7 are dropped for that average.
    final, expected = run(7)
    np.testing.assert_allclose(final, expected, rtol=1e-6)
    # 3 steps, no average taken: the weights keep all three steps instead of going back to the start.
    final, stepped = run(3)
    np.testing.assert_allclose(final, stepped, rtol=1e-6)


def _newton_schulz(matrix: np.ndarray, steps: int) -> np.ndarray:
    """airbench94_muon's orthogonalisation in float64, written out: the quintic iteration on the
    matrix scaled to unit Frobenius norm, run on its wide orientation."""
    a, b, c = 3.4445, -4.7750, 2.0315
    tall = matrix.shape[0] > matrix.shape[1]
    x = matrix.T if tall else matrix
    x = x / (np.linalg.norm(x) + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def test_muon_steps_a_conv_kernel_as_airbench94_muon_does():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 3, 4, 6)).astype(np.float32)
    gradients = [rng.normal(size=start.shape).astype(np.float32) for _ in range(3)]
    kernel = keras.Variable(start, name="kernel")
    optimizer = MuonSGD(learning_rate=0.5, momentum=0.85, muon_lr_ratio=0.2, muon_momentum=0.6)
    expected, buffer = start.astype(np.float64), 0.0
    for gradient in gradients:
        optimizer.apply_gradients([(gradient, kernel)])
        buffer = 0.6 * buffer + gradient  # PyTorch's Nesterov buffer ...
        direction = (gradient + 0.6 * buffer).reshape(-1, 6)  # ... one column per output channel
        expected = expected * np.sqrt(6) / np.linalg.norm(expected)  # kernel back to norm √outputs
        expected = expected - 0.5 * 0.2 * _newton_schulz(direction, 3).reshape(start.shape)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), expected, atol=1e-5)


def test_muon_leaves_the_rest_to_grouped_sgd():
    # A BN bias and the classifier (not 4-D) and the frozen whitening kernel (multiplier 0) take
    # GroupedSGD's step, exactly as GroupedSGD alone gives it.
    def stepped(optimizer_class, **extra):
        variables = [
            keras.Variable(np.ones(shape, np.float32), name=name)
            for name, shape in (("beta", (3,)), ("classifier_kernel", (4, 2)), ("whiten_kernel", (2, 2, 3, 4)))
        ]
        optimizer = optimizer_class(
            learning_rate=0.1, momentum=0.85, l2=0.01, lr_multipliers={"beta": 64.0, "whiten_kernel": 0.0}, **extra
        )
        for _ in range(2):
            optimizer.apply_gradients([(np.full(v.shape, 0.5, np.float32), v) for v in variables])
        return [keras.ops.convert_to_numpy(v) for v in variables]

    muon, grouped = stepped(MuonSGD, muon_lr_ratio=3.0), stepped(GroupedSGD)
    for ours, reference in zip(muon, grouped, strict=False):
        np.testing.assert_array_equal(ours, reference)
    assert np.all(muon[2] == 1.0) and np.all(muon[0] < 1.0)


def test_muon_round_trips_through_its_config():
    optimizer = MuonSGD(
        learning_rate=1.656,
        momentum=0.85,
        l2=0.0024,
        lr_multipliers={"beta": 64.0},
        muon_lr_ratio=0.145,
        muon_momentum=0.6,
        ns_steps=3,
    )
    twin = MuonSGD.from_config(optimizer.get_config())
    assert (twin.muon_lr_ratio, twin.muon_momentum, twin.ns_steps, twin.lr_multipliers) == (
        0.145,
        0.6,
        3,
        {"beta": 64.0},
    )


def test_cifar10_airbench_runs_airbench94_muon_and_the_digits_keep_airbench94():
    photos, digits = resolve_config("cifar10", "airbench"), resolve_config("mnist", "airbench")
    assert (photos["optimizer"], photos["batch_size"], photos["lookahead_every"]) == ("muon", 2000, 0)
    assert photos["lr_multipliers"] == {"beta": 64.0}  # 0.053 vs 0.67·(9/256)² per example: the bias scaler again
    assert (digits["optimizer"], digits["lookahead_every"]) == ("sgd_nesterov_l2", 5)
    assert "muon_lr" not in digits and "muon_lr" not in resolve_config("cifar10", "quick")
    # A capped server's smaller batches take proportionally smaller steps, Muon's as well, also
    # when the lr is given (the Train page always gives one).
    capped = resolve_config("cifar10", "airbench", batch_size=256)
    assert capped["lr"] == pytest.approx(photos["lr"] * 256 / 2000)
    assert capped["muon_lr"] == pytest.approx(photos["muon_lr"] * 256 / 2000)
    assert resolve_config("cifar10", "airbench", batch_size=256, lr=0.5)["muon_lr"] == capped["muon_lr"]
    assert resolve_config("cifar10", "airbench", batch_size=256, muon_lr=0.1)["muon_lr"] == 0.1
    with pytest.raises(ConfigError, match="muon_lr"):
        resolve_config("cifar10", "airbench", muon_lr=0.0)
    with pytest.raises(ConfigError, match="muon_momentum"):
        resolve_config("cifar10", "airbench", muon_momentum=1.0)


def test_recipe_values_are_checked():
    with pytest.raises(ConfigError, match="lr_multipliers"):
        resolve_config("cifar10", "airbench", lr_multipliers={"beta": -1.0})
    with pytest.raises(ConfigError, match="lookahead_decay"):  # the digits' recipe averages weights
        resolve_config("mnist", "airbench", lookahead_decay=1.5)
    with pytest.raises(ConfigError, match="lr end factor"):
        resolve_config("cifar10", "airbench", lr_end_factor=2.0)


def test_the_recipes_lr_keeps_the_step_per_image_at_another_batch_size():
    # airbench's decoupled lr: its summed loss gives every image the same step at any batch size;
    # with Keras' mean loss the lr follows the batch in proportion.
    quick = resolve_config("cifar10", "quick")
    assert quick["batch_size"] == 1024 and quick["lr_scales_with_batch"] is True
    assert resolve_config("cifar10", "quick", batch_size=256)["lr"] == pytest.approx(quick["lr"] / 4)
    assert resolve_config("mnist", "airbench", batch_size=1024)["lr"] == pytest.approx(
        4 * resolve_config("mnist", "airbench")["lr"]
    )
    assert resolve_config("cifar10", "quick", batch_size=256, lr=1.0)["lr"] == 1.0  # an lr asked for is kept
    seed = resolve_config("cifar10", "seed")  # Adam's lr does not scale with the batch
    assert resolve_config("cifar10", "seed", batch_size=4 * seed["batch_size"])["lr"] == seed["lr"]
    with pytest.raises(ConfigError, match="lr_scales_with_batch"):
        resolve_config("cifar10", "quick", lr_scales_with_batch="yes")
    with pytest.raises(ConfigError, match="Batch size must be"):  # checked, not scaled, when invalid
        resolve_config("cifar10", "quick", batch_size=0)


@pytest.mark.parametrize(
    "onednn, precision, setting, expected",
    [
        (False, "fp32", "auto", True),
        (True, "fp32", "auto", False),  # XLA pays only over Eigen's convolutions
        (False, "bf16", "auto", False),
        (True, "fp32", True, True),
        (False, "fp32", False, False),
    ],
)
def test_xla_is_chosen_where_it_was_measured_to_pay(monkeypatch, onednn, precision, setting, expected):
    from cnn_core.base import runtime
    from cnn_core.train import optimizer

    monkeypatch.setattr(runtime, "onednn_enabled", lambda: onednn)
    assert optimizer.jit_compiles({"jit_compile": setting, "precision": precision}) is expected


@pytest.mark.slow  # trains a model
def test_a_short_real_run_learns_with_the_stem_frozen(small_data_env):
    from cnn_core.data.datasets import prepare_data
    from cnn_core.train.training import train

    config = resolve_config("mnist", "airbench", epochs=1, subset=6000, val_size=500, batch_size=256)
    result = train(config, "airbench_smoke")
    stem = result.store.load_model("airbench_smoke").get_layer(WHITEN_LAYER).get_weights()
    # The stem the run started from: whitened on the run's own training images.
    fresh = build_model("airbench", "mnist")
    initialise_from_data(fresh, "airbench", "mnist", prepare_data(config)[1].x_train)
    np.testing.assert_allclose(stem[0], fresh.get_layer(WHITEN_LAYER).get_weights()[0], rtol=1e-4, atol=1e-5)
    assert np.any(stem[1] != 0)  # its bias did train (the first whiten_bias_epochs)
    assert result.card["test_accuracy"] > 0.8


@pytest.mark.slow  # trains a model
def test_a_short_real_muon_run_learns_and_keeps_its_kernels_at_their_norm(small_data_env):
    from cnn_core.train.training import train

    # No TTA: the evaluation at the end is what would cost the most here.
    config = resolve_config("cifar10", "airbench", epochs=2, subset=3000, val_size=0, batch_size=500, tta=0)
    result = train(config, "muon_smoke")
    model = result.store.load_model("muon_smoke")
    kernels = [
        layer.kernel for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and layer.name != WHITEN_LAYER
    ]
    # Each Muon step starts by setting the kernel's norm to √outputs; the last step's small update
    # is all that moves it off. (Keras' init gives the square kernels that norm already, but the
    # 24→64 and 64→256 ones start 26% and 37% short of it.)
    for kernel in kernels:
        norm = float(np.linalg.norm(keras.ops.convert_to_numpy(kernel)))
        assert norm == pytest.approx(np.sqrt(kernel.shape[-1]), rel=0.05), kernel.path
    assert result.card["test_accuracy"] > 0.25  # 10 classes: chance is 0.10


def _position_coded_digits(count: int) -> np.ndarray:
    """Blank 28×28 images, image i marked with the value i + 1 down its left-hand column:
    after a mirror the mark is in the right-hand column."""
    images = np.zeros((count, 28, 28), np.uint8)
    for i in range(count):
        images[i, :, 0] = i + 1
    return images


def _seen_mirrored(batch: np.ndarray) -> dict[int, bool]:
    """{image number: mirrored?} for a batch of _position_coded_digits after the pipeline."""
    batch = np.asarray(batch)[..., 0]
    return {round(image.max()) - 1: bool(image[:, 0].max() == 0) for image in batch}


def test_alternating_flip_mirrors_each_image_the_other_way_every_epoch():
    from cnn_core.data.augment import AlternatingFlip
    from cnn_core.data.datasets import dataset_info
    from cnn_core.data.pipeline import make_tf_dataset

    flips = AlternatingFlip(16, seed=3)
    assert 0 < flips.mirrored_first.sum() < 16  # a random half, not all or none
    flip_only = {"rotation": 0.0, "shift": 0.0, "zoom": 0.0, "flip": True}
    ds = make_tf_dataset(
        _position_coded_digits(16),
        np.arange(16),
        dataset_info("mnist"),
        5,
        flip_only,
        shuffle=True,
        seed=0,
        alternating_flip=flips,
    )
    orders = []
    for epoch in range(4):
        flips.on_epoch_begin(epoch)
        seen, order = {}, []
        for images, _ in ds:
            batch = _seen_mirrored(images)
            seen.update(batch)
            order += list(batch)
        assert sorted(seen) == list(range(16))  # every image once per epoch, small last batch included
        expected = flips.mirrored_first if epoch % 2 == 0 else ~flips.mirrored_first
        assert [seen[i] for i in range(16)] == list(expected), epoch
        orders.append(order)
    assert len({tuple(o) for o in orders}) > 1  # still reshuffled every epoch


def test_fit_sets_the_flip_of_each_epoch_before_reading_its_images():
    """Through Keras fit() itself: the images a step trains on are mirrored as that epoch says."""
    from cnn_core.data.augment import AlternatingFlip
    from cnn_core.data.datasets import dataset_info
    from cnn_core.data.pipeline import make_tf_dataset

    class Recorder(keras.layers.Layer):
        def build(self, input_shape):
            self.seen = self.add_weight(shape=(1, 28, 28, 1), initializer="zeros", trainable=False)

        def call(self, x):
            self.seen.assign(x)
            return x

    recorder = Recorder()
    model = keras.Sequential([keras.Input((28, 28, 1)), recorder, keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    flips = AlternatingFlip(3, seed=1)
    ds = make_tf_dataset(
        _position_coded_digits(3),
        np.arange(3),
        dataset_info("mnist"),
        1,
        {"rotation": 0.0, "shift": 0.0, "zoom": 0.0, "flip": True},
        shuffle=True,
        seed=0,
        alternating_flip=flips,
    )
    seen: list[tuple[int, int, bool]] = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            ((image, mirrored),) = _seen_mirrored(keras.ops.convert_to_numpy(recorder.seen)).items()
            seen.append((self.epoch, image, mirrored))

    model.fit(ds, epochs=4, callbacks=[flips, Watch()], shuffle=False, verbose=0)  # shuffled in tf.data
    assert len(seen) == 12
    for epoch, image, mirrored in seen:
        assert mirrored == (bool(flips.mirrored_first[image]) != (epoch % 2 == 1)), (epoch, image)


def test_the_airbench_recipe_alternates_flips_and_the_quick_one_keeps_its_measured_setting():
    assert resolve_config("cifar10", "airbench")["flip_schedule"] == "alternating"
    assert resolve_config("cifar10", "airbench")["tta"] == 2
    assert resolve_config("cifar10", "quick")["flip_schedule"] == "random"
    assert resolve_config("cifar10", "quick")["tta"] is True
    with pytest.raises(ConfigError, match="flip_schedule"):
        resolve_config("cifar10", "airbench", flip_schedule="sometimes")
    with pytest.raises(ConfigError, match="level 0, 1 or 2"):
        resolve_config("cifar10", "airbench", tta=3)
