"""Changing the learning rate mid-run (cnn_core.train.lr_control): the control file, real short trainings
where a change asked at a given batch reaches the optimizer (a schedule recipe, with stop and resume;
the Muon recipe on CIFAR-10), and the Train page's control reaching its running job."""

import json
import math
import threading
import time
from typing import ClassVar

import numpy as np
import pytest

from cnn_core.base.errors import ConfigError, ModelStoreError
from cnn_core.base.store import runs_store
from cnn_core.cli import main
from cnn_core.train.lr_control import ControlFile, control_path, describe_change, request_lr_change
from cnn_core.train.recipes import resolve_config

# -- the control file ---------------------------------------------------------------------------


def test_a_request_to_a_training_run_is_written_then_taken_exactly_once():
    store = runs_store()
    with store.run_lock("live"):  # what a training process holds while it trains
        path = request_lr_change("live", multiply=0.5)
        assert path == store.root / "live.lr.json" and json.loads(path.read_text()) == {"multiply": 0.5}
        watcher = ControlFile(path)
        assert watcher.poll() == ("multiply", 0.5)
        assert not path.exists() and not list(store.root.glob(".live.lr.json*"))
        assert watcher.poll() is None  # applied once
        request_lr_change("live", set_to=0.01)
        request_lr_change("live", set_to=0.02)  # not taken yet: the newer request replaces it
        assert watcher.poll() == ("set", 0.02) and watcher.poll() is None


@pytest.mark.parametrize(
    "text, words",
    [
        ("{not json", "not valid JSON"),
        ('{"multiply": 0}', "greater than 0"),
        ('{"multiply": -2}', "greater than 0"),
        ('{"set": "fast"}', "greater than 0"),
        ('{"set": true}', "greater than 0"),
        ('{"set": NaN}', "greater than 0"),
        ('{"scale": 2}', '"multiply": X'),
        ('{"multiply": 2, "set": 1}', '"multiply": X'),
        ("[0.5]", '"multiply": X'),
    ],
)
def test_an_invalid_request_is_taken_and_refused_with_a_clear_message(isolated_runs, text, words):
    isolated_runs.mkdir(parents=True, exist_ok=True)
    path = isolated_runs / "run.lr.json"
    path.write_text(text)
    watcher = ControlFile(path)
    with pytest.raises(ConfigError, match=words) as err:
        watcher.poll()
    assert "run.lr.json" in str(err.value) and "ignored" in str(err.value)
    assert not path.exists() and watcher.poll() is None


def test_a_file_that_cannot_be_taken_is_tried_once_until_it_changes(isolated_runs, monkeypatch):
    import os

    from cnn_core.train import lr_control

    isolated_runs.mkdir(parents=True, exist_ok=True)
    path = isolated_runs / "run.lr.json"
    path.write_text('{"multiply": 2}')
    tries = []

    def refusing_replace(src, dst):
        tries.append(src)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(lr_control.os, "replace", refusing_replace)
    watcher = ControlFile(path)
    with pytest.raises(ConfigError, match="could not be taken"):
        watcher.poll()
    assert watcher.poll() is None and watcher.poll() is None and len(tries) == 1  # a stat per look, no more
    monkeypatch.undo()
    path.write_text('{"multiply": 3}')
    os.utime(path, ns=(time.time_ns() + 10**9,) * 2)
    assert watcher.poll() == ("multiply", 3.0)


def test_only_a_run_that_is_training_can_be_asked(isolated_runs):
    with pytest.raises(ModelStoreError, match="no run named 'ghost'"):
        request_lr_change("ghost", multiply=0.5)
    store = runs_store()
    store.save_json("done", ".json", {"status": "finished"})
    with pytest.raises(ConfigError, match="'done' is not training .*finished"):
        request_lr_change("done", multiply=0.5)
    store.save_json("cut", ".last.json", {"epoch": 1})
    with pytest.raises(ConfigError, match="resume it"):
        request_lr_change("cut", set_to=0.1)
    with store.run_lock("live"):
        for kwargs in ({"multiply": 0.0}, {"set_to": -1.0}, {"multiply": math.inf}, {}, {"multiply": 2, "set_to": 1}):
            with pytest.raises(ConfigError):
                request_lr_change("live", **kwargs)
    assert not list(isolated_runs.glob("*.lr.json"))


def test_the_cli_writes_the_control_file_and_says_why_it_cannot(isolated_runs, capsys):
    assert main(["lr", "--run", "ghost", "--multiply", "0.5"]) == 2
    assert "no run named 'ghost'" in capsys.readouterr().err
    with runs_store().run_lock("live"):
        assert main(["lr", "--run", "live", "--set", "0.01"]) == 0
        assert "set its learning rate to 0.01 from its next batch" in capsys.readouterr().out
        assert json.loads((isolated_runs / "live.lr.json").read_text()) == {"set": 0.01}
        assert main(["lr", "--run", "live", "--multiply", "-1"]) == 2
        assert "greater than 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as both:
        main(["lr", "--run", "live", "--multiply", "2", "--set", "0.1"])
    assert both.value.code == 2


