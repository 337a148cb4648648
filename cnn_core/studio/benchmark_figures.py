"""What the benchmarks measured about saved models, kept beside the models in their store.

The app shows some benchmark figures (how the "none of these classes" warning fared on images of
other kinds; what flip TTA and ensembles buy). A benchmark writes them here, next to the models
they describe, so the app reads only the model store and never `benchmarks/`:

- `NAME.ood.json`: benchmarks/ood.py's row for model NAME (for the calibration it measured);
- `DATASET.tta_ensembles.json`: every measured TTA setting and ensemble of that dataset's models;
- `DATASET.recipe_times.json`: benchmarks/time_to_accuracy.py's runs of each recipe, per machine
  (the Train page labels each recipe with its time on this CPU, or on the nearest one measured);
- `DATASET.recipe_switches.json`: benchmarks/recipe_switches.py's summary of the seed recipe with each
  of the original's improvements switched on (cnn_core.train.switches), shown on the Compare page.
"""

from __future__ import annotations

from pathlib import Path

from cnn_core.base.errors import ModelStoreError
from cnn_core.base.store import (
    ModelStore,
    atomic_write_json,
    find_model,
    read_json_cached,
    shipped_store,
    validate_name,
)

OOD_SUFFIX = ".ood.json"
ENSEMBLES_SUFFIX = ".tta_ensembles.json"
RECIPE_TIMES_SUFFIX = ".recipe_times.json"
SWITCHES_SUFFIX = ".recipe_switches.json"


def ood_figures_path(name: str, store: ModelStore | None = None) -> Path:
    return (store or find_model(name)).path(name, OOD_SUFFIX)


def write_ood_figures(row: dict, source: dict, store: ModelStore | None = None) -> Path:
    """Save one model's out-of-distribution figures (a benchmarks/ood.py row) beside it; `source`
    says where they come from (command, git_commit, date)."""
    path = ood_figures_path(row["model"], store or shipped_store())
    atomic_write_json(path, {**source, **row})
    return path


def ood_figures(name: str, threshold: float, store: ModelStore | None = None) -> dict | None:
    """The measured figures of model `name`'s warning at `threshold`; None when none were measured,
    or when they belong to another calibration (a recalibrated model has a new threshold)."""
    try:
        path = ood_figures_path(name, store)
    except ModelStoreError:
        return None
    if not path.is_file():
        return None
    figures = read_json_cached(path)
    return figures if figures.get("threshold") == threshold else None


def ensemble_figures_path(dataset: str, store: ModelStore | None = None) -> Path:
    return (store or shipped_store()).root / f"{validate_name(dataset)}{ENSEMBLES_SUFFIX}"


def write_ensemble_figures(dataset: str, rows: list[dict], source: dict, store: ModelStore | None = None) -> Path:
    """Save the measured accuracy and loss of one dataset's models with flip TTA off and on and in
    ensembles: `rows` of {"models", "tta", "accuracy", "loss"}; `source` as for write_ood_figures."""
    path = ensemble_figures_path(dataset, store)
    atomic_write_json(path, {**source, "dataset": dataset, "rows": rows})
    return path


def ensemble_figures(dataset: str, store: ModelStore | None = None) -> dict | None:
    """{"command", "git_commit", "rows": [...]} measured for `dataset`'s shipped models, or None."""
    path = ensemble_figures_path(dataset, store)
    return read_json_cached(path) if path.is_file() else None


def best_ensemble(dataset: str, available: set[str], store: ModelStore | None = None) -> dict | None:
    """The measured ensemble of `dataset` (a row of its ensemble figures, two or more models, all in
    `available`) with the highest test accuracy, if it beats every single model measured; else None."""
    figures = ensemble_figures(dataset, store)
    rows = [r for r in (figures or {}).get("rows", []) if set(r["models"]) <= available]
    ensembles = [r for r in rows if len(r["models"]) > 1]
    if not ensembles:
        return None
    best = max(ensembles, key=lambda r: r["accuracy"])
    singles = [r["accuracy"] for r in rows if len(r["models"]) == 1]
    return best if best["accuracy"] > max(singles, default=0.0) else None


def recipe_times_path(dataset: str, store: ModelStore | None = None) -> Path:
    return (store or shipped_store()).root / f"{validate_name(dataset)}{RECIPE_TIMES_SUFFIX}"


