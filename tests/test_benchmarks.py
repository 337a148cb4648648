"""The committed benchmark results are well-formed and self-consistent, the validators
reject broken documents, and the time-to-accuracy script runs end to end (on a tiny
subset, one epoch: seconds, not a benchmark)."""

import copy
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tta = _load("time_to_accuracy")
inference = _load("inference")


def _committed(name, command):
    path = RESULTS / name
    if not path.is_file():
        pytest.fail(f"{path} is not committed: run `CNN_DATA_DIR=... {command}` on an otherwise idle machine "
                    f"and commit benchmarks/results/.")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def committed():
    return _committed("time_to_accuracy.json", "python benchmarks/time_to_accuracy.py")


def test_committed_time_to_accuracy_results_follow_the_schema(committed):
    tta.validate_results(committed)
    # Both datasets of the issue, each with the original recipe and at least one fast one.
    assert set(committed["datasets"]) == {"mnist", "cifar10"}
    for dataset, block in committed["datasets"].items():
        assert tta.BASELINE in block["runs"], dataset
        assert set(block["speedup"]) == set(block["runs"]) - {tta.BASELINE}
        assert block["speedup"], dataset
        for run in block["runs"].values():
            assert run["subset"] is None, "committed results must come from full training sets"
            assert run["source"]["machine"]["cores"] >= 1


