"""The original notebook's "improvements to try" as recipe switches (cnn_core.train.switches): what each
changes in the recipe, the network, the optimizer, the schedule and the batches, and that a run
with them trains, from the library, the CLI and the Train page, and is recorded in its card."""

import json
import re

import numpy as np
import pytest

from cnn_core.base.errors import ConfigError
from cnn_core.train.recipes import default_config, resolve_config
from cnn_core.train.switches import (
    SWITCHES,
    apply_switches,
    available_switches,
    describe_switches,
    switch_names,
    why_not,
)

# -- the recipe ------------------------------------------------------------------------------------


def test_there_are_the_seven_switches_of_the_original_and_each_changes_the_seed_recipe():
    assert switch_names() == ("residual", "separable", "adamw", "cosine", "mixup", "cutmix", "label_smoothing")
    for dataset in ("mnist", "fashion_mnist", "cifar10"):
        base = default_config(dataset, "seed")
        assert base["switches"] == [] and available_switches(base) == list(switch_names())
        for name in switch_names():
            switched = resolve_config(dataset, "seed", switches=[name])
            changed = {key for key in switched if switched[key] != base[key]}
            assert changed == set(SWITCHES[name].values) | {"switches"}, (name, changed)
            assert switched["switches"] == [name]


def test_switches_are_recorded_in_their_listed_order_once_each():
    config = resolve_config("cifar10", "seed", switches=["mixup", "residual", "mixup"])
    assert config["switches"] == ["residual", "mixup"]
    assert describe_switches(config) == "Residual connections, Mixup"
    assert describe_switches(default_config("cifar10", "seed")) == "none"


def test_an_override_given_with_a_switch_wins_over_the_switchs_value():
    config = resolve_config("mnist", "seed", switches=["label_smoothing"], label_smoothing=0.3)
    assert config["label_smoothing"] == 0.3 and config["switches"] == ["label_smoothing"]


@pytest.mark.parametrize(
    "recipe, name, words",
    [
        ("fast", "adamw", "trains with sgd_nesterov, not Adam"),
        ("airbench", "cosine", "already plans its learning rate over the run (triangle schedule)"),
        ("quick", "label_smoothing", "already smooths its labels by 0.2"),
    ],
)
def test_a_switch_that_cannot_change_a_recipe_is_refused_with_the_reason(recipe, name, words):
    config = default_config("cifar10", recipe)
    assert words in why_not(config, name) and name not in available_switches(config)
    with pytest.raises(ConfigError, match=f"Cannot switch on {SWITCHES[name].title}: .*{re.escape(words)}"):
        resolve_config("cifar10", recipe, switches=[name])


def test_other_recipes_take_the_switches_that_change_them():
    assert available_switches(default_config("cifar10", "fast")) == ["residual", "separable", "mixup", "cutmix"]
    with pytest.raises(ConfigError, match="Unknown switch 'deeper'"):
        apply_switches(default_config("mnist", "seed"), ["deeper"])


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("mixup", -1, "mixup strength"),
        ("cutmix", "yes", "cutmix strength"),
        ("residual", 1.5, "residual must be true or false"),
        ("switches", ["deeper"], "switches must be a list"),
    ],
)
def test_broken_switch_values_in_a_config_are_refused(key, value, words):
    from cnn_core.train.recipes import validate_config

    with pytest.raises(ConfigError, match=words):  # e.g. a hand-edited card's hyperparameters
        validate_config({**default_config("mnist", "seed"), key: value})


# -- the network -----------------------------------------------------------------------------------


