"""Suspicious labels (cnn_core.studio.label_issues): confident learning's pieces on hand-made probabilities, label
errors planted in real MNIST found by out-of-fold training, the CLI, the shipped audits and verdicts, and the
Suspicious labels page."""

import json

import numpy as np
import pytest
from test_app import open_page, texts
from test_cli import cli_in_process, run_cli

from cnn_core.analysis.evaluation import decode_png
from cnn_core.base.store import shipped_store
from cnn_core.data.datasets import Dataset, load_dataset
from cnn_core.studio.label_issues import (
    KEPT,
    PICTURED,
    VERDICTS,
    class_thresholds,
    confident_classes,
    confident_joint,
    estimated_label_errors,
    find_suspects,
    load_audit,
    load_verdicts,
    tally,
    train_audit,
)
from cnn_core.train.recipes import resolve_config

SHIPPED_JUDGES = {"mnist": "mnist_fast30", "cifar10": "cifar10_airbench18_s2", "fashion_mnist": "fashion_mnist_fast"}


def test_thresholds_are_each_class_mean_probability_on_its_own_images():
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    labels = np.array([0, 0, 1, 1])
    assert np.allclose(class_thresholds(probs, labels), [0.8, 0.7])
    # A class with no image never counts as anyone's confident class.
    assert class_thresholds(probs[:2], labels[:2])[1] == 1.0


def test_confident_class_is_the_likeliest_class_above_its_threshold():
    thresholds = np.array([0.8, 0.5, 0.5])
    probs = np.array(
        [
            [0.6, 0.3, 0.1],  # nothing clears its threshold: no confident class
            [0.85, 0.1, 0.05],  # class 0 clears 0.8
            [0.45, 0.55, 0.0],  # 0 is likelier but below 0.8; 1 clears 0.5
            [0.0, 0.5, 0.5],
        ]
    )  # a tie goes to the first class
    assert confident_classes(probs, thresholds).tolist() == [-1, 0, 1, 1]


def test_the_joint_counts_pairs_and_its_rescaled_off_diagonal_estimates_the_errors():
    labels = np.array([0, 0, 0, 0, 1, 1])
    confident = np.array([0, 0, 1, -1, 1, 1])  # one image labelled 0 looks like a 1; one has no confident class
    joint = confident_joint(labels, confident, 2)
    assert joint.tolist() == [[2, 1], [0, 2]]
    # 1 of the 3 counted images labelled 0 is off the diagonal; rescaled to all 4 such images: 1.33 -> 1.
    assert estimated_label_errors(joint, labels) == 1


def test_planted_label_errors_rank_first_among_clean_ones():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 2000)
    probs = rng.dirichlet(np.full(10, 0.3), 2000) * 0.2
    probs[np.arange(2000), labels] += 0.8  # a good model: 80%+ on the right class
    wrong = rng.choice(2000, 40, replace=False)
    given = labels.copy()
    given[wrong] = (labels[wrong] + rng.integers(1, 10, 40)) % 10  # 40 labels made wrong
    rows, figures = find_suspects(probs, given)
    assert {r["index"] for r in rows[:40]} == set(wrong.tolist())
    assert all(r["suggested"] == labels[r["index"]] for r in rows[:40])  # and each names the right class
    # Confident learning is cautious: it flags only those whose true class clears that class's mean confidence
    # (about 3 in 4 here), never a clean one; rescaled, the flagged count estimates all 40.
    assert not any(r["flagged"] for r in rows[40:]) and 20 <= figures["flagged"] < 40
    assert figures["disputed"] == 40 and abs(figures["estimated_label_errors"] - 40) <= 6
    assert len(rows) == KEPT and [r["given_probability"] for r in rows] == sorted(r["given_probability"] for r in rows)


def test_a_tally_counts_each_of_the_top_once():
    rows = [{"index": i} for i in range(6)]
    assert tally(rows, {0: "label", 1: "model", 2: "label", 9: "unsure"}, 4) == {
        "label": 2,
        "model": 1,
        "unsure": 0,
        "not judged": 1,
    }