def test_committed_markdown_and_plot_match_the_json(committed):
    md = (RESULTS / "time_to_accuracy.md").read_text()
    assert tta.NOTES_MARKER in md
    generated = md.split(tta.NOTES_MARKER)[0]
    assert generated == tta.render_markdown(committed).split(tta.NOTES_MARKER)[0]
    notes = md.split(tta.NOTES_MARKER)[1]
    assert "limit" in notes.lower(), "the notes must say what limits the results"
    png = (RESULTS / "time_to_accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def _first_run(doc):
    block = next(iter(doc["datasets"].values()))
    return block, next(iter(block["runs"].values()))


@pytest.mark.parametrize("break_it, message", [
    (lambda d: d.pop("git_commit"), "git_commit"),
    (lambda d: d.pop("command"), "command"),
    (lambda d: d.update(schema_version=99), "schema_version"),
    (lambda d: _first_run(d)[1]["epochs"][0].update(test_accuracy=1.5), "test_accuracy"),
    (lambda d: _first_run(d)[1]["epochs"][0].update(epoch_seconds=-1.0), "epoch_seconds"),
    (lambda d: _first_run(d)[1]["epochs"][-1].update(train_seconds=1e9), "train_seconds"),
    (lambda d: _first_run(d)[1].pop("train_size"), "train_size"),
    (lambda d: _first_run(d)[1].update(time_to_target=0.123), "time_to_target"),
    (lambda d: _first_run(d)[1].update(best_test_accuracy=0.0), "best_test_accuracy"),
    (lambda d: _first_run(d)[1]["source"].pop("machine"), "machine"),
    (lambda d: next(iter(_first_run(d)[0]["speedup"].values())).update(value=1234.5), "value"),
    (lambda d: _first_run(d)[0].update(target=0.5), "target"),
    (lambda d: _first_run(d)[1]["source"]["machine"].update(cores=64), "same machine"),
])
def test_validator_rejects_broken_documents(committed, break_it, message):
    doc = copy.deepcopy(committed)
    break_it(doc)
    with pytest.raises(ValueError, match=message):
        tta.validate_results(doc)


def test_speedup_is_a_lower_bound_when_the_original_was_capped():
    base = {"time_to_target": None, "total_train_seconds": 600.0}
    assert tta.ratio_entry(base, {"time_to_target": 60.0}) == {"baseline": "seed", "value": 10.0,
                                                              "kind": "lower_bound"}
    assert tta.ratio_entry({**base, "time_to_target": 300.0}, {"time_to_target": 60.0})["kind"] == "exact"
    assert tta.ratio_entry(base, {"time_to_target": None})["value"] is None


def test_time_to_accuracy_script_runs_end_to_end_and_keeps_other_runs(data_dir, tmp_path, committed):
    out = tmp_path / "results"
    out.mkdir()
    # Start from the committed document: the runs not redone must be kept with their source.
    (out / "time_to_accuracy.json").write_text(json.dumps(committed))
    (out / "time_to_accuracy.md").write_text(f"old\n{tta.NOTES_MARKER}\nLimits: hand-written notes.\n")
    assert tta.main(["--datasets", "mnist", "--recipes", "turbo", "--subset", "1200", "--epochs", "1",
                     "--data-dir", str(data_dir), "--out", str(out)]) == 0
    doc = json.loads((out / "time_to_accuracy.json").read_text())
    tta.validate_results(doc)
    run = doc["datasets"]["mnist"]["runs"]["turbo"]
    assert run["subset"] == 1200 and run["train_size"] == 1200 and len(run["epochs"]) == 1
    assert run["source"]["command"].endswith("--out " + str(out))
    assert run["epochs"][0]["eval_seconds"] > 0 and run["epochs"][0]["epoch_seconds"] > 0
    # The original recipe's committed run was reused untouched.
    assert doc["datasets"]["mnist"]["runs"]["seed"] == committed["datasets"]["mnist"]["runs"]["seed"]
    assert doc["datasets"]["cifar10"] == committed["datasets"]["cifar10"]
    md = (out / "time_to_accuracy.md").read_text()
    assert md.endswith("Limits: hand-written notes.\n") and "| turbo | turbo |" in md
    assert (out / "time_to_accuracy.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def committed_inference():
    return _committed("inference.json", "python benchmarks/inference.py")


def test_committed_inference_results_follow_the_schema(committed_inference):
    inference.validate_results(committed_inference)
    assert (RESULTS / "inference.md").read_text() == inference.render_markdown(committed_inference)


@pytest.mark.parametrize("break_it", [
    lambda d: d["models"].pop(inference.MODELS[0]),
    lambda d: d["models"][inference.MODELS[1]]["single_image"].update(p50_ms=-1),
    lambda d: d["models"][inference.MODELS[0]]["single_image"].update(p95_ms=0.0001),
    lambda d: d["models"][inference.MODELS[0]]["batch"].update(images_per_sec=1.0),
    lambda d: d["memory"].pop("serving_process"),
])
def test_inference_validator_rejects_broken_documents(committed_inference, break_it):
    doc = copy.deepcopy(committed_inference)
    break_it(doc)
    with pytest.raises(ValueError):
        inference.validate_results(doc)


ood = _load("ood")


def test_committed_ood_results_follow_the_schema_and_the_cards():
    from cnn_core.store import shipped_store

    doc = _committed("ood.json", "python benchmarks/ood.py")
    ood.validate_results(doc)
    md = (RESULTS / "ood.md").read_text()
    assert md.split(ood.NOTES_MARKER)[0] == ood.render_markdown(doc).split(ood.NOTES_MARKER)[0]
    store = shipped_store()
    calibrated = {n for n in store.names() if store.load_card(n).get("ood")}
    assert {row["model"] for row in doc["models"]} == calibrated, "rerun benchmarks/ood.py after calibrating"
    for row in doc["models"]:
        # The results belong to the calibration the shipped card carries now.
        assert row["threshold"] == store.load_card(row["model"])["ood"]["threshold"], row["model"]
    if "cifar10" in {row["dataset"] for row in doc["models"]}:
        labels = next(r for r in doc["models"] if r["dataset"] == "cifar10")["off_distribution"]
        assert {"mnist test images", "fashion_mnist test images"} <= set(labels)


@pytest.mark.parametrize("break_it, message", [
    (lambda d: d.pop("models"), "missing 'models'"),
    (lambda d: d["models"][0].update(threshold=1.5), "threshold"),
    (lambda d: d["models"][0]["off_distribution"].clear(), "no off-distribution"),
    (lambda d: next(iter(d["models"][0]["off_distribution"].values())).update(auroc=1.2), "must lie in"),
])
def test_ood_validator_rejects_broken_documents(break_it, message):
    doc = copy.deepcopy(_committed("ood.json", "python benchmarks/ood.py"))
    break_it(doc)
    with pytest.raises(ValueError, match=message):
        ood.validate_results(doc)