def _kinds(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_residual_blocks_add_each_stage_input_back_projected_where_the_width_changes(dataset):
    from cnn_core.nets.models import build_model

    plain, residual = build_model("seed", dataset), build_model("seed", dataset, residual=True)
    stages = 2 if dataset == "mnist" else 3
    assert _kinds(residual).count("Add") == stages and _kinds(plain).count("Add") == 0
    for add in (layer for layer in residual.layers if type(layer).__name__ == "Add"):
        block_out, shortcut = add.input
        assert tuple(block_out.shape) == tuple(shortcut.shape)  # same size: the block's convs pad
    # The stem conv reads the pixels alone; the first block is its second conv (32 → 32: an identity
    # skip), later blocks widen (32 → 64, 64 → 128: a 1×1 projection each).
    shortcuts = [layer for layer in residual.layers if layer.name.startswith("shortcut")]
    assert [layer.filters for layer in shortcuts] == [64, 128][: stages - 1]
    assert all(layer.kernel_size == (1, 1) for layer in shortcuts)
    import keras

    x = np.random.default_rng(0).integers(0, 256, (2, *plain.input_shape[1:])).astype("float32")
    assert residual(x).shape == (2, 10) and np.allclose(keras.ops.sum(residual(x), axis=1), 1, atol=1e-5)


def test_separable_convolutions_keep_the_first_conv_whole_and_need_fewer_weights():
    from cnn_core.nets.models import build_model

    plain, separable = build_model("seed", "cifar10"), build_model("seed", "cifar10", separable=True)
    kinds = [kind for kind in _kinds(separable) if "Conv" in kind]
    assert kinds == ["Conv2D"] + ["SeparableConv2D"] * 5
    assert separable.count_params() < plain.count_params()
    both = build_model("seed", "cifar10", residual=True, separable=True, precision="bf16")
    assert "Add" in _kinds(both) and "SeparableConv2D" in _kinds(both)
    assert both.layers[-1].dtype_policy.compute_dtype == "float32"


def test_the_airbench_net_takes_identity_skips_and_keeps_its_dirac_inits(data_dir):
    from cnn_core.data.datasets import load_dataset
    from cnn_core.nets.initialisers import initialise_from_data
    from cnn_core.nets.models import build_model

    model = build_model("airbench", "mnist", residual=True)
    assert _kinds(model).count("Add") == 3 and not any(layer.name.startswith("shortcut") for layer in model.layers)
    initialise_from_data(model, "airbench", "mnist", load_dataset("mnist", data_dir).x_train[:500], residual=True)
    kernel = model.get_layer("conv2").get_weights()[0]  # conv1 is the first stage's pooled conv
    assert kernel[1, 1, 0, 0] == 1.0 and kernel[0, 0, 0, 0] == 0.0  # the dirac identity on a conv inside a block


def test_explain_sees_separable_convs_and_not_the_shortcuts():
    from cnn_core.analysis.explain import conv_layer_names
    from cnn_core.nets.models import build_model

    model = build_model("seed", "mnist", residual=True, separable=True)
    assert conv_layer_names(model) == ["conv1", "conv2", "conv3", "conv4"]


# -- the optimizer, the schedule and the batches ---------------------------------------------------


def test_adamw_decays_the_kernels_only_and_cosine_falls_from_lr_to_zero():
    import keras

    from cnn_core.nets.models import build_model
    from cnn_core.train.optimizer import compile_model, current_lr

    config = resolve_config("mnist", "seed", epochs=2, switches=["adamw", "cosine"])
    model = compile_model(build_model("seed", "mnist"), config, steps_per_epoch=50)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.AdamW) and optimizer.weight_decay == pytest.approx(0.05)
    assert current_lr(model) == pytest.approx(1e-3)
    schedule = optimizer._learning_rate
    for step, expected in ((0, 1e-3), (50, 5e-4), (100, 0.0)):
        assert float(schedule(step)) == pytest.approx(expected, abs=1e-9)
    assert not optimizer._use_weight_decay(model.get_layer("bn1").gamma)
    assert optimizer._use_weight_decay(model.get_layer("conv1").kernel)


def _batches(config, x, y):
    from cnn_core.data.datasets import dataset_info
    from cnn_core.data.pipeline import make_tf_dataset

    ds = make_tf_dataset(
        x, y, dataset_info("cifar10"), 16, None, shuffle=False, seed=0, mixup=config["mixup"], cutmix=config["cutmix"]
    )
    return [(images.numpy(), labels.numpy()) for images, labels in ds]


@pytest.mark.parametrize("switch", ["mixup", "cutmix"])
def test_mixup_and_cutmix_mix_the_images_and_their_labels_alike(switch):
    rng = np.random.default_rng(0)
    # Each class a flat colour: a mixed image's pixels tell which classes it holds, and how much.
    y = np.arange(64) % 10
    x = np.repeat((y * 25).astype(np.uint8)[:, None, None, None], 32, axis=1).repeat(32, axis=2).repeat(3, axis=3)
    order = rng.permutation(64)
    mixed = _batches(resolve_config("cifar10", "seed", switches=[switch]), x[order], y[order])
    labels = np.concatenate([b[1] for b in mixed])
    images = np.concatenate([b[0] for b in mixed])
    assert np.allclose(labels.sum(axis=1), 1, atol=1e-5)
    soft = labels.max(axis=1) < 0.999
    assert soft.mean() > 0.3, "most images should hold two classes"
    colours = np.arange(10) * 25.0
    if switch == "mixup":  # blended: each image's colour is its labels' mix of the two classes' colours
        assert np.allclose(images.mean(axis=(1, 2, 3)), labels @ colours, atol=0.5)
    else:  # pasted: each class covers the share of the image its label weight says
        share = (images[..., 0][:, None] == colours[None, :, None, None]).mean(axis=(2, 3))
        assert np.allclose(share.sum(axis=1), 1)  # every pixel is one of the classes' colours
        # Keras rounds the drawn box to whole pixels (at least one row), so a tiny weight covers up to 2 of 32.
        assert np.allclose(share, labels, atol=0.07)