def test_the_scaled_schedule_saves_and_loads_with_its_factor_and_adds_no_optimizer_variable():
    import keras

    from cnn_core.train.optimizer import ScaledSchedule, TriangleSchedule, compile_model, make_optimizer

    inner = TriangleSchedule(1.5, 10, 100, 0.2, 0.07)
    schedule = ScaledSchedule(inner)
    schedule.factor.assign(0.25)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(again, ScaledSchedule) and isinstance(again.schedule, TriangleSchedule)
    for step in (0, 10, 57):
        assert float(again(step)) == pytest.approx(0.25 * float(inner(step)))
    config = resolve_config("cifar10", "airbench", batch_size=64)
    inputs = keras.Input((4,))
    model = compile_model(keras.Model(inputs, keras.layers.Dense(10)(inputs)), config, steps_per_epoch=8)
    bare = make_optimizer(config, 8)
    model.optimizer.build(model.trainable_variables)
    bare.build(model.trainable_variables)
    assert isinstance(model.optimizer._learning_rate, ScaledSchedule)
    assert len(model.optimizer.variables) == len(bare.variables)


# -- real short trainings -----------------------------------------------------------------------


def _hook(name, at, ask, stop=None, stop_at=None, seen=None):
    """A listener that asks run `name` for `ask` at batch `at` = (epoch, step), as another shell would,
    and optionally sets `stop` at batch `stop_at`."""

    def listener(event):
        if seen is not None:
            seen.append(event)
        if event["type"] == "batch" and (event["epoch"], event["step"]) == at:
            request_lr_change(name, **ask)
        if stop is not None and event["type"] == "batch" and (event["epoch"], event["step"]) == stop_at:
            stop.set()

    return listener


@pytest.mark.slow  # trains a model
def test_a_multiplier_scales_the_rest_of_the_schedule_and_survives_stop_and_resume(small_data_dir):
    from cnn_core.train.optimizer import ScaledSchedule, learning_rate
    from cnn_core.train.training import train

    config = resolve_config("mnist", "quick", subset=512, epochs=2, batch_size=64)  # triangle schedule
    stop, seen = threading.Event(), []
    first = train(
        config,
        "halved",
        listener=_hook("halved", (1, 3), {"multiply": 0.5}, stop, (2, 2), seen),
        stop_event=stop,
        data_dir=small_data_dir,
    )
    assert first.status == "stopped"
    steps = seen[0]["steps"]
    assert steps == 8
    inner = learning_rate(config, steps)  # the recipe's schedule, unscaled

    def planned(step):
        return float(inner(step))

    batch_lr = {(e["epoch"], e["step"]): e["lr"] for e in seen if e["type"] == "batch"}  # the next step's lr
    assert batch_lr[(1, 2)] == pytest.approx(planned(2), rel=1e-5)  # before the change: the plan
    assert batch_lr[(1, 4)] == pytest.approx(0.5 * planned(4), rel=1e-5)  # after it: half the plan
    assert batch_lr[(2, 1)] == pytest.approx(0.5 * planned(9), rel=1e-5)
    (change,) = [e for e in seen if e["type"] == "lr_change"]
    assert (change["step"], change["epoch"], change["batch"], change["asked"]) == (3, 1, 3, {"multiply": 0.5})
    assert change["lr_before"] == pytest.approx(planned(3), rel=1e-5)
    assert change["lr_after"] == pytest.approx(0.5 * planned(3), rel=1e-5)
    store = runs_store()
    card = store.load_card("halved")
    assert card["lr_changes"] == [{k: v for k, v in change.items() if k != "type"}]
    assert card["history"][0]["lr"] == pytest.approx(0.5 * planned(8), rel=1e-5)
    assert (card["history"][0]["lr_factor"], card["history"][0]["lr_changes"]) == (0.5, 1)
    last = store.load_model("halved", last=True)  # the saved optimizer keeps the factor
    assert isinstance(last.optimizer._learning_rate, ScaledSchedule)
    assert float(last.optimizer._learning_rate.factor.numpy()) == 0.5

    resumed_events = []
    result = train({}, "halved", listener=resumed_events.append, data_dir=small_data_dir, resume=True)
    assert result.status == "finished"
    resumed_lr = {e["step"]: e["lr"] for e in resumed_events if e["type"] == "batch"}
    assert resumed_lr[4] == pytest.approx(0.5 * planned(12), rel=1e-5)
    card = result.card
    assert [c["step"] for c in card["lr_changes"]] == [3]
    assert card["history"][1]["lr"] == pytest.approx(0.5 * planned(16), rel=1e-5)
    assert (card["history"][1]["lr_factor"], card["history"][1]["lr_changes"]) == (0.5, 0)
    assert store.load_model("halved").count_params() == card["params"]
    assert not control_path(store, "halved").exists()


