"""Which models exist and how they rank (cnn_core.studio.catalog), and the rules the pages show with them."""

import json

import numpy as np
import pytest

from cnn_core.base.store import ModelStore
from cnn_core.studio import catalog


@pytest.fixture
def two_stores(tmp_path, monkeypatch):
    """A shipped store with two evaluated models and a runs store with a run and a damaged card."""
    shipped = ModelStore(tmp_path / "shipped", "shipped", writable=True)
    runs = ModelStore(tmp_path / "runs", "runs", writable=True)
    cards = {
        (shipped, "okay"): {"dataset": "mnist", "test_accuracy": 0.95, "status": "finished"},
        (shipped, "best"): {"dataset": "mnist", "test_accuracy": 0.99, "status": "finished"},
        (shipped, "photo"): {"dataset": "cifar10", "test_accuracy": 0.9, "status": "finished"},
        (shipped, "unevaluated"): {"dataset": "mnist", "status": "finished"},
        (runs, "mine"): {"dataset": "mnist", "status": "running", "pid": None},
    }
    for (store, name), card in cards.items():
        store.root.mkdir(exist_ok=True)
        store.card_path(name).write_text(json.dumps(card))
        store.model_path(name).write_bytes(b"")
    runs.card_path("broken").write_text("{not json")
    runs.model_path("broken").write_bytes(b"")
    monkeypatch.setattr(catalog, "all_stores", lambda: [shipped, runs])
    return shipped, runs


def test_list_models_puts_shipped_first_filters_by_dataset_and_reports_damaged_cards(two_stores):
    rows = catalog.list_models()
    assert [(r["name"], r["store"]) for r in rows] == [
        ("best", "shipped"),
        ("okay", "shipped"),
        ("photo", "shipped"),
        ("unevaluated", "shipped"),
        ("mine", "runs"),
    ]
    assert next(r for r in rows if r["name"] == "mine")["display_status"] == "interrupted"  # its process is gone
    assert [r["name"] for r in catalog.list_models("cifar10")] == ["photo"]
    every = catalog.list_models(include_damaged=True)
    broken = next(r for r in every if r["name"] == "broken")
    assert broken["store"] == "runs" and "damaged" in broken["error"] and "dataset" not in broken
    assert "broken" not in [r["name"] for r in catalog.list_models("mnist", include_damaged=True)]


def test_list_models_reads_through_the_given_reader(two_stores):
    reads = []
    rows = catalog.list_models(read_store=lambda store: reads.append(store.kind) or catalog.store_cards(store))
    assert reads == ["shipped", "runs"] and len(rows) == 5


def test_cards_version_changes_when_a_card_does(two_stores):
    shipped, _ = two_stores
    before = catalog.cards_version(shipped)
    shipped.card_path("okay").write_text(json.dumps({"dataset": "mnist", "test_accuracy": 0.96}))
    import os

    os.utime(shipped.card_path("okay"), ns=(1, 1))
    assert catalog.cards_version(shipped) != before


def test_rank_for_choice_offers_the_most_accurate_shipped_model_first_then_runs(two_stores):
    ranked = catalog.rank_for_choice(catalog.list_models("mnist"))
    assert [r["name"] for r in ranked] == ["best", "okay", "mine"]  # an unevaluated shipped model is not offered
    assert catalog.choice_label(ranked[0]) == "best · shipped · 99.00%"
    assert catalog.choice_label(ranked[-1]) == "mine · runs"
    assert catalog.ensemble_partners(catalog.list_models("mnist"), "best") == ["okay"]


def test_the_unsure_rule():
    from cnn_core.predict.inference import LOW_CONFIDENCE, is_unsure

    assert is_unsure(np.array([0.5, 0.3, 0.2])) and not is_unsure(np.array([0.7, 0.2, 0.1]))
    assert not is_unsure(np.array([LOW_CONFIDENCE, 1 - LOW_CONFIDENCE]))


def test_training_progress_counts_batches_over_all_epochs():
    from cnn_core.service.jobs import JobSnapshot, fraction_done

    assert fraction_done({"epoch": 1, "epochs": 4, "step": 5, "steps": 10}) == 0.125
    assert fraction_done({"epoch": 3, "epochs": 4, "step": 10, "steps": 10}) == 0.75
    assert fraction_done({"epoch": 5, "epochs": 4, "step": 1, "steps": 10}) == 1.0  # never past the end
    snap = JobSnapshot("id", "run", {}, "running", 0.0)
    assert snap.progress is None
    snap.last_batch = {"epoch": 2, "epochs": 2, "step": 5, "steps": 10}
    assert snap.progress == 0.75


def test_the_train_forms_batch_sizes_and_image_counts_stay_within_the_caps():
    from cnn_core.service.jobs import ServerCaps

    capped = ServerCaps(max_epochs=30, max_subset=20_000, max_batch_size=256)
    assert capped.batch_size_choices(64) == ([32, 64, 128, 256], 64)
    assert capped.batch_size_choices(512) == ([32, 64, 128, 256], 256)  # the recipe's own size is over the cap
    assert ServerCaps(max_batch_size=200).batch_size_choices(128) == ([32, 64, 128, 200], 128)
    assert ServerCaps(max_batch_size=None).batch_size_choices(384) == ([32, 64, 128, 256, 384, 512], 384)
    assert capped.subset_limit == 20_000 and capped.subset_for(20_000) == 20_000  # a capped server never trains on all
    uncapped = ServerCaps(max_subset=None)
    assert uncapped.subset_limit == 60_000 and uncapped.subset_for(60_000) is None and uncapped.subset_for(6000) == 6000
