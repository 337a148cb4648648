"""Data-parallel training: `--strategy mirrored` on a CPU split into two logical devices, and
`--strategy multi_worker` with two worker processes talking over the loopback address.

TensorFlow can only split its CPU before it first runs an op, so the training runs in a
fresh subprocess: a short `fast` run on an MNIST subset, once on the default single device
and once with MirroredStrategy over /cpu:0 and /cpu:1.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnn_core.cli import build_parser

SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras
from cnn_core.data.datasets import load_dataset
from cnn_core.train.recipes import resolve_config
from cnn_core.train.training import make_strategy, train


class KeepModel(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        self.kept = self.model


data = load_dataset("mnist", sys.argv[1])
out = {"logical_cpus": [d.name for d in tf.config.list_logical_devices("CPU")]}
for label, strategy in (("one", None), ("two", make_strategy("mirrored", ["/cpu:0", "/cpu:1"]))):
    config = resolve_config("mnist", "fast", epochs=EPOCHS, subset=SUBSET, val_size=0, seed=0, batch_size=64, lr=0.05)
    events, keep = [], KeepModel()
    result = train(config, "strategy_" + label, data=data, strategy=strategy, listener=events.append,
                   extra_callbacks=[keep])
    kernel = keep.kept.trainable_weights[0].value  # a MirroredVariable under the strategy
    copies = getattr(kernel, "values", (kernel,))
    out[label] = {
        "num_replicas_in_sync": strategy.num_replicas_in_sync if strategy is not None else 1,
        "start_event_replicas": next(e for e in events if e["type"] == "start")["replicas"],
        "card": result.card["distribution"],
        "variable_copies_on": sorted(v.device for v in copies),
        # Mirrored training all-reduces the gradients, so the copies must still agree.
        "copies_identical": all(np.array_equal(np.asarray(copies[0]), np.asarray(c)) for c in copies),
        "test_accuracy": result.card["test_accuracy"],
    }
print("RESULT " + json.dumps(out))
"""
# One epoch on 4,000 images left the two runs up to 5.5 points apart (96.1% vs 90.6% in one
# CI run): the end of a short one-cycle schedule is noisy. Three epochs on 6,000 images
# settle both near 98% and still take only seconds per run.
EPOCHS, SUBSET = 3, 6000


