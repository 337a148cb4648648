"""The trainer on tiny synthetic data: stop, resume, checkpoints, atomic saves."""

import errno
import json
import os
import threading

import numpy as np
import pytest

from cnn_core.base import store as store_mod
from cnn_core.base.errors import ConfigError, ModelStoreError
from cnn_core.base.store import runs_store, validate_name
from cnn_core.train.cards import STATUS_FINISHED, STATUS_NOTHING_SAVED, STATUS_STOPPED
from cnn_core.train.recipes import resolve_config
from cnn_core.train.training import train
from conftest import REPO


def _config(**kw):
    base = {"epochs": 3, "batch_size": 32, "val_size": 40, "subset": None, "seed": 1}
    base.update(kw)
    return resolve_config("mnist", "seed", **base)


def _stop_at(stop, epoch, step, seen):
    def listener(event):
        seen.append(event)
        if event["type"] == "batch" and event["epoch"] == epoch and event["step"] == step:
            stop.set()

    return listener


@pytest.mark.slow  # trains a model
def test_full_run_saves_model_card_and_evaluation(tiny_mnist):
    events = []
    result = train(_config(), "tiny", listener=events.append, data=tiny_mnist, command="test")
    assert result.status == STATUS_FINISHED
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 3
    batch = next(e for e in events if e["type"] == "batch")
    assert {"loss", "accuracy", "lr", "images_per_sec", "elapsed", "eta"} <= set(batch)
    store = runs_store()
    card = store.load_card("tiny")
    assert card["epochs_run"] == 3 and card["status"] == "finished" and len(card["history"]) == 3
    assert card["params"] == 198_762 and card["train_size"] == 200 and card["val_size"] == 40
    assert card["test_accuracy"] == pytest.approx(store.load_eval("tiny")["accuracy"])
    assert store.load_model("tiny").count_params() == card["params"]
    # The best checkpoint is for inference: no optimizer state in it (the last state keeps it).
    assert getattr(store.load_model("tiny"), "optimizer", None) is None
    assert store.load_model("tiny", last=True).optimizer is not None
    assert store.model_path("tiny").stat().st_size < 0.75 * store.last_model_path("tiny").stat().st_size


@pytest.mark.slow  # trains a model
def test_stop_is_honoured_at_the_next_batch_and_keeps_the_best(tiny_mnist):
    stop, seen = threading.Event(), []
    result = train(_config(), "stopped", listener=_stop_at(stop, 2, 3, seen), stop_event=stop, data=tiny_mnist)
    assert result.status == STATUS_STOPPED
    epoch2 = [e["step"] for e in seen if e["type"] == "batch" and e["epoch"] == 2]
    assert epoch2 == [1, 2, 3]  # nothing ran after the batch that saw the signal
    card = runs_store().load_card("stopped")
    assert card["status"] == "stopped" and card["epochs_run"] == 1 and "test_accuracy" in card
    assert runs_store().load_model("stopped").count_params() == card["params"]


@pytest.mark.slow  # trains a model
def test_stop_before_the_first_epoch_saves_nothing(tiny_mnist):
    stop, seen = threading.Event(), []
    result = train(_config(), "early", listener=_stop_at(stop, 1, 2, seen), stop_event=stop, data=tiny_mnist)
    assert result.status == STATUS_NOTHING_SAVED and "nothing was saved" in result.message
    assert not runs_store().has("early")


@pytest.mark.slow  # trains a model
def test_resume_continues_the_epoch_count(tiny_mnist):
    stop, seen = threading.Event(), []
    train(_config(epochs=3), "resumable", listener=_stop_at(stop, 2, 2, seen), stop_event=stop, data=tiny_mnist)
    first = runs_store().load_card("resumable")["history"]
    events = []
    result = train({}, "resumable", listener=events.append, data=tiny_mnist, resume=True)
    assert result.status == STATUS_FINISHED
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [2, 3]
    card = result.card
    assert card["epochs_run"] == 3 and card["history"][0] == first[0]
    with pytest.raises(ConfigError, match="already completed 3 of 3"):
        train({}, "resumable", data=tiny_mnist, resume=True)


@pytest.mark.slow  # trains a model
def test_a_run_saved_before_the_package_regrouping_resumes(tiny_mnist, isolated_runs):
    """Its resume state names the registered optimizer and schedules (and their old module path,
    cnn_core.optimizer): they load from the project's registry wherever the modules now live."""
    import shutil

    saved = REPO / "tests" / "fixtures" / "saved_before_the_move"
    isolated_runs.mkdir(parents=True, exist_ok=True)
    for path in saved.glob("saved_before_the_move.*"):
        shutil.copy(path, isolated_runs / path.name)
    before = runs_store().load_card("saved_before_the_move")
    assert before["epochs_run"] == 1 and before["hyperparameters"]["arch"] == "airbench"
    events = []
    result = train({"epochs": 2}, "saved_before_the_move", listener=events.append, data=tiny_mnist, resume=True)
    assert result.status == STATUS_FINISHED and [e["epoch"] for e in events if e["type"] == "epoch"] == [2]
    assert result.card["epochs_run"] == 2 and result.card["history"][0] == before["history"][0]
    assert type(runs_store().load_model("saved_before_the_move", last=True).optimizer).__name__ == "GroupedSGD"


def test_resume_of_an_unknown_run_is_a_clear_error(tiny_mnist):
    with pytest.raises(ModelStoreError, match="no interrupted run named 'ghost'"):
        train({}, "ghost", data=tiny_mnist, resume=True)


