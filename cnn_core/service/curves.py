"""Live training curves: every batch's loss, accuracy and learning rate, kept compactly while a run
trains, and turned into the points a chart draws (the raw values faint, a smoothed line over them,
the validation value of each epoch on the same axes).

    curve = BatchCurve()
    curve.add(batch_event)                  # each {"type": "batch", ...} event (cnn_core.train.training)
    rows = curve_rows(curve.points(), epoch_events, smoothing=0.8)

The x axis is in epochs: batch 50 of 100 in epoch 3 is at 2.5, so the epoch's validation point
(drawn at 3) sits where the epoch ended.
"""

from __future__ import annotations

import math

# Points kept per run: beyond this, neighbouring points are merged (averaged) in pairs, so a
# 30-epoch run of 900 batches each costs a few hundred kilobytes, not a growing list.
MAX_POINTS_KEPT = 8000
# Points a chart draws per series: more cannot be told apart at a page's width, and each
# second's redraw stays cheap.
MAX_POINTS_DRAWN = 600
DEFAULT_SMOOTHING = 0.8  # the exponential moving average's weight of the past, as TensorBoard's slider
METRICS = ("loss", "accuracy")


class BatchCurve:
    """The per-batch points of one run, at most `max_points` of them, evenly spread: once the list
    is full, neighbours are merged in pairs and from then on each new point is the mean of twice
    as many batches (so early batches are never coarser than late ones)."""

    def __init__(self, max_points: int = MAX_POINTS_KEPT):
        self.max_points = max_points
        self.batches_per_point = 1
        self._points: list[dict] = []
        self._pending: list[dict] = []  # batches not yet making up a whole point

    def add(self, event: dict) -> None:
        self._pending.append(
            {
                "x": event["epoch"] - 1 + event["step"] / event["steps"],
                "loss": event.get("batch_loss", event["loss"]),
                "accuracy": event.get("batch_accuracy", event["accuracy"]),
                "lr": event["lr"],
            }
        )
        if len(self._pending) < self.batches_per_point:
            return
        self._points.append(_mean_point(self._pending))
        self._pending = []
        if len(self._points) > self.max_points:
            self._points = merge_pairs(self._points)
            self.batches_per_point *= 2

    def points(self) -> list[dict]:
        """The points so far, the latest batches included (as one partial point)."""
        return self._points + ([_mean_point(self._pending)] if self._pending else [])

    def __len__(self) -> int:
        return len(self._points) + bool(self._pending)


def merge_pairs(points: list[dict]) -> list[dict]:
    """Each two neighbouring points as one at their mean (an odd last point is kept as it is)."""
    merged = [_mean_point(pair) for pair in zip(points[::2], points[1::2], strict=False)]
    return merged + points[len(points) // 2 * 2 :]


def bucketed(points: list[dict], max_points: int) -> list[dict]:
    """At most `max_points` points: consecutive points averaged in equal buckets."""
    if len(points) <= max_points:
        return points
    size = math.ceil(len(points) / max_points)
    return [_mean_point(points[i : i + size]) for i in range(0, len(points), size)]


def smoothed(values: list[float], weight: float) -> list[float]:
    """Exponential moving average, debiased at the start (TensorBoard's smoothing): the first
    points are not pulled towards zero. NaN values (a batch without the metric) are skipped."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {weight}")
    out, average, count = [], 0.0, 0
    for value in values:
        if not math.isnan(value):
            average, count = weight * average + (1 - weight) * value, count + 1
        out.append(average / (1 - weight**count) if count else math.nan)
    return out


def curve_rows(
    points: list[dict], epochs: list[dict], smoothing: float = DEFAULT_SMOOTHING, max_points: int = MAX_POINTS_DRAWN
) -> list[dict]:
    """Long-format rows for a chart: {"metric", "series", "x", "value"} with series "batch"
    (raw, per batch), "smoothed" and "validation" (one per epoch that has it; x = the epoch's end)."""
    drawn = bucketed(points, max_points)
    rows = []
    for metric in METRICS:
        raw = [p[metric] for p in drawn]
        for series, values in (("batch", raw), ("smoothed", smoothed(raw, smoothing))):
            rows += [
                {"metric": metric, "series": series, "x": p["x"], "value": v}
                for p, v in zip(drawn, values, strict=False)
                if not math.isnan(v)
            ]
        rows += [
            {"metric": metric, "series": "validation", "x": float(e["epoch"]), "value": e[f"val_{metric}"]}
            for e in epochs
            if e.get(f"val_{metric}") is not None
        ]
    return rows


def lr_rows(points: list[dict], max_points: int = MAX_POINTS_DRAWN) -> list[dict]:
    """The learning rate per batch: {"x", "lr"}."""
    return [{"x": p["x"], "lr": p["lr"]} for p in bucketed(points, max_points)]


def _mean_point(points) -> dict:
    """The mean of each key over `points` (dicts with the same keys)."""
    return {key: sum(p[key] for p in points) / len(points) for key in points[0]}


__all__ = [
    "DEFAULT_SMOOTHING",
    "MAX_POINTS_DRAWN",
    "MAX_POINTS_KEPT",
    "BatchCurve",
    "bucketed",
    "curve_rows",
    "lr_rows",
    "merge_pairs",
    "smoothed",
]
