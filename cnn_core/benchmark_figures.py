"""What the benchmarks measured about saved models, kept beside the models in their store.

The app shows some benchmark figures (how the "none of these classes" warning fared on images of
other kinds; what flip TTA and ensembles buy). A benchmark writes them here, next to the models
they describe, so the app reads only the model store and never `benchmarks/`:

- `NAME.ood.json`: benchmarks/ood.py's row for model NAME (for the calibration it measured);
- `DATASET.tta_ensembles.json`: every measured TTA setting and ensemble of that dataset's models.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelStoreError
from .store import ModelStore, atomic_write_json, find_model, read_json, shipped_store, validate_name

OOD_SUFFIX = ".ood.json"
ENSEMBLES_SUFFIX = ".tta_ensembles.json"


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
    figures = read_json(path)
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
    return read_json(path) if path.is_file() else None
