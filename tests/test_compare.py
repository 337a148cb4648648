from cnn_core.studio.compare import per_class_differences, summary, time_to_accuracy

HISTORY = [
    {"epoch": 1, "seconds": 10.0, "accuracy": 0.8, "val_accuracy": 0.85},
    {"epoch": 2, "seconds": 12.0, "accuracy": 0.9, "val_accuracy": 0.93},
    {"epoch": 3, "seconds": 11.0, "accuracy": 0.95, "val_accuracy": 0.92},
]


def test_time_to_accuracy_sums_epoch_times_until_the_target():
    assert time_to_accuracy(HISTORY, 0.85) == 10.0
    assert time_to_accuracy(HISTORY, 0.90) == 22.0
    assert time_to_accuracy(HISTORY, 0.99) is None
    no_val = [{**h, "val_accuracy": None} for h in HISTORY]
    assert time_to_accuracy(no_val, 0.95) == 33.0  # falls back to the training curve


def test_summary_and_per_class_differences():
    a = {
        "name": "a",
        "dataset": "mnist",
        "architecture": "seed",
        "params": 10,
        "train_seconds": 60,
        "epochs_run": 3,
        "test_accuracy": 0.9,
        "history": HISTORY,
        "per_class_accuracy": {"0": 0.9, "1": 0.8},
    }
    b = {**a, "name": "b", "per_class_accuracy": {"0": 0.95, "1": 0.7}}
    rows = summary([a, b], 0.9)
    assert rows[0]["minutes to 90.0% (val)"] == round(22 / 60, 2)
    diffs = per_class_differences([a, b])
    assert round(diffs["b"]["0"], 6) == 0.05 and round(diffs["b"]["1"], 6) == -0.1


def test_curve_points_follow_the_validation_curve_and_accumulate_minutes():
    from cnn_core.studio.compare import curve_points

    with_val = {"name": "a", "history": [{**h, "loss": 1.0, "val_loss": 2.0} for h in HISTORY]}
    no_val = {"name": "b", "history": [{**h, "val_accuracy": None, "loss": 0.5, "val_loss": None} for h in HISTORY]}
    rows = curve_points([with_val, no_val])
    assert [r["model"] for r in rows] == ["a (val)"] * 3 + ["b (train)"] * 3
    assert [r["accuracy"] for r in rows] == [0.85, 0.93, 0.92, 0.8, 0.9, 0.95]
    assert {r["loss"] for r in rows[:3]} == {2.0} and {r["loss"] for r in rows[3:]} == {0.5}
    assert [round(r["training minutes"] * 60, 6) for r in rows[:3]] == [10.0, 22.0, 33.0]
    assert rows[0]["epoch"] == 1 and rows[-1]["epoch"] == 3


def test_the_default_time_to_accuracy_target_per_dataset():
    from cnn_core.studio.compare import default_target

    assert default_target("cifar10") == 0.90
    assert default_target("mnist") == default_target("fashion_mnist") == 0.99
