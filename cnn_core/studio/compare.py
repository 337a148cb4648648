"""Side-by-side comparison of saved models from their cards (no dataset needed)."""

from __future__ import annotations

from cnn_core.train.switches import describe_switches

TARGETS = {"cifar10": 0.90}  # where a comparison's "time to accuracy" starts, per dataset
DEFAULT_TARGET = 0.99  # every other dataset


def default_target(dataset: str) -> float:
    """The accuracy whose time to reach the comparison starts on for `dataset`."""
    return TARGETS.get(dataset, DEFAULT_TARGET)


def curve_key(history: list[dict]) -> str:
    """Validation accuracy when the run had a validation set, else training accuracy."""
    return "val_accuracy" if any(h.get("val_accuracy") is not None for h in history) else "accuracy"


def elapsed_seconds(history: list[dict]) -> list[float]:
    """Training seconds at the end of each epoch (epochs without a time count as 0 s)."""
    elapsed, total = [], 0.0
    for h in history:
        total += h.get("seconds") or 0.0
        elapsed.append(total)
    return elapsed


def time_to_accuracy(history: list[dict], target: float, key: str | None = None) -> float | None:
    """Training seconds until `key` (default: curve_key) first reached `target`; None if never."""
    key = key or curve_key(history)
    for h, elapsed in zip(history, elapsed_seconds(history), strict=False):
        if h.get(key) is not None and h[key] >= target:
            return elapsed
    return None


def curve_points(cards: list[dict]) -> list[dict]:
    """One row per model and epoch for drawing every run's curves on one chart: accuracy and loss
    of the curve `curve_key` picks (validation when there was one), against epochs and minutes."""
    rows = []
    for card in cards:
        history = card.get("history") or []
        validated = curve_key(history) == "val_accuracy"
        label = f"{card['name']} ({'val' if validated else 'train'})"
        for h, elapsed in zip(history, elapsed_seconds(history), strict=False):
            rows.append(
                {
                    "model": label,
                    "epoch": h["epoch"],
                    "training minutes": elapsed / 60,
                    "accuracy": h.get("val_accuracy" if validated else "accuracy"),
                    "loss": h.get("val_loss" if validated else "loss"),
                }
            )
    return rows


def summary(cards: list[dict], target: float) -> list[dict]:
    """One row per model: what it is, its test accuracy, size and time, and its time to `target`."""
    rows = []
    for card in cards:
        history = card.get("history") or []
        key = curve_key(history)
        reached = time_to_accuracy(history, target, key)
        rows.append(
            {
                "model": card["name"],
                "dataset": card["dataset"],
                "architecture": card["architecture"],
                "switches": describe_switches(card.get("hyperparameters", {})),
                "test accuracy": card.get("test_accuracy"),
                "parameters": card["params"],
                "training minutes": round(card["train_seconds"] / 60, 2),
                "epochs": card["epochs_run"],
                f"minutes to {target:.1%} ({'val' if key == 'val_accuracy' else 'train'})": None
                if reached is None
                else round(reached / 60, 2),
            }
        )
    return rows


def per_class_differences(cards: list[dict]) -> dict[str, dict[str, float]]:
    """Per-class test accuracy of each model minus the first model's (same dataset only)."""
    base = cards[0].get("per_class_accuracy") or {}
    out = {}
    for card in cards[1:]:
        if card["dataset"] != cards[0]["dataset"] or not card.get("per_class_accuracy"):
            continue
        out[card["name"]] = {c: card["per_class_accuracy"][c] - base[c] for c in base}
    return out
