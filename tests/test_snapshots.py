"""Each epoch's snapshot (cnn_core.train.snapshots): what the epoch slider on the Results and Train pages
replays. Checked against the run's own saved model, on real MNIST."""

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnn_core.base.errors import ConfigError
from cnn_core.base.store import runs_store
from cnn_core.data.datasets import prepare_data
from cnn_core.train.recipes import resolve_config
from cnn_core.train.snapshots import MAX_CHANNELS, confusion_at, filter_tiles, load_snapshots, map_tiles
from cnn_core.train.training import train
from conftest import REPO


def _config(epochs):
    return resolve_config("mnist", "seed", epochs=epochs, subset=3000, batch_size=32, val_size=300, seed=3)


@pytest.mark.slow  # trains a model
def test_every_epoch_is_recorded_as_the_model_was_then_and_a_resumed_run_adds_to_it(small_data_env):
    config = _config(2)
    train(config, "replayed")
    store = runs_store()
    snaps = load_snapshots(store, "replayed")
    assert snaps.epochs.tolist() == [0, 1, 2]  # before training, then after each epoch
    _, split = prepare_data(config)
    assert np.array_equal(snaps.val_labels, split.y_val[: len(snaps.val_labels)]) and len(snaps.val_labels) > 0
    assert snaps.probe_source == "validation image #0" and np.array_equal(snaps.probe, split.x_val[0])

    last = store.load_model("replayed", last=True)  # the state after epoch 2
    from cnn_core.data.datasets import dataset_info
    from cnn_core.data.preprocess import to_model_input

    predicted = np.argmax(
        last.predict(to_model_input(split.x_val[: len(snaps.val_labels)], dataset_info("mnist")), verbose=0), axis=-1
    )
    assert np.mean(predicted == snaps.val_predictions[-1]) > 0.99  # the same model's answers
    layer = last.get_layer(snaps.layer)
    np.testing.assert_allclose(snaps.filters[-1].astype(np.float32), np.asarray(layer.kernel), atol=2e-3, rtol=2e-3)
    assert not np.allclose(snaps.filters[0], snaps.filters[-1])  # the filters moved while it learned

    cm, per_class = confusion_at(snaps, 2, 10)
    assert cm.sum() == len(snaps.val_labels)
    assert np.trace(cm) / cm.sum() == pytest.approx(np.mean(snaps.val_predictions[-1] == snaps.val_labels))
    _, untrained = confusion_at(snaps, 0, 10)
    assert per_class.mean() > untrained.mean() + 0.3  # it learned between epoch 0 and 2
    tiles = filter_tiles(snaps, 1)
    assert len(tiles) == layer.kernel.shape[-1] and tiles[0].dtype == np.uint8
    maps = map_tiles(snaps, 1)
    assert len(maps) == min(MAX_CHANNELS, layer.kernel.shape[-1]) and maps[0].shape == tuple(layer.output.shape[1:3])
    with pytest.raises(ValueError, match="No snapshot of epoch 7"):
        confusion_at(snaps, 7, 10)

    train({"epochs": 3}, "replayed", resume=True)
    resumed = load_snapshots(store, "replayed")
    assert resumed.epochs.tolist() == [0, 1, 2, 3]
    assert np.array_equal(resumed.val_predictions[:3], snaps.val_predictions)


@pytest.mark.slow  # trains a model
def test_the_users_own_image_is_the_probe_and_a_wrong_one_is_refused(small_data_env):
    probe = np.zeros((28, 28), np.uint8)
    probe[6:22, 12:16] = 255  # a drawn "1"
    train(_config(1), "own_probe", probe=probe)
    snaps = load_snapshots(runs_store(), "own_probe")
    assert snaps.probe_source == "your image" and np.array_equal(snaps.probe, probe)
    with pytest.raises(ConfigError, match=r"probe image must be a uint8 array of shape \(28, 28\)"):
        train(_config(1), "bad_probe", probe=np.zeros((32, 32, 3), np.uint8))


@pytest.mark.slow  # trains a model
def test_the_results_page_replays_a_run_and_says_when_a_model_has_nothing_to_replay(small_data_env):
    train(_config(1), "page_replay")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/results.py").run()
    at.selectbox(key="results_model").set_value("page_replay").run()
    at.session_state["results_tab"] = "Epoch by epoch"  # the tab runs only when open
    at.run()
    assert not at.exception
    slider = at.select_slider(key="results_page_replay_epoch")
    assert slider.options == ["before training", "after epoch 1"] and slider.value == 1
    assert any("Validation confusion matrix" in c.value and "correct" in c.value for c in at.caption)
    captions = [c for image in at.get("image") for c in image.captions]
    assert any(c.startswith("Filters of") for c in captions) and any("feature maps of the probe" in c for c in captions)
    slider.set_value(0).run()
    assert not at.exception and at.select_slider(key="results_page_replay_epoch").value == 0

    at.selectbox(key="results_model").set_value("mnist_fast30").run()  # shipped before snapshots existed
    assert any("nothing to replay" in i.value for i in at.info)
