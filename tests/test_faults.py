"""Faults: kill -9 mid-epoch and mid-save, stop from the UI, concurrent training requests,
full and read-only disks. After each, the previous files still load and a resume finishes.

The kill tests run the real CLI on a small real-MNIST subset and SIGKILL it at a point
they observe (the progress line of epoch 2; a temporary file held open by the
CNN_FAULT_PAUSE_AFTER_TEMP_WRITE hook), so the kill lands in the same place every time.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from cnn_core.base import store as store_mod
from cnn_core.base.errors import ModelStoreError, TrainingBusyError
from cnn_core.base.store import FAULT_PAUSE_ENV, ModelStore, list_model_names, runs_store
from cnn_core.train.cards import STATUS_FINISHED, STATUS_STOPPED, display_status
from cnn_core.train.recipes import resolve_config
from cnn_core.train.training import train
from conftest import REPO, SMALL_TEST

SMALL_RUN = ["train", "--dataset", "mnist", "--subset", "1000", "--batch-size", "32", "--epochs", "2", "--seed", "3"]


class CliRun:
    """`python -m cnn_core ...` in the background, with its stdout collected as it comes."""

    def __init__(self, args, runs: Path, data_dir: Path, env_extra=None):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "CNN_RUNS_DIR": str(runs),
            "CNN_DATA_DIR": str(data_dir),
            "PYTHONUNBUFFERED": "1",
            **(env_extra or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cnn_core", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.output = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            self.output += chunk

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def wait_for(self, condition, what: str, timeout=240, poll=0.01):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if condition():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"the run ended (rc {self.proc.returncode}) before {what}:\n{self.text[-3000:]}")
            time.sleep(poll)
        self.proc.kill()
        raise AssertionError(f"timed out waiting for {what}:\n{self.text[-3000:]}")

    def kill9(self):
        assert self.proc.poll() is None, "the run had already ended: the kill would prove nothing"
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(30) == -signal.SIGKILL
        self._reader.join(5)

    def finish(self, timeout=400) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc


def _temps(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".tmp" in p.name)


def _complete(path: Path) -> bool:
    """The temporary file is fully written: a whole zip (.keras) or parseable JSON."""
    try:
        if path.name.endswith(".keras"):
            with zipfile.ZipFile(path) as zf:
                return zf.testzip() is None
        json.loads(path.read_text())
        return True
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


def _assert_everything_loads(store: ModelStore, name: str, epochs_done: int):
    """Best checkpoint, last state and card of a killed run: all intact and consistent."""
    card = store.load_card(name)
    assert card["epochs_run"] == epochs_done and len(card["history"]) == epochs_done
    assert card["status"] == "running" and display_status(card) == "interrupted"  # its process is gone
    best = store.load_model(name)
    last = store.load_model(name, last=True)
    assert best.count_params() == last.count_params() == card["params"]
    assert last.optimizer is not None and int(last.optimizer.iterations.numpy()) > 0  # resumable state
    state = json.loads(store.last_state_path(name).read_text())
    assert state["epoch"] == epochs_done and state["history"] == card["history"]
    for path in (store.model_path(name), store.last_model_path(name)):
        with zipfile.ZipFile(path) as zf:
            assert zf.testzip() is None
    return card


def _resume_and_check(runs: Path, data_dir: Path, name: str, before: dict):
    resumed = CliRun(["train", "--resume", name], runs, data_dir)
    rc = resumed.finish()
    assert rc == 0, resumed.text[-3000:]
    assert "Epoch 2/2" in resumed.text and "Epoch 1/2" not in resumed.text  # continued, not restarted
    store = ModelStore(runs, "runs", writable=True)
    card = store.load_card(name)
    assert card["status"] == STATUS_FINISHED and card["epochs_run"] == 2
    assert card["history"][0] == before["history"][0]
    assert 0.0 <= card["test_accuracy"] <= 1.0 and card["test_size"] == SMALL_TEST
    assert store.load_model(name).count_params() == card["params"]
    assert _temps(runs) == []  # a temporary file orphaned by the kill is cleaned up by the next save
    return card


@pytest.mark.slow  # trains a model
def test_kill_9_mid_epoch_keeps_every_file_and_resume_finishes(small_data_dir, isolated_runs):
    run = CliRun([*SMALL_RUN, "--name", "killed_mid_epoch"], isolated_runs, small_data_dir)
    run.wait_for(lambda: "Epoch 2/2" in run.text, "epoch 2 to start")  # printed after epoch 2's first batch
    run.kill9()
    store = ModelStore(isolated_runs, "runs", writable=True)
    before = _assert_everything_loads(store, "killed_mid_epoch", epochs_done=1)
    assert "killed_mid_epoch" in [n for n in list_model_names()]
    _resume_and_check(isolated_runs, small_data_dir, "killed_mid_epoch", before)


@pytest.mark.slow  # trains a model
def test_kill_9_mid_save_keeps_the_previous_files_and_resume_finishes(small_data_dir, isolated_runs):
    # Every atomic write pauses between "temporary file written and fsynced" and the rename: long
    # enough for the 10 ms poll below to see the file and kill the run before it is renamed.
    run = CliRun(
        [*SMALL_RUN, "--name", "killed_mid_save"], isolated_runs, small_data_dir, env_extra={FAULT_PAUSE_ENV: "1.5"}
    )
    run.wait_for(lambda: "Epoch 2/2" in run.text, "epoch 1's files to be saved", timeout=300)
    run.wait_for(
        lambda: any(_complete(p) for p in _temps(isolated_runs)),
        "epoch 2's first temporary file to be written (the hook then pauses before the rename)",
    )
    pending = _temps(isolated_runs)
    run.kill9()
    assert _temps(isolated_runs) == pending and _complete(pending[0])  # killed between write and rename
    store = ModelStore(isolated_runs, "runs", writable=True)
    before = _assert_everything_loads(store, "killed_mid_save", epochs_done=1)
    assert list_model_names().count("killed_mid_save") == 1  # the orphan is not listed as a model
    _resume_and_check(isolated_runs, small_data_dir, "killed_mid_save", before)


# -- stop from the UI -------------------------------------------------------------------------


@pytest.mark.slow  # trains a model
def test_stop_from_the_train_page_keeps_best_and_last_state_and_resume_continues(small_data_env, isolated_runs):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app_pages._common import get_jobs

    st.cache_resource.clear()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/train.py").run()
    at.selectbox(key="arch").set_value("seed").run()
    at.number_input(key="epochs_mnist_seed").set_value(20)
    at.slider(key="subset_mnist_seed").set_value(1000)
    at.text_input(key="run_name").set_value("ui_stopped")
    at.run()
    at.button(key="start").click().run()
    jobs = get_jobs()
    deadline = time.time() + 240
    while time.time() < deadline and not (jobs.snapshot() and len(jobs.snapshot().epochs) >= 1):
        time.sleep(0.2)
    at.run()
    at.button(key="stop").click().run()
    assert not at.exception
    assert jobs.wait(240)
    snap = jobs.snapshot()
    assert snap.state == "done" and snap.result_status == STATUS_STOPPED, snap
    store = runs_store()
    card = store.load_card("ui_stopped")
    done = card["epochs_run"]
    assert card["status"] == "stopped" and 1 <= done < 20
    assert store.load_model("ui_stopped").count_params() == card["params"]
    assert json.loads(store.last_state_path("ui_stopped").read_text())["epoch"] == done
    assert store.load_model("ui_stopped", last=True).optimizer is not None

    events = []
    result = train({"epochs": done + 1}, "ui_stopped", listener=events.append, resume=True)
    assert result.status == STATUS_FINISHED
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [done + 1]
    assert result.card["epochs_run"] == done + 1 and result.card["history"][:done] == card["history"]
    st.cache_resource.clear()


# -- two training requests at once ----------------------------------------------------------------


@pytest.mark.slow  # trains a model
def test_simultaneous_starts_run_exactly_one_and_the_registry_is_never_half_written(tiny_mnist, isolated_runs):
    from cnn_core.service.jobs import TrainingJobs

    jobs = TrainingJobs()
    config = resolve_config("mnist", "seed", epochs=4, batch_size=32, val_size=40, seed=1)
    barrier = threading.Barrier(8)
    started, refused, other = [], [], []

    def visitor(i):
        barrier.wait()
        try:
            started.append(jobs.start(config, f"race_{i}", owner=f"tab{i}", data=tiny_mnist))
        except TrainingBusyError as err:
            refused.append(str(err))
        except Exception as err:  # noqa: BLE001 - anything else is a failure to report
            other.append(repr(err))

    # A reader that keeps opening every visible file while the winner trains and saves.
    problems, reads, done = [], [0], threading.Event()

    def reader():
        while not done.is_set():
            try:
                names = runs_store().names()
                for path in isolated_runs.glob("*"):
                    if path.name.startswith("."):
                        continue  # temporary files are private to their writer
                    if path.suffix == ".json":
                        json.loads(path.read_text())
                    elif path.suffix == ".keras":
                        with zipfile.ZipFile(path) as zf:
                            bad = zf.testzip()
                        if bad is not None:
                            problems.append(f"{path.name}: bad member {bad}")
                    reads[0] += 1
                for name in names:
                    runs_store().load_card(name)
            except FileNotFoundError:
                pass  # listed, then replaced between glob and open: never a torn read
            except Exception as err:  # noqa: BLE001
                problems.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(8)]
    read_thread = threading.Thread(target=reader, daemon=True)
    read_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(started) == 1 and len(refused) == 7 and not other, (started, refused, other)
    assert all("already in progress" in m and "only one run at a time" in m for m in refused)
    assert jobs.wait(300)
    done.set()
    read_thread.join(10)
    snap = jobs.snapshot()
    assert snap.state == "done" and snap.result_status == STATUS_FINISHED, snap
    winner = snap.name
    assert runs_store().names() == [winner]  # the refused requests left nothing behind
    assert reads[0] > 20 and not problems, problems[:5]
    assert runs_store().load_card(winner)["epochs_run"] == 4


# -- full and read-only disks -------------------------------------------------------------------------


def _fail_replace_in(folder: Path, code: int, after: int, monkeypatch):
    """From the (after+1)-th rename into `folder` on, fail like a full / read-only disk would."""
    real_replace = os.replace
    calls = [0]

    def replace(src, dst, *a, **kw):
        if Path(dst).parent == folder:
            calls[0] += 1
            if calls[0] > after:
                raise OSError(code, os.strerror(code), str(dst))
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(store_mod.os, "replace", replace)
    return calls


def _config():
    return resolve_config("mnist", "seed", epochs=3, batch_size=32, val_size=40, seed=1)


@pytest.mark.slow  # trains a model
def test_disk_full_during_training_is_a_clear_error_and_resume_works_after(tiny_mnist, isolated_runs, monkeypatch):
    with monkeypatch.context() as mp:
        _fail_replace_in(isolated_runs, errno.ENOSPC, after=6, monkeypatch=mp)  # snapshot 0, then epoch 1: 5 files
        with pytest.raises(ModelStoreError, match="the disk is full. The previous version is unchanged"):
            train(_config(), "full_disk", data=tiny_mnist)
    store = runs_store()
    card = store.load_card("full_disk")
    assert card["epochs_run"] == 1
    assert store.load_model("full_disk").count_params() == card["params"]
    assert json.loads(store.last_state_path("full_disk").read_text())["epoch"] == 1
    assert _temps(isolated_runs) == []
    result = train({}, "full_disk", data=tiny_mnist, resume=True)  # space freed: carry on
    assert result.status == STATUS_FINISHED and result.card["epochs_run"] == 3


@pytest.mark.slow  # trains a model
def test_read_only_disk_fails_the_app_job_with_the_message(tiny_mnist, isolated_runs, monkeypatch):
    from cnn_core.service.jobs import TrainingJobs

    with monkeypatch.context() as mp:
        _fail_replace_in(isolated_runs, errno.EROFS, after=6, monkeypatch=mp)
        jobs = TrainingJobs(isolate=False)  # in this process, where the disk's failure is patched in
        jobs.start(_config(), "ro_disk", owner="tab", data=tiny_mnist)
        assert jobs.wait(300)
    snap = jobs.snapshot()
    assert snap.state == "failed" and "read-only" in snap.error and "unexpectedly" not in snap.error, snap
    card = runs_store().load_card("ro_disk")
    assert card["epochs_run"] == 1 and runs_store().load_model("ro_disk").count_params() == card["params"]


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only")])
def test_a_save_that_fails_while_writing_leaves_the_previous_file(tmp_path, code, words):
    """The disk fills up (or turns read-only) in the middle of writing the new file."""
    target = tmp_path / "model.json"
    store_mod.atomic_write_json(target, {"version": 1})

    def half_then_fail(tmp):
        tmp.write_bytes(b'{"version": 2, "weights": [' + b"1," * 1000)
        raise OSError(code, os.strerror(code))

    with pytest.raises(ModelStoreError, match=words):
        store_mod.atomic_write(target, half_then_fail)
    assert json.loads(target.read_text()) == {"version": 1}
    assert _temps(tmp_path) == []


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only")])
def test_a_disk_that_refuses_the_temporary_file_is_a_clear_error(tmp_path, monkeypatch, code, words):
    """On a read-only or full disk even creating the temporary file fails: still a ModelStoreError."""
    store = ModelStore(tmp_path, "runs", writable=True)
    store.save_json("kept", ".json", {"version": 1})

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    with monkeypatch.context() as mp:
        mp.setattr(store_mod.tempfile, "mkstemp", refuse)
        with pytest.raises(ModelStoreError, match=words):
            store.save_json("kept", ".json", {"version": 2})
    assert store.load_card("kept") == {"version": 1}


def test_saved_files_are_readable_like_any_other_file(tmp_path):
    """Temporary files are created 0600; the saved file gets the normal umask-based mode,
    so a server running as another user can read models trained from the command line."""
    store_mod.atomic_write_json(tmp_path / "card.json", {"a": 1})
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "card.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_orphaned_temporary_files_of_live_writers_are_kept(tmp_path):
    """Only files of dead writers are removed: a concurrent live writer's file is never touched."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=False
    )
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphan = tmp_path / f".m.pid{dead_pid}.abc.tmp.keras"
        in_use = tmp_path / f".m.last.pid{live.pid}.def.tmp.keras"
        other_model = tmp_path / f".mm.pid{dead_pid}.ghi.tmp.keras"
        for p in (orphan, in_use, other_model):
            p.write_bytes(b"partial")
        store_mod.atomic_write_json(tmp_path / "m.json", {"ok": True})
        assert not orphan.exists() and in_use.exists() and other_model.exists()
    finally:
        live.kill()
        live.wait()