@pytest.mark.slow
def test_out_of_fold_training_finds_labels_planted_in_real_mnist(data_dir):
    """Two networks, each trained by the project's trainer on one half of 8,000 real digits, judge the other
    half; 80 of the labels were changed to another digit beforehand."""
    data = load_dataset("mnist", data_dir)
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(data.y_train), 8000, replace=False)
    y = data.y_train[chosen].copy()
    planted = rng.choice(8000, 80, replace=False)
    y[planted] = (y[planted] + rng.integers(1, 10, 80)) % 10
    part = Dataset(data.info, data.x_train[chosen], y, data.x_test, data.y_test, data.source, data.sha256)
    audit = train_audit(part, resolve_config("mnist", "quick", epochs=4, val_size=0), folds=2)
    flagged = [r["index"] for r in audit["suspects"] if r["flagged"]]
    top = {r["index"] for r in audit["suspects"][:80]}
    assert audit["split"] == "train" and audit["images"] == 8000 and audit["heldout_accuracy"] > 0.9
    # 1% of the labels are planted; among the flagged they are the majority (the rest: the half-trained
    # networks' own mistakes, and MNIST's real label errors), and most of them are flagged.
    found = len(set(flagged) & set(planted.tolist()))
    assert found >= 0.5 * len(flagged) and found >= 0.6 * len(planted)
    assert len(top & set(planted.tolist())) >= 40  # most planted labels among the 80 most disputed
    assert 50 <= audit["estimated_label_errors"] <= 250


@pytest.mark.slow
def test_cli_audits_a_models_test_set_and_the_page_then_finds_it(data_dir, isolated_runs):
    out = run_cli("labels", "--model", "mnist_fast30", "--top", "5")
    assert out.returncode == 0, out.stderr
    saved = isolated_runs / "mnist_fast30.labels.json"
    audit = json.loads(saved.read_text())
    assert audit["model"] == "mnist_fast30" and audit["images"] == 10_000 and audit["split"] == "test"
    first = audit["suspects"][0]
    assert f"{first['index']:6d}" in out.stdout and "wrong labels" in out.stdout
    assert len(audit["suspects"]) == KEPT and all("image" in r for r in audit["suspects"][:PICTURED])
    x_test = load_dataset("mnist", data_dir).x_test
    assert np.array_equal(decode_png(first["image"]), x_test[first["index"]])  # the picture is that test image
    assert load_audit("test", model="mnist_fast30")["created"] == audit["created"]  # the runs folder's first


@pytest.mark.parametrize(
    "args, words",
    [
        (["labels"], "Give --model NAME"),
        (["labels", "--dataset", "mnist"], "judged by a saved model"),
        (["labels", "--model", "mnist_fast30", "--dataset", "cifar10"], "was trained on mnist, not cifar10"),
        (["labels", "--model", "no_such_model"], "no_such_model"),
        (["labels", "--dataset", "mnist", "--split", "train", "--folds", "1"], "at least 2 folds"),
        (["labels", "--split", "everything"], "invalid choice"),
    ],
)
def test_labels_command_wrong_arguments_say_what_is_wrong(args, words, data_dir, capsys):
    code, err = cli_in_process(args, capsys)
    assert code == 2 and words in err and "Traceback" not in err


@pytest.mark.parametrize("dataset", list(SHIPPED_JUDGES))
def test_shipped_audits_match_their_judge_and_dataset(dataset, data_dir):
    name = SHIPPED_JUDGES[dataset]
    audit = json.loads(shipped_store().path(name, ".labels.json").read_text())
    card = shipped_store().load_card(name)
    assert audit["dataset"] == card["dataset"] and audit["dataset_sha256"] == card["dataset_sha256"]
    # The judge's held-out accuracy is its card's test accuracy: the same model on the same test set.
    assert abs(audit["heldout_accuracy"] - card["test_accuracy"]) < 0.002
    y_test = load_dataset(dataset, data_dir).y_test
    assert all(r["given"] == y_test[r["index"]] for r in audit["suspects"])


