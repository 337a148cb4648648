"""Benchmark figures kept beside the models (cnn_core.studio.benchmark_figures): the app's only source
for them, so the shipped ones must belong to the shipped models as they are now."""

import pytest

from cnn_core.base.store import ModelStore, shipped_store
from cnn_core.predict.inference import tta_level
from cnn_core.studio.benchmark_figures import (
    ensemble_figures,
    ood_figures,
    ood_figures_path,
    write_ensemble_figures,
)


def _calibrated_shipped_models() -> list[str]:
    store = shipped_store()
    return [n for n in store.names() if store.load_card(n).get("ood")]


@pytest.mark.parametrize("name", _calibrated_shipped_models())
def test_every_calibrated_shipped_model_has_figures_for_its_own_threshold(name):
    threshold = shipped_store().load_card(name)["ood"]["threshold"]
    figures = ood_figures(name, threshold)
    assert figures is not None, f"rerun benchmarks/ood.py: trained_models/{name}.ood.json is missing or stale"
    assert figures["model"] == name and figures["in_distribution"]["images"] > 0
    assert {"mnist test images", "fashion_mnist test images", "cifar10 test images"} & set(figures["off_distribution"])
    assert "benchmarks" in figures["command"] and "ood" in figures["command"]
    assert ood_figures(name, threshold + 0.01) is None  # figures of another calibration are not shown


def test_a_model_without_figures_and_an_unknown_model_have_none():
    assert ood_figures("cifar10_fast", 0.5) is None  # trained without a validation split: never calibrated
    assert ood_figures("no_such_model", 0.5) is None


def test_ood_benchmark_writes_each_row_beside_its_model(tmp_path):
    from benchmarks import ood as benchmark

    store = ModelStore(tmp_path, "shipped", writable=True)
    row = {"model": "m1", "threshold": 0.42, "in_distribution": {"images": 10}, "off_distribution": {}}
    doc = {"command": "python -m benchmarks.ood", "git_commit": "abc", "date": "today", "models": [row]}
    assert benchmark.write_beside_models(doc, store) == [ood_figures_path("m1", store)]
    assert ood_figures("m1", 0.42, store) == {**row, "command": doc["command"], "git_commit": "abc", "date": "today"}


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "cifar10"])
def test_shipped_tta_and_ensemble_figures_cover_every_shipped_model_of_the_dataset(dataset):
    store = shipped_store()
    models = {n for n in store.names() if store.load_card(n)["dataset"] == dataset}
    figures = ensemble_figures(dataset)
    assert figures is not None and figures["dataset"] == dataset
    singles = {(r["models"][0], tta_level(r["tta"])) for r in figures["rows"] if len(r["models"]) == 1}
    # Each model alone with TTA off, level 1, and every level up to its card's; digits at every level.
    top = {m: 2 if dataset == "mnist" else max(1, tta_level(store.load_card(m).get("tta"))) for m in models}
    assert singles == {(m, level) for m in models for level in range(top[m] + 1)}
    for row in figures["rows"]:
        assert set(row["models"]) <= models and 0 < row["accuracy"] <= 1 and row["loss"] > 0


def test_ensemble_figures_round_trip_and_are_absent_for_an_unmeasured_dataset(tmp_path):
    store = ModelStore(tmp_path, "shipped", writable=True)
    assert ensemble_figures("mnist", store) is None
    rows = [{"models": ["a", "b"], "tta": False, "accuracy": 0.99, "loss": 0.03}]
    write_ensemble_figures("mnist", rows, {"command": "x", "git_commit": "y", "date": "z"}, store)
    assert ensemble_figures("mnist", store)["rows"] == rows


def test_best_ensemble_is_the_most_accurate_measured_one_of_available_models_beating_every_single(tmp_path):
    from cnn_core.studio.benchmark_figures import best_ensemble

    store = ModelStore(tmp_path, "shipped", writable=True)
    assert best_ensemble("cifar10", {"a", "b"}, store) is None  # nothing measured
    rows = [
        {"models": ["a"], "tta": 2, "accuracy": 0.94, "loss": 0.2},
        {"models": ["b"], "tta": 2, "accuracy": 0.943, "loss": 0.2},
        {"models": ["c"], "tta": 1, "accuracy": 0.93, "loss": 0.2},
        {"models": ["a", "b"], "tta": 2, "accuracy": 0.951, "loss": 0.2},
        {"models": ["a", "b", "c"], "tta": 2, "accuracy": 0.953, "loss": 0.2},
        {"models": ["a", "c"], "tta": 2, "accuracy": 0.939, "loss": 0.2},
    ]
    write_ensemble_figures("cifar10", rows, {"command": "x", "git_commit": "y", "date": "z"}, store)
    assert best_ensemble("cifar10", {"a", "b", "c"}, store) == rows[4]
    assert best_ensemble("cifar10", {"a", "b"}, store) == rows[3]  # c is no longer shipped
    # An ensemble no better than a single model is no recommendation.
    assert best_ensemble("cifar10", {"a", "c"}, store) is None


ZEN3 = {"cpu": "AMD EPYC", "cores": 2, "flags": ["avx2", "fma"]}
ZEN4 = {"cpu": "AMD EPYC", "cores": 2, "flags": ["avx2", "fma", "avx512f", "avx512_bf16"]}
XEON = {"cpu": "Intel(R) Xeon(R) Platinum 8481C", "cores": 2, "flags": ["avx2", "fma", "avx512f", "amx_bf16"]}


def test_recipe_times_are_this_machines_or_the_most_alike_ones(tmp_path):
    from cnn_core.base.runtime import machine_key
    from cnn_core.studio.benchmark_figures import recipe_time_label, recipe_times, write_recipe_times

    store = ModelStore(tmp_path, "shipped", writable=True)
    assert recipe_times("mnist", ZEN3, store) is None  # nothing measured yet
    figures = {"quick": {"train_seconds": 12.8, "test_accuracy": 0.9887, "epochs": 1, "tta": False}}
    slow = {"quick": {"train_seconds": 130.0, "test_accuracy": 0.99, "epochs": 2, "tta": False}}
    write_recipe_times(
        "mnist",
        {
            machine_key(ZEN3): {"machine": ZEN3, "recipes": figures},
            machine_key(XEON): {"machine": XEON, "recipes": slow},
        },
        {"command": "x"},
        store,
    )
    here = recipe_times("mnist", ZEN3, store)
    assert here["exact"] and here["recipes"] == figures
    assert recipe_time_label("quick", here) == "measured 98.9% after 1 epoch, 13 s of training on this CPU"
    # A Zen 4 with native bf16 was never measured: the Xeon (bf16 too) is nearer than the Zen 3.
    near = recipe_times("mnist", ZEN4, store)
    assert not near["exact"] and near["machine"] == machine_key(XEON)
    assert recipe_time_label("quick", near).endswith(f"after 2 epochs, 2.2 min of training on {machine_key(XEON)}")
    assert recipe_time_label("seed", near) == ""  # a recipe never measured gets no label
