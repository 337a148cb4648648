"""Live per-batch curves: each batch's own loss and accuracy recovered from Keras' running means,
the smoothing, and the bounded point lists the Train page draws (cnn_core.service.curves)."""

import math

import numpy as np
import pytest

from cnn_core.service.curves import BatchCurve, bucketed, curve_rows, lr_rows, merge_pairs, smoothed
from cnn_core.train.callbacks import ProgressEvents


class _FakeModel:  # ProgressEvents reads the optimizer's lr through cnn_core.train.optimizer.current_lr
    pass


def test_each_batchs_own_values_come_back_from_the_running_means(monkeypatch):
    """Keras logs the epoch's image-weighted running mean; the event carries the batch's own value,
    including the last, smaller batch."""
    import cnn_core.train.callbacks as cb

    monkeypatch.setattr(cb, "current_lr", lambda model: 0.1)
    rng = np.random.default_rng(0)
    sizes = [32, 32, 32, 4]  # 100 images in batches of 32
    losses, accs = rng.uniform(0.1, 2.5, len(sizes)), rng.uniform(0, 1, len(sizes))
    events = []
    progress = ProgressEvents(
        events.append, steps=len(sizes), epochs=2, batch_size=32, train_size=100, prior_elapsed=0.0
    )
    progress.set_model(_FakeModel())
    progress.on_train_begin()
    for epoch in range(2):
        progress.on_epoch_begin(epoch)
        seen = 0
        for step, n in enumerate(sizes):
            seen += n
            weights = np.array(sizes[: step + 1])
            progress.on_train_batch_end(
                step,
                {
                    "loss": float(np.average(losses[: step + 1], weights=weights)),
                    "accuracy": float(np.average(accs[: step + 1], weights=weights)),
                },
            )
    for epoch in range(2):  # the second epoch starts its running means afresh
        got = events[epoch * len(sizes) : (epoch + 1) * len(sizes)]
        assert [e["batch_loss"] for e in got] == pytest.approx(losses, rel=1e-9)
        assert [e["batch_accuracy"] for e in got] == pytest.approx(accs, rel=1e-9)
        assert got[-1]["loss"] == pytest.approx(np.average(losses, weights=sizes))  # the running mean stays too


def test_smoothing_is_debiased_at_the_start_and_skips_missing_values():
    assert smoothed([4.0, 4.0, 4.0], 0.9) == pytest.approx([4.0, 4.0, 4.0])  # not pulled towards 0
    out = smoothed([1.0, math.nan, 3.0], 0.5)
    assert out[0] == 1.0 and out[1] == 1.0 and out[2] == pytest.approx((0.25 + 1.5) / 0.75)
    assert smoothed([1.0, 5.0], 0.0) == [1.0, 5.0]
    with pytest.raises(ValueError, match="smoothing"):
        smoothed([1.0], 1.0)


def _event(epoch, step, steps=10, loss=1.0):
    return {
        "epoch": epoch,
        "step": step,
        "steps": steps,
        "loss": loss,
        "accuracy": 0.5,
        "batch_loss": loss,
        "batch_accuracy": 0.5,
        "lr": 0.01,
    }


def test_a_long_run_keeps_a_bounded_number_of_points_spanning_the_whole_run():
    curve = BatchCurve(max_points=100)
    for epoch in range(1, 31):
        for step in range(1, 51):
            curve.add(_event(epoch, step, steps=50, loss=float(epoch)))
    points = curve.points()
    assert 50 <= len(points) <= 100
    assert points[0]["x"] < 0.5 and points[-1]["x"] == pytest.approx(30.0, abs=0.5)
    gaps = np.diff([p["x"] for p in points])
    assert gaps.min() > 0 and gaps.max() <= 2.5 * np.median(gaps)  # evenly spread: early batches no coarser
    assert [p["loss"] for p in points] == sorted(p["loss"] for p in points)  # each point averages its own batches
    assert merge_pairs([{"x": 0.0}, {"x": 2.0}, {"x": 5.0}]) == [{"x": 1.0}, {"x": 5.0}]
    assert len(bucketed(points, 10)) <= 10 and bucketed(points[:5], 10) == points[:5]


def test_curve_rows_put_batches_smoothing_and_validation_on_one_epoch_axis():
    curve = BatchCurve()
    for epoch in (1, 2):
        for step in range(1, 11):
            curve.add(_event(epoch, step, loss=3.0 - epoch - step / 10))
    epochs = [{"epoch": 1, "val_loss": 1.5, "val_accuracy": 0.6}, {"epoch": 2, "val_loss": None, "val_accuracy": None}]
    rows = curve_rows(curve.points(), epochs, smoothing=0.5)
    by = {(r["metric"], r["series"]) for r in rows}
    assert by == {(m, s) for m in ("loss", "accuracy") for s in ("batch", "smoothed")} | {
        ("loss", "validation"),
        ("accuracy", "validation"),
    }
    (val,) = [r for r in rows if r["metric"] == "loss" and r["series"] == "validation"]
    assert val == {"metric": "loss", "series": "validation", "x": 1.0, "value": 1.5}
    batch = [r["value"] for r in rows if r["metric"] == "loss" and r["series"] == "batch"]
    assert batch[0] == pytest.approx(1.9) and batch[-1] == pytest.approx(0.0)
    assert [r["x"] for r in lr_rows(curve.points())][:2] == pytest.approx([0.1, 0.2])