@pytest.mark.slow  # trains a model
def test_setting_the_muon_recipes_lr_moves_muons_own_step_too(data_dir):
    """airbench (MuonSGD) on CIFAR-10: after `set` to 1e-9 at batch 3 the Muon kernels stop moving,
    which they do only if the compiled training step reads the changed factor. (Their momentum holds
    no lr; SGD's velocity, which does in Keras, would carry the others on for a while.)"""
    import keras

    from cnn_core.data.datasets import Dataset, load_dataset
    from cnn_core.train.training import train

    full = load_dataset("cifar10", data_dir)
    data = Dataset(
        full.info, full.x_train, full.y_train, full.x_test[:500], full.y_test[:500], full.source, full.sha256
    )

    class Weights(keras.callbacks.Callback):  # runs after the trainer's callbacks, the lr control among them
        at: ClassVar[dict] = {}

        def on_train_batch_end(self, batch, logs=None):
            self.at[batch + 1] = [
                np.array(v.numpy()) for v in self.model.trainable_variables if self.model.optimizer._is_muon(v)
            ]

    config = resolve_config("cifar10", "airbench", subset=512, epochs=1, batch_size=64, val_size=0)
    assert config["optimizer"] == "muon"
    seen, weights = [], Weights()
    result = train(
        config,
        "muon",
        listener=_hook("muon", (1, 3), {"set_to": 1e-9}, seen=seen),
        data=data,
        extra_callbacks=[weights],
    )
    assert result.status == "finished"

    def moved(a, b):
        return max(float(np.max(np.abs(x - y))) for x, y in zip(weights.at[a], weights.at[b], strict=False))

    # Step 4 re-normalises the Muon kernels that step 3 moved; from step 5 on only the lr moves them.
    assert len(weights.at[1]) >= 3 and moved(1, 3) > 1e-5
    assert moved(4, 8) < 1e-3 * moved(1, 3)
    (change,) = result.card["lr_changes"]
    ratio = config["muon_lr"] / config["lr"]
    assert change["asked"] == {"set": 1e-9} and change["lr_after"] == pytest.approx(1e-9, rel=1e-4)
    assert change["muon_lr_before"] == pytest.approx(ratio * change["lr_before"], rel=1e-5)
    assert change["muon_lr_after"] == pytest.approx(ratio * 1e-9, rel=1e-4)
    assert result.card["history"][0]["lr_factor"] == pytest.approx(1e-9 / change["lr_before"], rel=1e-4)
    assert "Muon" in describe_change(change)
    assert runs_store().load_model("muon").count_params() == result.card["params"]


# -- the Train page -----------------------------------------------------------------------------


@pytest.mark.slow  # trains a model
def test_the_train_pages_control_reaches_the_running_job_and_shows_on_its_curves(small_data_env, isolated_runs):
    import streamlit as st
    from test_app import _configure_small_run, _wait_for_job, open_page, texts

    from app_pages._common import get_jobs

    st.cache_resource.clear()
    try:
        at = open_page("app_pages/train.py")
        _configure_small_run(at, epochs=20, subset=1000, name="ui_lr")  # seed: Adam, a plain (plateau) lr
        at.button(key="start").click().run()
        _wait_for_job(at, lambda s: s.last_batch is not None)
        other = open_page("app_pages/train.py")  # another tab sees the run but no control
        assert "lr_half" not in [b.key for b in other.button] and "change its learning rate" in texts(other)
        at.run()
        at.button(key="lr_half").click().run()
        assert not at.exception and not at.error
        snap = _wait_for_job(at, lambda s: s.lr_changes and len(s.epochs) >= s.lr_changes[0]["epoch"])
        at.run()
        at.button(key="stop").click().run()
        snap = _wait_for_job(at, lambda s: not s.active)
        (change,) = snap.lr_changes
        assert change["asked"] == {"multiply": 0.5} and change["lr_before"] == pytest.approx(1e-3, rel=1e-5)
        assert change["lr_after"] == pytest.approx(5e-4, rel=1e-5)
        card = runs_store().load_card("ui_lr")
        assert card["lr_changes"][0]["step"] == change["step"]
        changed = card["history"][change["epoch"] - 1]
        assert changed["lr_changes"] == 1 and changed["lr"] == pytest.approx(5e-4, rel=1e-5)
        at.run()
        assert f"Learning-rate changes: {describe_change(change)}" in texts(at)
        from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

        frames = [convert_arrow_bytes_to_pandas_df(c.proto.data.data) for c in at.get("vega_lite_chart")]
        lr = next(f for f in frames if "kind" in f.columns)  # the learning-rate chart: its line and the change's rule
        rule = lr[lr["kind"] == "change"]
        assert list(rule["change"]) == [describe_change(change)]
        assert rule["x"].iloc[0] == pytest.approx(change["epoch"] - 1 + change["batch"] / snap.start_event["steps"])
    finally:
        get_jobs().wait(240)
        st.cache_resource.clear()