def write_recipe_times(dataset: str, machines: dict, source: dict, store: ModelStore | None = None) -> Path:
    """Save each recipe's benchmark figures per machine: `machines` maps a machine key
    (cnn_core.base.runtime.machine_key) to {"machine": machine_info(), "recipes": {recipe: {"train_seconds",
    "test_accuracy", "epochs", "tta"}}}; `source` as for write_ood_figures."""
    path = recipe_times_path(dataset, store)
    atomic_write_json(path, {**source, "dataset": dataset, "machines": machines})
    return path


def _nearness(machine: dict, here: dict) -> tuple:
    """How alike two machines are for training speed: native bfloat16 or not first (it doubles the
    photo recipes' speed), then the core count, then the CPU model."""
    from cnn_core.nets.precision import NATIVE_BF16_FLAGS

    def bf16(m):
        return bool(set(m.get("flags") or ()) & set(NATIVE_BF16_FLAGS))

    return (
        bf16(machine) == bf16(here),
        machine.get("cores") == here.get("cores"),
        machine.get("cpu") == here.get("cpu"),
    )


def recipe_times(dataset: str, here: dict, store: ModelStore | None = None) -> dict | None:
    """The measured recipe figures of the machine `here` (a machine_info() dict) or, failing that, of
    the most alike machine measured: {"machine": key, "exact": bool, "recipes": {...}}; None if none."""
    from cnn_core.base.runtime import machine_key

    path = recipe_times_path(dataset, store)
    machines = read_json_cached(path).get("machines", {}) if path.is_file() else {}
    if not machines:
        return None
    key = machine_key(here)
    if key not in machines:
        key = max(machines, key=lambda k: _nearness(machines[k]["machine"], here))
    return {"machine": key, "exact": key == machine_key(here), "recipes": machines[key]["recipes"]}


def recipe_time_label(recipe: str, times: dict | None) -> str:
    """'98.9% in 13 s here' / '… on CPU MODEL | N cores | flags' (the most alike machine's key) / '' for a
    recipe never measured."""
    figures = (times or {}).get("recipes", {}).get(recipe)
    if not figures:
        return ""
    seconds = figures["train_seconds"]
    spent = f"{seconds:.0f} s" if seconds < 100 else f"{seconds / 60:.1f} min"
    where = "on this CPU" if times["exact"] else f"on {times['machine']}"
    epochs = f"{figures['epochs']} epoch{'s' if figures['epochs'] != 1 else ''}"
    return f"measured {figures['test_accuracy']:.1%} after {epochs}, {spent} of training {where}"


def switch_figures_path(dataset: str, store: ModelStore | None = None) -> Path:
    return (store or shipped_store()).root / f"{validate_name(dataset)}{SWITCHES_SUFFIX}"


def write_switch_figures(dataset: str, result: dict, source: dict, store: ModelStore | None = None) -> Path:
    """Save one dataset's measured switch effects: `result` holds the benchmark's "schedule" and
    "summary" rows (one per switch: mean, std, min, max, delta, clear, train_seconds, params);
    `source` as for write_ood_figures, plus the machine's key."""
    path = switch_figures_path(dataset, store)
    atomic_write_json(path, {**source, "dataset": dataset, "schedule": result["schedule"], "rows": result["summary"]})
    return path


def switch_figures(dataset: str, store: ModelStore | None = None) -> dict | None:
    """What benchmarks/recipe_switches.py measured for `dataset` ({"schedule", "rows", "command", ...}), or None."""
    path = switch_figures_path(dataset, store)
    return read_json_cached(path) if path.is_file() else None


def switch_table(figures: dict) -> list[dict]:
    """The Compare page's rows: one per switch, its title, accuracy and time beside the base's."""
    from cnn_core.train.switches import SWITCHES

    return [
        {
            "switch": SWITCHES[row["switch"]].title if row["switch"] in SWITCHES else "none (the seed recipe)",
            "seeds": len(row["seeds"]),
            "test accuracy (mean)": row["mean"],
            "± sd": row["std"],
            "lowest": row["min"],
            "highest": row["max"],
            "change (points)": row.get("delta", 0.0) * 100,
            "beyond seed noise": "–" if "clear" not in row else ("yes" if row["clear"] else "no"),
            "training s": row["train_seconds"],
            "parameters": row["params"],
        }
        for row in figures["rows"]
    ]
