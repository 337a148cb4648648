"""A smaller version of the load benchmark (`python -m benchmarks.load`): 8 concurrent browser
visitors, no errors, all answered."""

import pytest

from benchmarks.load import run_load

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_eight_concurrent_visitors_all_get_predictions(data_dir):
    result = run_load(8, data_dir, with_training=False, timeout_s=60)
    failures = [v for v in result["visitors"] if not v["ok"]]
    assert result["errors"] == 0, failures
    assert all(v["total_seconds"] <= 60 for v in result["visitors"]), result["visitors"]
    answers = {v["kind"]: v["answer"] for v in result["visitors"]}
    assert "automobile" in answers["upload"]
