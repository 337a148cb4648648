"""Every script in benchmarks/ runs end to end with its smallest settings, writing into a
temporary folder, so a benchmark can never silently stop working. Each test checks what the
script wrote: the schema, this machine's key, and numbers that are present and positive
(never particular values: these are smoke runs on a shared machine)."""

import dataclasses
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import _machines

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"

# Scripts run here; time_to_accuracy is run end to end in tests/test_benchmarks.py.
SMOKE_TESTED_HERE = {
    "app_metrics",
    "cold_start",
    "inference",
    "load",
    "ood",
    "recipe_switches",
    "step_profile",
    "tta_ensembles",
}


def run_script(name: str, *args: str, timeout: float = 300) -> str:
    """Run `python -m benchmarks.NAME ARGS` as a user would; its output, or a failure showing it."""
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=False,
    )
    assert proc.returncode == 0, (
        f"benchmarks.{name} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


@pytest.fixture(scope="module")
def this_key():
    return _machines.key_of(_machines.this_machine())


def _read(out: Path, stem: str, module_name: str):
    """The JSON a script wrote, checked by that script's own validator, and its Markdown."""
    module = importlib.import_module(f"benchmarks.{module_name}")
    doc = json.loads((out / f"{stem}.json").read_text())
    module.validate_results(doc)
    return module, doc, (out / f"{stem}.md").read_text()


def _positive(*values) -> bool:
    return all(isinstance(v, (int, float)) and v > 0 for v in values)


def test_every_benchmark_script_has_a_smoke_test():
    scripts = {p.stem for p in BENCH.glob("*.py") if '__name__ == "__main__"' in p.read_text()}
    assert SMOKE_TESTED_HERE <= scripts and "browser" not in scripts  # the harness is a library, not a script
    others = {p.stem: p.read_text() for p in (REPO / "tests").glob("test_*.py") if p.name != Path(__file__).name}
    # A script whose smoke test lives elsewhere has its own test file (tests/test_NAME.py), or
    # a test file runs it by its module name.
    elsewhere = {
        s
        for s in scripts
        if f"test_{s}" in others or any(re.search(rf"\bbenchmarks\.{s}\b", text) for text in others.values())
    }
    missing = sorted(scripts - SMOKE_TESTED_HERE - elsewhere)
    assert not missing, f"benchmark scripts without a smoke test: {missing}"


@pytest.mark.slow
def test_inference_benchmark_smoke(small_data_dir, tmp_path, this_key):
    out = tmp_path / "results"
    run_script(
        "inference",
        "--models",
        "mnist_fast30",
        "--calls",
        "10",
        "--batch-images",
        "128",
        "--data-dir",
        str(small_data_dir),
        "--out",
        str(out),
    )
    inference, doc, md = _read(out, "inference", "inference")
    assert list(doc["machines"]) == [this_key]
    entry = doc["machines"][this_key]
    defaults = inference.page_defaults()
    # The pages' defaults are always measured: the 5 ms goal is about them.
    assert entry["page_defaults"] == defaults and set(entry["models"]) == {"mnist_fast30", *defaults.values()}
    for name, model in entry["models"].items():
        blocks = [model] + ([model["bf16"]] if "bf16" in model else [])
        for block in blocks:
            assert _positive(
                block["single_image"]["p50_ms"], block["single_image"]["p95_ms"], block["batch"]["images_per_sec"]
            ), name
            assert block["single_image"]["calls"] == 10 and block["batch"]["images"] == 128
            assert block["runtime"] in ("litert", "keras"), name
            if model["card_tta"]:
                assert _positive(block["single_image_tta"]["p50_ms"]), name
        if model["trained_precision"] == "bf16" and model["precision"] != "bf16":
            assert model["bf16"]["precision"] == "bf16", f"{name} was trained in bf16: measure it in bf16 too"
    assert _positive(entry["memory"]["serving_process"]["peak_rss_mb"])
    assert f"## Machine: {this_key}" in md
    for page, name in defaults.items():
        assert re.search(rf"\| {re.escape(inference.PAGE_TITLES[page])} \| `{name}` \|.*\| (yes|NO) \|", md), page


@pytest.mark.slow
def test_ood_benchmark_smoke(small_data_dir, tmp_path, monkeypatch):
    out = tmp_path / "results"
    monkeypatch.setenv("CNN_DATA_DIR", str(small_data_dir))
    run_script("ood", "--model", "mnist_fast30", "--limit", "50", "--test-limit", "500", "--out", str(out))
    _, doc, md = _read(out, "ood", "ood")
    (row,) = doc["models"]
    assert row["model"] == "mnist_fast30" and row["in_distribution"]["images"] == 500
    assert {b["images"] for label, b in row["off_distribution"].items() if "test images" in label} == {50}
    assert row["off_distribution"]["scribbles on the canvas"]["images"] == 50
    assert row["off_distribution"]["nearly blank canvases"]["images"] == 50
    assert row["in_distribution"]["redrawn_on_canvas"]["images"] == 50
    assert row["layers"][-4:] == ["last_hidden", "logits", "energy", "top_probability"]
    assert "## mnist_fast30 (mnist)" in md and "| mnist_fast30 |" in md and "AUROC" in md


@pytest.mark.slow
def test_tta_ensembles_benchmark_smoke(small_data_dir, tmp_path, this_key):
    out = tmp_path / "results"
    run_script(
        "tta_ensembles",
        "--models",
        "mnist_fast30",
        "mnist_seed",
        "--limit",
        "300",
        "--data-dir",
        str(small_data_dir),
        "--out",
        str(out),
    )
    module, doc, md = _read(out, "tta_ensembles", "tta_ensembles")
    # Digits: each model at every TTA level (shifts, never mirrored), and the two together.
    assert [(r["models"], r["tta"]) for r in doc["rows"]] == [
        (["mnist_fast30"], 0),
        (["mnist_fast30"], 1),
        (["mnist_fast30"], 2),
        (["mnist_seed"], 0),
        (["mnist_seed"], 1),
        (["mnist_seed"], 2),
        (["mnist_fast30", "mnist_seed"], 0),
    ]
    assert doc["test_size"] == 300
    seconds = doc["machines"][this_key]["evaluation_seconds"]
    assert set(seconds) == {module.row_label(r) for r in doc["rows"]} and _positive(*seconds.values())
    assert "| mnist | mnist_fast30 + mnist_seed | off |" in md and this_key in md
    # The ensemble row (members' cached probabilities, averaged) is what evaluating the ensemble gives.
    from cnn_core.analysis.evaluation import evaluate_predictor
    from cnn_core.data.datasets import load_dataset
    from cnn_core.predict.inference import load_ensemble

    data = load_dataset("mnist", small_data_dir)
    data = dataclasses.replace(data, x_test=data.x_test[:300], y_test=data.y_test[:300])
    direct = evaluate_predictor(load_ensemble(["mnist_fast30", "mnist_seed"]), data)
    assert doc["rows"][-1]["accuracy"] == pytest.approx(direct["accuracy"], abs=1e-9)
    assert doc["rows"][-1]["loss"] == pytest.approx(direct["loss"], rel=1e-5)
    # What the Compare page shows is written beside the models (here a scratch store, not trained_models/).
    from cnn_core.base.store import ModelStore
    from cnn_core.studio.benchmark_figures import ensemble_figures

    beside = ModelStore(tmp_path / "models", "shipped", writable=True)
    beside.root.mkdir()
    assert [p.name for p in module.write_beside_models(doc, beside)] == ["mnist.tta_ensembles.json"]
    figures = ensemble_figures("mnist", beside)
    assert figures["test_size"] == 300 and [r["accuracy"] for r in figures["rows"]] == [
        r["accuracy"] for r in doc["rows"]
    ]


@pytest.mark.slow
def test_recipe_switches_benchmark_smoke(small_data_dir, tmp_path, this_key):
    out = tmp_path / "results"
    run_script(
        "recipe_switches",
        "--dataset",
        "mnist",
        "--epochs",
        "1",
        "--subset",
        "300",
        "--val-size",
        "100",
        "--seeds",
        "0",
        "1",
        "--switches",
        "residual",
        "--data-dir",
        str(small_data_dir),
        "--out",
        str(out),
    )
    module, doc, md = _read(out, "recipe_switches", "recipe_switches")
    result = doc["machines"][this_key]["datasets"]["mnist"]
    assert result["complete"] and result["schedule"] == {"epochs": 1, "subset": 300, "val_size": 100}
    # Seeds outermost, the base first in each: a stopped benchmark leaves every switch equally measured.
    assert [(r["switch"], r["seed"]) for r in result["runs"]] == [
        ("none", 0),
        ("residual", 0),
        ("none", 1),
        ("residual", 1),
    ]
    assert all(0 <= r["test_accuracy"] <= 1 and _positive(r["train_seconds"], r["params"]) for r in result["runs"])
    base, residual = result["summary"]
    assert base["switch"] == "none" and "delta" not in base
    runs = {(r["switch"], r["seed"]): r["test_accuracy"] for r in result["runs"]}
    assert residual["delta"] == pytest.approx(
        (runs["residual", 0] + runs["residual", 1] - runs["none", 0] - runs["none", 1]) / 2
    )
    assert residual["params"] > base["params"]  # the skips' 1×1 projections
    assert "| Residual connections | 2 |" in md and this_key in md
    # The Compare page's copy goes beside the models (here a scratch store, not trained_models/).
    from cnn_core.base.store import ModelStore
    from cnn_core.studio.benchmark_figures import switch_figures, switch_table

    beside = ModelStore(tmp_path / "models", "shipped", writable=True)
    beside.root.mkdir()
    assert [p.name for p in module.write_beside_models(doc, _machines.this_machine(), beside)] == [
        "mnist.recipe_switches.json"
    ]
    table = switch_table(switch_figures("mnist", beside))
    assert [row["switch"] for row in table] == ["none (the seed recipe)", "Residual connections"]
    assert table[1]["change (points)"] == pytest.approx(residual["delta"] * 100)


@pytest.mark.browser
@pytest.mark.slow
def test_app_metrics_benchmark_smoke(data_dir, tmp_path, this_key):
    out = tmp_path / "results"
    run_script("app_metrics", "--repeats", "1", "--pages", "draw", "--digits", "7", "--out", str(out))
    _, doc, md = _read(out, "app_metrics", "app_metrics")
    entry = doc["machines"][this_key]
    draw = entry["page_load_seconds"]["draw"]
    assert set(entry["page_load_seconds"]) == {"draw"} and _positive(draw["first"], draw["median_warm"])
    assert entry["draw_to_prediction_seconds"]["n"] == 1 and _positive(entry["draw_to_prediction_seconds"]["median"])
    assert entry["drawn_digits_recognised"].endswith("/1")
    assert _positive(*entry["server_rss_mb"].values())
    assert f"## Machine: {this_key}" in md and "| draw |" in md


@pytest.mark.browser
@pytest.mark.slow
def test_load_benchmark_smoke(data_dir, tmp_path, this_key):
    out = tmp_path / "results"
    run_script("load", "--visits", "1", "--rounds", "cost", "--timeout", "120", "--out", str(out))
    _, doc, md = _read(out, "load", "load")
    cost = doc["machines"][this_key]["rounds"]["cost"]
    for page in ("draw", "photo"):
        figures = cost["pages"][page]
        assert figures["errors"] == 0, figures
        # The whole front end came from the server: dozens of files, megabytes before compression.
        assert figures["requests_per_visit"] > 50 and figures["bytes_per_visit"] > 500_000, figures
        assert _positive(figures["cpu_seconds_per_visit"], figures["screen_seconds_median"])
    assert _positive(cost["server_peak_rss_mb"]) and f"## Machine: {this_key}" in md
    assert "| draw | 1 | 0 |" in md and "| photo | 1 | 0 |" in md


@pytest.mark.slow
def test_step_profile_benchmark_smoke(small_data_dir, tmp_path, this_key):
    out = tmp_path / "results"
    run_script(
        "step_profile",
        "--arch",
        "turbo",
        "--precision",
        "fp32",
        "--steps",
        "2",
        "--data-dir",
        str(small_data_dir),
        "--out",
        str(out),
    )
    module, doc, md = _read(out, "step_profile", "step_profile")
    prof = doc["machines"][this_key]["profile"]
    assert prof["arch"] == "turbo" and prof["precision"] == "fp32" and prof["batch_size"] == 256
    assert _positive(
        prof["step_s"], prof["images_per_sec"], prof["input_pipeline_s"], prof["optimizer_s"], prof["gflops_per_sec"]
    )
    assert {"convolution", "batch norm", "max pooling", "ReLU"} <= set(prof["parts"])
    # Every layer of the network is timed, forward and backward.
    from cnn_core.nets.models import build_model

    model = build_model("turbo", "cifar10")
    assert [row["layer"] for row in prof["layers"]] == [layer.name for layer in model.layers[1:]]
    assert prof["training_flops_per_image"] == module.keras_training_flops_per_image(model)
    assert "| convolution |" in md and this_key in md


@pytest.mark.browser
@pytest.mark.slow
def test_cold_start_benchmark_smoke(tmp_path, this_key):
    out = tmp_path / "results"
    run_script("cold_start", "--repeats", "1", "--out", str(out))
    _, doc, md = _read(out, "cold_start", "cold_start")
    entry = doc["machines"][this_key]
    (run,) = entry["runs"]
    assert run["digit"] == "7" and _positive(run["server_up"], run["first_paint"], run["prediction"])
    # The Draw page predicts from the committed LiteRT file: its server never loads TensorFlow.
    assert run["tensorflow_in_server"] is False
    assert entry["median_seconds"]["prediction"] == run["prediction"] and f"## Machine: {this_key}" in md
