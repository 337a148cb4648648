"""Side-by-side comparison of saved models from their cards (no dataset needed)."""

from __future__ import annotations


def curve_key(history: list[dict]) -> str:
    """Validation accuracy when the run had a validation set, else training accuracy."""
    return "val_accuracy" if any(h.get("val_accuracy") is not None for h in history) else "accuracy"


def time_to_accuracy(history: list[dict], target: float, key: str | None = None) -> float | None:
    """Training seconds until `key` (default: curve_key) first reached `target`; None if never."""
    key = key or curve_key(history)
    elapsed = 0.0
    for h in history:
        elapsed += h.get("seconds") or 0.0
        if h.get(key) is not None and h[key] >= target:
            return elapsed
    return None


def summary(cards: list[dict], target: float) -> list[dict]:
    rows = []
    for card in cards:
        history = card.get("history") or []
        key = curve_key(history)
        reached = time_to_accuracy(history, target, key)
        rows.append({
            "model": card["name"],
            "dataset": card["dataset"],
            "architecture": card["architecture"],
            "test accuracy": card.get("test_accuracy"),
            "parameters": card["params"],
            "training minutes": round(card["train_seconds"] / 60, 2),
            "epochs": card["epochs_run"],
            f"minutes to {target:.1%} ({'val' if key == 'val_accuracy' else 'train'})":
                None if reached is None else round(reached / 60, 2),
        })
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
