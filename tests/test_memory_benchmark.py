"""The memory benchmark (`python -m benchmarks.memory`) end to end with its smallest settings:
the real app server, a real browser on every page, a tiny MNIST run started and stopped on the
Train page. Checks what it wrote (schema, every phase, consistent figures), never particular numbers: this is a smoke run
on a shared machine."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_memory_benchmark_smoke_run_writes_every_phase(tmp_path, data_dir):
    from benchmarks import memory

    out = tmp_path / "results"
    # Stop before the first epoch ends where the machine allows: the final evaluation of a run is
    # measured by the real benchmark, the smoke run only has to go through every phase.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.memory",
            "--out",
            str(out),
            "--dataset",
            "mnist",
            "--subset",
            "500",
            "--train-seconds",
            "2",
            "--min-epochs",
            "0",
            "--idle-seconds",
            "1",
            "--after-seconds",
            "1",
            "--no-runtime-baseline",
            "--training-process",
            "on",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "CNN_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    doc = json.loads((out / "memory.json").read_text())
    memory.validate_results(doc)  # every phase present with positive figures, peak = largest phase peak
    from cnn_core.base.runtime import machine_info, machine_key

    assert list(doc["machines"]) == [machine_key(machine_info())]
    entry = doc["machines"][machine_key(machine_info())]
    phases = entry["phases"]
    assert list(phases) == list(memory.PHASES)
    assert not entry["pages_with_exceptions"], entry["pages_with_exceptions"]
    # Pages load TensorFlow and two models into an idle server; training adds its data on top.
    assert phases["pages"]["peak_rss_mb"] > phases["idle"]["peak_rss_mb"]
    assert phases["training"]["peak_rss_mb"] >= phases["pages"]["end_rss_mb"] - 1
    assert all(p["peak_rss_mb"] >= phases["idle"]["peak_rss_mb"] for p in phases.values())
    assert entry["run"]["dataset"] == "mnist" and entry["run"]["subset_slider"] == 500
    assert entry["run"]["train_size"] in (None, 500)  # None: stopped before the first card was written
    assert "stopped" in entry["end_message"] or "nothing was saved" in entry["end_message"], entry["end_message"]
    assert entry["timeline"] and {row[2] for row in entry["timeline"]} <= set(memory.PHASES)

    assert entry["training_in"] == "its own process"
    assert all(0 < p["peak_pss_mb"] <= p["peak_rss_mb"] + 1 for p in phases.values())

    report = (out / "memory.md").read_text()
    assert all(label in report for label in (p["label"] for p in phases.values()))
    assert memory.NOTES_MARKER in report


def test_pss_counts_pages_a_child_shares_with_its_parent_once():
    """Summed RSS counts a page shared by a server and its training process twice; PSS splits it."""
    import signal
    import time

    import numpy as np

    from cnn_core.base.runtime import pss_mb, rss_mb

    shared = np.ones(200 * 2**20 // 8)  # 200 MiB, touched, shared copy-on-write with the child below
    child = os.fork()
    if child == 0:  # the child only waits, so nothing is copied
        time.sleep(60)
        os._exit(0)
    try:
        time.sleep(0.5)
        rss, pss = rss_mb(os.getpid()), pss_mb(os.getpid())
        alone = pss_mb(os.getpid(), children=False)
        assert rss - pss > 150 and pss <= rss  # the 200 MiB: twice in RSS, once in PSS
        assert pss - alone > 50  # the child's share is counted too
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    assert shared.sum() > 0