def _run_split_cpu_training(data_dir, tmp_path):
    env = {
        **os.environ,
        "CNN_RUNS_DIR": str(tmp_path / "runs"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": os.pathsep.join(
            [str(__import__("pathlib").Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    proc = subprocess.run(
        [sys.executable, "-c", f"EPOCHS, SUBSET = {EPOCHS}, {SUBSET}\n" + SCRIPT, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


@pytest.mark.slow  # trains on real MNIST
def test_mirrored_strategy_trains_on_two_logical_cpus(small_data_dir, tmp_path):
    out = _run_split_cpu_training(small_data_dir, tmp_path)
    assert len(out["logical_cpus"]) == 2
    one, two = out["one"], out["two"]

    assert two["num_replicas_in_sync"] == 2
    assert two["start_event_replicas"] == 2
    assert two["card"]["strategy"] == "MirroredStrategy" and two["card"]["replicas"] == 2
    # Every weight is mirrored: one copy per logical CPU.
    assert [d.rsplit("/", 1)[-1] for d in two["variable_copies_on"]] == ["device:CPU:0", "device:CPU:1"]
    assert one["num_replicas_in_sync"] == 1 and one["card"]["replicas"] == 1

    assert two["copies_identical"], "the replicas' weights drifted apart"

    # Accuracy is comparable to one device: per-replica BatchNorm statistics and a different
    # summation order make the runs differ slightly, so allow 2 points either way.
    assert one["test_accuracy"] > 0.95, one
    assert two["test_accuracy"] > 0.95, two
    assert abs(one["test_accuracy"] - two["test_accuracy"]) < 0.02, (one, two)


def test_cli_accepts_strategy_and_rejects_unknown_ones():
    parser = build_parser()
    assert parser.parse_args(["train", "--strategy", "mirrored"]).strategy == "mirrored"
    assert parser.parse_args(["train"]).strategy == "default"
    proc = subprocess.run(
        [sys.executable, "-m", "cnn_core", "train", "--strategy", "tpu"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "invalid choice: 'tpu'" in proc.stderr


# -- several machines: two `python -m cnn_core train` workers on 127.0.0.1 ----------------------

REPO = Path(__file__).resolve().parent.parent
# Short enough for three processes on a 2-core CPU, long enough to be stable: one epoch of
# the fast recipe at its own lr (0.2) or with batch 256 diverges on a few thousand images
# (chance accuracy, whatever the strategy), so a smaller batch at a lower peak lr. A small
# validation split makes fit() run its distributed evaluation too.
MULTI_WORKER_ARGS = [
    "--dataset",
    "mnist",
    "--arch",
    "fast",
    "--epochs",
    "1",
    "--subset",
    "4000",
    "--batch-size",
    "64",
    "--lr",
    "0.02",
    "--val-size",
    "1000",
]
MULTI_WORKER_TIMEOUT_S = 400  # a worker whose peer died waits for it; never hang the suite


def _free_loopback_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:  # all open at once, so the ports differ
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start_training(name, runs_dir, data_dir, strategy, tf_config=None):
    env = {
        **os.environ,
        "CNN_RUNS_DIR": str(runs_dir),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        # CPU only: on a one-GPU machine both workers would otherwise claim the same GPU.
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cnn_core",
            "train",
            *MULTI_WORKER_ARGS,
            "--name",
            name,
            "--strategy",
            strategy,
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )


AGREE_SCRIPT = r"""
import json, os
import tensorflow as tf
from cnn_core.train.distributed import cluster_info, stop_agreement

strategy = tf.distribute.MultiWorkerMirroredStrategy()
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
any_worker = stop_agreement(strategy)
print("RESULT " + json.dumps({"cluster": cluster_info(strategy), "nobody": any_worker(False),
                              "worker_1_only": any_worker(index == 1)}))
"""


@pytest.mark.slow  # training processes import TensorFlow
def test_a_stop_on_one_worker_stops_every_worker(tmp_path):
    cluster = [f"127.0.0.1:{port}" for port in _free_loopback_ports(2)]
    procs = []
    for i in range(2):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CONFIG": json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": i}}),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", AGREE_SCRIPT],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                cwd=tmp_path,
            )
        )
    try:
        outputs = [proc.communicate(timeout=180)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    results = []
    for proc, output in zip(procs, outputs, strict=False):
        assert proc.returncode == 0, output[-3000:]
        results.append(
            json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[len("RESULT ") :])
        )
    for i, result in enumerate(results):
        assert result["cluster"] == {"workers": 2, "task": {"type": "worker", "index": i}}
        assert result["nobody"] is False
        assert result["worker_1_only"] is True  # worker 0 was not asked, and stops too


@pytest.mark.slow  # trains on real MNIST
def test_multi_worker_training_with_two_workers_on_loopback(small_data_dir, tmp_path):
    cluster = [f"127.0.0.1:{port}" for port in _free_loopback_ports(2)]
    workers = [
        _start_training(
            "mw",
            tmp_path / f"worker{i}",
            small_data_dir,
            "multi_worker",
            {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": i}},
        )
        for i in range(2)
    ]
    # The one-worker run of the same settings, alongside (not after) the pair to save time.
    single = _start_training("single", tmp_path / "single", small_data_dir, "default")
    procs = [*workers, single]
    deadline = time.monotonic() + MULTI_WORKER_TIMEOUT_S
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, output in zip(procs, outputs, strict=False):
        assert proc.returncode == 0, output[-4000:]

    cards = [json.loads((tmp_path / f"worker{i}" / "mw.json").read_text()) for i in range(2)]
    one = json.loads((tmp_path / "single" / "single.json").read_text())
    chief = cards[0]
    assert chief["distribution"]["strategy"] == "CollectiveAllReduceStrategy"  # MultiWorkerMirroredStrategy
    assert chief["distribution"]["workers"] == 2
    assert chief["distribution"]["replicas"] == 2
    assert [c["distribution"]["task"] for c in cards] == [{"type": "worker", "index": i} for i in range(2)]
    assert "2 replicas" in outputs[0]
    assert one["distribution"] == {"strategy": "default", "replicas": 1}

    for card in (chief, one):
        assert card["status"] == "finished" and card["epochs_run"] == 1
        assert card["train_size"] == 4000 and card["val_size"] == 1000
    # The workers' metrics are averaged over both (the metric state is summed across
    # workers before it is read), so their histories agree exactly; unsynchronised
    # workers would each report their own half of the data.
    history = [
        [{k: e[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")} for e in c["history"]] for c in cards
    ]
    assert history[0] == history[1]

    # The tolerance: within 3 points of one worker.
    assert abs(chief["test_accuracy"] - one["test_accuracy"]) < 0.03, (chief["test_accuracy"], one["test_accuracy"])