@pytest.mark.slow  # trains a model
def test_existing_names_are_not_overwritten(tiny_mnist):
    train(_config(epochs=1), "taken", data=tiny_mnist)
    with pytest.raises(ModelStoreError, match="already exists.*--resume taken"):
        train(_config(epochs=1), "taken", data=tiny_mnist)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"epochs": 0}, "Epochs must be"),
        ({"epochs": -3}, "Epochs must be"),
        ({"batch_size": 0}, "Batch size must be"),
        ({"lr": 0.0}, "Learning rate must be greater than 0"),
        ({"lr": -1.0}, "Learning rate must be greater than 0"),
        ({"subset": 3}, "Subset must be at least 10"),
    ],
)
def test_impossible_hyperparameters_are_refused(kw, message):
    with pytest.raises(ConfigError, match=message):
        _config(**kw)


@pytest.mark.parametrize("name", ["../evil", "a/b", "/abs", "x\x00y", "..", "", "a.b", "-lead"])
def test_names_cannot_escape_the_store(name):
    with pytest.raises(ModelStoreError, match="Invalid model name"):
        validate_name(name)


def _small_model():
    import keras

    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def _saved(store, weights_value):
    model = _small_model()
    model.set_weights([np.full(w.shape, weights_value, np.float32) for w in model.get_weights()])
    store.save_model(model, "atomic")
    store.save_json("atomic", ".json", {"value": weights_value})


def test_crash_between_write_and_rename_leaves_the_previous_model(tmp_path, monkeypatch):
    store = store_mod.ModelStore(tmp_path, "runs", writable=True)
    _saved(store, 1.0)

    def crash():
        raise SystemExit("killed after the temporary file was written")

    monkeypatch.setattr(store_mod, "_pause_for_fault_injection", crash)
    with pytest.raises(SystemExit):
        _saved(store, 2.0)
    assert store.load_model("atomic").get_weights()[0][0, 0] == 1.0
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only")])
def test_disk_errors_are_clear_and_keep_the_previous_model(tmp_path, monkeypatch, code, words):
    store = store_mod.ModelStore(tmp_path, "runs", writable=True)
    _saved(store, 1.0)

    def failing_replace(src, dst):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(store_mod.os, "replace", failing_replace)
    with pytest.raises(ModelStoreError, match=words):
        _saved(store, 3.0)
    monkeypatch.undo()
    assert store.load_model("atomic").get_weights()[0][0, 0] == 1.0
    assert store.load_card("atomic") == {"value": 1.0}
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


@pytest.mark.slow  # trains a model
def test_an_ensemble_of_identical_models_equals_the_single_model(tiny_mnist):
    from cnn_core.predict.inference import load_ensemble, load_predictor

    train(_config(epochs=1), "member", data=tiny_mnist)
    single = load_predictor("member")
    pair = load_ensemble(["member", "member"])
    assert len(pair.members) == 2 and pair.name == "member+member"
    x = tiny_mnist.x_test[:16]
    np.testing.assert_allclose(pair.predict_samples(x), single.predict_samples(x), rtol=1e-5, atol=1e-6)
    with_tta = load_ensemble(["member"], tta=True)
    assert with_tta.tta and not np.allclose(with_tta.predict_samples(x), single.predict_samples(x))


# -- one process per run name ---------------------------------------------------------------


@pytest.mark.slow  # trains a model
def test_a_run_name_held_by_a_live_process_is_refused_and_a_stale_lock_is_taken_over(tiny_mnist):
    import subprocess
    import sys

    store = runs_store()
    store.root.mkdir(parents=True, exist_ok=True)
    # Another process holds the run's lock the way a trainer does: an flock on NAME.lock
    # with its pid inside.
    holder_code = (
        "import fcntl, os, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
        "f.write(str(os.getpid())); f.flush(); print('held', flush=True); time.sleep(120)"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", holder_code, str(store.lock_path("busy"))], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(ModelStoreError, match=f"being trained right now by process {other.pid}"):
            train(_config(epochs=1), "busy", data=tiny_mnist)
        assert not store.has("busy")
    finally:
        other.kill()  # SIGKILL: the holder gets no chance to clean up
        other.wait()
    # The kernel released the dead holder's flock: its leftover file no longer blocks the name.
    assert store.lock_path("busy").exists()
    assert train(_config(epochs=1), "busy", data=tiny_mnist).status == STATUS_FINISHED
    assert not store.lock_path("busy").exists()


@pytest.mark.slow  # trains a model
def test_two_cli_processes_training_the_same_name_exactly_one_runs(small_data_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    env = {
        **os.environ,
        "CNN_RUNS_DIR": str(tmp_path / "runs"),
        "CNN_DATA_DIR": str(small_data_dir),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    args = [
        sys.executable,
        "-m",
        "cnn_core",
        "train",
        "--dataset",
        "mnist",
        "--arch",
        "fast",
        "--subset",
        "6000",
        "--epochs",
        "30",  # far more than it gets to: it is stopped (Ctrl+C) once the second has been refused
        "--name",
        "twice",
    ]
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock, card_path = tmp_path / "runs" / "twice.lock", tmp_path / "runs" / "twice.json"
    deadline = time.time() + 120
    while not lock.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert lock.exists(), first.communicate()
    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 2, (second.stdout, second.stderr)
    assert f"being trained right now by process {first.pid}" in second.stderr
    while first.poll() is None and time.time() < deadline + 60:  # an epoch done, so a stop has a model to keep
        if card_path.exists() and json.loads(card_path.read_text()).get("epochs_run", 0) >= 1:
            break
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    card = json.loads(card_path.read_text())
    assert card["status"] == "stopped" and 1 <= card["epochs_run"] < 30 and not lock.exists()
    assert "Saved to" in out