def test_every_verdict_is_about_a_top_50_image_of_a_shipped_audit():
    for dataset in ("mnist", "cifar10"):
        verdicts = load_verdicts(dataset, "test")
        top = [r["index"] for r in load_audit("test", model=SHIPPED_JUDGES[dataset])["suspects"][:50]]
        assert set(verdicts) == set(top) and set(verdicts.values()) <= set(VERDICTS)


def test_the_page_shows_a_shipped_audit_with_its_verdicts_preset():
    at = open_page("app_pages/labels.py")
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    audit = load_audit("test", model="mnist_fast30")
    assert metrics["Labels the model disputes"] == f"{audit['disputed']:,}"
    verdicts = load_verdicts("mnist", "test")
    controls = [c for c in at.selectbox if c.key and c.key.startswith("verdict_")]
    assert [int(c.key.rsplit("_", 1)[1]) for c in controls] == [r["index"] for r in audit["suspects"][:20]]
    assert all(c.value == verdicts[int(c.key.rsplit("_", 1)[1])] for c in controls)
    counts = {k: sum(verdicts[r["index"]] == k for r in audit["suspects"][:20]) for k in VERDICTS}
    assert f"label wrong {counts['label']} · model wrong {counts['model']} · unsure {counts['unsure']}" in texts(at)
    # A verdict changed by the user is counted, and goes into the CSV.
    first = controls[0]
    before = verdicts[int(first.key.rsplit("_", 1)[1])]
    after = next(k for k in VERDICTS if k != before)
    first.select(after).run()
    assert not at.exception, at.exception
    counts = {**counts, before: counts[before] - 1, after: counts[after] + 1}
    assert f"label wrong {counts['label']} · model wrong {counts['model']} · unsure {counts['unsure']}" in texts(at)


@pytest.mark.slow
def test_the_page_audits_a_model_without_one_on_a_click(data_dir):
    at = open_page("app_pages/labels.py")
    at.selectbox(key="labels_model").select("mnist_seed").run()
    assert not at.exception, at.exception
    assert "No audit of `mnist_seed` yet" in texts(at)
    at.button(key="labels_run").click().run()
    assert not at.exception, at.exception
    assert {m.label for m in at.metric} >= {"Held-out accuracy", "Estimated wrong labels"}
    assert load_audit("test", model="mnist_seed")["judged_by"] == "mnist_seed"  # kept for the next visit


def test_the_training_split_says_how_to_audit_it_when_there_is_no_audit(tmp_path, monkeypatch):
    monkeypatch.setattr("cnn_core.base.store.SHIPPED_DIR", tmp_path / "nothing_shipped")
    at = open_page("app_pages/labels.py")
    at.segmented_control(key="labels_split").set_value("train").run()
    at.selectbox(key="labels_dataset").select("cifar10").run()
    assert not at.exception, at.exception
    assert "python -m cnn_core labels --dataset cifar10 --split train" in texts(at) and not at.metric


def test_the_training_split_shows_the_shipped_cross_validated_audit():
    at = open_page("app_pages/labels.py")
    at.segmented_control(key="labels_split").set_value("train").run()
    assert not at.exception, at.exception
    audit = load_audit("train", dataset="mnist")
    assert f"{audit['images']:,} train images judged by {audit['judged_by']}" in texts(at)
    assert {m.label: m.value for m in at.metric}["Estimated wrong labels"] == f"{audit['estimated_label_errors']:,}"


def test_label_audit_benchmark_counts_the_verdicts_of_the_top(tmp_path, data_dir):
    import subprocess
    import sys

    from benchmarks import label_audit

    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.label_audit", "--model", "mnist_fast30", "--out", str(tmp_path)],
        cwd=label_audit.OUT.parent.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "label_audit.json").read_text())
    label_audit.validate_results(doc)
    verdicts = load_verdicts("mnist", "test")
    top = load_audit("test", model="mnist_fast30")["suspects"][:50]
    row = doc["models"][0]
    assert row["verdicts"]["label"] == sum(verdicts[r["index"]] == "label" for r in top)
    assert (tmp_path / row["contact_sheet"]).stat().st_size > 20_000 and "| mnist_fast30" in (
        tmp_path / "label_audit.md"
    ).read_text()