def test_with_both_each_batch_gets_one_kind_of_mix():
    y = np.arange(16 * 40) % 10
    x = np.repeat((y * 25).astype(np.uint8)[:, None, None, None], 32, axis=1).repeat(32, axis=2).repeat(3, axis=3)
    batches = _batches(resolve_config("cifar10", "seed", switches=["mixup", "cutmix"]), x, y)
    pasted = [np.isin(np.unique(images), np.arange(10) * 25.0).all() for images, _ in batches]
    assert 5 <= sum(pasted) <= 35, f"{sum(pasted)} of {len(batches)} batches were CutMix"


# -- training with them ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_with_every_switch_trains_and_its_card_records_them(small_data_dir, isolated_runs):
    from cnn_core.base.store import runs_store
    from cnn_core.train.training import train

    config = resolve_config("mnist", "seed", epochs=2, subset=3000, val_size=500, switches=list(switch_names()))
    result = train(config, "all_switches", data_dir=small_data_dir)
    card = result.card
    assert card["switches"] == list(switch_names()) == card["hyperparameters"]["switches"]
    assert card["hyperparameters"]["optimizer"] == "adamw" and card["hyperparameters"]["schedule"] == "cosine"
    history = card["history"]
    assert history[1]["loss"] < history[0]["loss"], history
    # It learns: 10 classes, chance is 0.1. Two epochs with every regulariser on 3,000 images end far from
    # converged, and oneDNN's thread order moves that end by several points from run to run: hence 3× chance.
    assert card["test_accuracy"] > 0.3, card["test_accuracy"]
    model = runs_store().load_model("all_switches")
    assert "Add" in _kinds(model) and "SeparableConv2D" in _kinds(model)


@pytest.mark.slow
def test_the_cli_trains_with_switches_and_refuses_one_the_recipe_cannot_take(small_data_dir, isolated_runs, capsys):
    from cnn_core.cli import main

    assert (
        main(
            [
                "train",
                "--dataset",
                "mnist",
                "--arch",
                "seed",
                "--epochs",
                "1",
                "--subset",
                "600",
                "--val-size",
                "200",
                "--switch",
                "cosine",
                "--switch",
                "label_smoothing",
                "--name",
                "cli_switches",
                "--data-dir",
                str(small_data_dir),
            ]
        )
        == 0
    )
    card = json.loads((isolated_runs / "cli_switches.json").read_text())
    assert card["switches"] == ["cosine", "label_smoothing"] and card["hyperparameters"]["label_smoothing"] == 0.1
    assert "--switch cosine --switch label_smoothing" in card["command"]
    capsys.readouterr()
    assert main(["train", "--arch", "fast", "--switch", "adamw"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Cannot switch on AdamW" in err


@pytest.mark.slow
def test_the_train_page_offers_the_switches_the_recipe_can_take_and_trains_with_them(small_data_env, isolated_runs):
    from tests.test_app import _configure_small_run, _wait_for_job, open_page

    at = open_page("app_pages/train.py")
    # The quick recipe already smooths its labels and plans its lr, with its own optimizer.
    assert at.multiselect(key="switches_mnist_quick").options == [
        "Residual connections",
        "Depthwise-separable convolutions",
        "Mixup",
        "CutMix",
    ]
    _configure_small_run(at, epochs=1, subset=1000, name="page_switches")
    box = at.multiselect(key="switches_mnist_seed")
    assert len(box.options) == 7
    box.set_value(["residual", "mixup"]).run()
    at.button(key="start").click().run()
    assert not at.exception and not at.error
    snap = _wait_for_job(at, lambda s: not s.active)
    assert snap.state == "done", snap
    card = json.loads((isolated_runs / "page_switches.json").read_text())
    assert card["switches"] == ["residual", "mixup"] and card["hyperparameters"]["mixup"] == 0.2


def test_the_compare_page_shows_each_switchs_measured_effect_from_the_committed_benchmark():
    from cnn_core.studio.benchmark_figures import switch_figures
    from tests.test_app import open_page

    figures = switch_figures("cifar10")  # benchmarks/recipe_switches.py writes it beside the shipped models
    assert figures is not None and figures["schedule"]["epochs"] >= 1
    rows = figures["rows"]
    assert [row["switch"] for row in rows] == ["none", *switch_names()]
    assert all(len(row["seeds"]) >= 3 for row in rows)  # the "at least 3 seeds"
    at = open_page("app_pages/compare.py")
    at.selectbox(key="cmp_dataset").set_value("cifar10").run()
    assert not at.exception
    table = next(frame.value for frame in at.dataframe if "beyond seed noise" in frame.value.columns)
    assert list(table["switch"]) == ["none (the seed recipe)", *(SWITCHES[name].title for name in switch_names())]
    assert list(table["test accuracy (mean)"]) == [row["mean"] for row in rows]
    assert list(table["training s"]) == [row["train_seconds"] for row in rows]
    assert any("one switch at a time" in header.value for header in at.subheader)
