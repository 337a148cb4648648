"""A small version of the load benchmark (`python -m benchmarks.load`): the server pinned to one core, the
visitors in real browsers on the others."""

import pytest

from benchmarks import _machines
from benchmarks.load import render_markdown, run_round, validate_results

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_visitors_acting_together_are_all_answered_and_the_server_logs_each_rerun(data_dir):
    result = run_round("idle", data_dir, visitors=4, timeout_s=90)
    failures = [v for v in result["visitors"] if not v["ok"]]
    assert result["errors"] == 0, failures
    answers = {v["kind"]: v["answer"] for v in result["visitors"]}
    assert "automobile" in answers["upload"] and answers["draw"] in {"1", "7"}, answers
    # One logged rerun per drawing or upload, timed by the server within what the visitor saw.
    assert result["server_seconds"]["n"] == 4, result["server_seconds"]
    assert 0 < result["server_seconds"]["max"] <= result["screen_seconds"]["max"]
    assert result["server_cores"] != result["browser_cores"] or len(result["server_cores"]) == 1
    spent = result["after_acting"]  # the reruns' work, on the server's core
    assert spent["server_cpu_seconds"] > 0 and 0 < spent["server_core_busy"] <= 1, spent
    machine = _machines.this_machine()
    entry = {
        "machine": machine,
        "command": "x",
        "git_commit": "x",
        "date": "x",
        "targets": {},
        "rounds": {"idle": result},
    }
    doc = {"schema_version": 2, "benchmark": "load", "machines": {_machines.key_of(machine): entry}}
    validate_results(doc)
    assert "| all draw or upload within the same second, server idle | 4 | 0 |" in render_markdown(doc)
