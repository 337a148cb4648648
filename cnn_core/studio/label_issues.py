"""Suspicious labels: images whose given label a model confidently disputes, found by confident learning
(Northcutt, Jiang & Chuang, "Confident Learning", JAIR 2021) on held-out probabilities.

Held-out means the network never trained on the image. For the test set that is any saved model's
prediction. For the training set it is out-of-fold: K networks, each trained by the project's own trainer
on the other K-1 folds, each predicting the fold it did not see. A model's fit of its own training images
is no use: it has learnt their labels, right or wrong.

Confident learning, in three steps:
  1. Each class j gets a threshold t_j: the mean probability the model gives j on the images labelled j
     (how sure it is of that class on its own images, where most labels are right).
  2. An image's confident class is the most probable of the classes whose probability reaches their
     threshold (none when no class does). An image whose confident class is not its given label is a
     suspect; counting suspects per (given, confident) pair gives the "confident joint".
  3. Rescaled to each class's size, the joint's off-diagonal estimates how many labels are wrong.
All images are ranked by self-confidence, the probability the model gives the given label, lowest first
(cleanlab's label quality score); the flagged ones are confident learning's label issues. A suspect is a
question for a person, not a verdict: the model may be the one that is wrong.
"""

from __future__ import annotations

import numpy as np

from cnn_core.base.errors import ConfigError
from cnn_core.base.runtime import now_iso
from cnn_core.base.store import ModelStore, all_stores, read_json
from cnn_core.train.cards import STATUS_EARLY_STOPPED, STATUS_FINISHED

SPLITS = ("test", "train")
KEPT = 500  # images an audit keeps, most disputed first
PICTURED = 100  # of them, the ones kept with their picture
DEFAULT_FOLDS = 2  # out-of-fold training: each network sees half the training set
DEFAULT_RECIPE = "quick"
VERDICTS_FILE = "label_verdicts.json"  # a person's judgement of shipped audits' top suspects
VERDICTS = {"label": "the label is wrong", "model": "the model is wrong", "unsure": "both fit, or neither"}


def class_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """t_j: the mean probability of class j over the images labelled j (1.0, i.e. never, for a class with
    no image, so nothing is counted as confidently belonging to it)."""
    labels = np.asarray(labels).astype(int)
    sums = np.zeros(probs.shape[1])
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    counts = np.bincount(labels, minlength=probs.shape[1])
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def confident_classes(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Each image's confident class: its most probable class among those at or above their threshold;
    -1 where no class reaches its threshold."""
    above = np.where(probs >= thresholds[None, :], probs, -1.0)
    best = above.argmax(axis=1)
    return np.where(above.max(axis=1) >= 0, best, -1)


def confident_joint(labels: np.ndarray, confident: np.ndarray, num_classes: int) -> np.ndarray:
    """C[i, j]: images labelled i whose confident class is j."""
    joint = np.zeros((num_classes, num_classes), np.int64)
    counted = confident >= 0
    np.add.at(joint, (np.asarray(labels)[counted].astype(int), confident[counted]), 1)
    return joint


def estimated_label_errors(joint: np.ndarray, labels: np.ndarray) -> int:
    """The joint's off-diagonal, each row rescaled from the images counted in it to all the images
    with that label (confident learning's calibration step)."""
    class_sizes = np.bincount(np.asarray(labels).astype(int), minlength=len(joint))
    counted = joint.sum(axis=1)
    scaled = joint * (class_sizes / np.maximum(counted, 1))[:, None]
    return round(float(scaled.sum() - np.trace(scaled)))


def find_suspects(probs: np.ndarray, labels: np.ndarray) -> tuple[list[dict], dict]:
    """Every image ranked by self-confidence (the probability the model gives its given label, lowest, i.e.
    most disputed, first; cleanlab's label quality score), the first KEPT of them, each marked `flagged` when
    confident learning counts it as a label issue; and the figures that go with them."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels).astype(int)
    if len(probs) != len(labels) or probs.ndim != 2 or not len(labels):
        raise ConfigError(f"Need one probability row per label; got {probs.shape} for {len(labels)} labels.")
    thresholds = class_thresholds(probs, labels)
    confident = confident_classes(probs, thresholds)
    flagged = (confident >= 0) & (confident != labels)
    rivals = probs.copy()
    rivals[np.arange(len(labels)), labels] = -1.0
    suggested = np.where(flagged, confident, rivals.argmax(axis=1))  # the class the model would rather give
    ranked = np.argsort(probs[np.arange(len(labels)), labels], kind="stable")[:KEPT]
    rows = [
        {
            "index": int(i),
            "given": int(labels[i]),
            "suggested": int(suggested[i]),
            "flagged": bool(flagged[i]),
            "given_probability": round(float(probs[i, labels[i]]), 5),
            "suggested_probability": round(float(probs[i, suggested[i]]), 5),
        }
        for i in ranked
    ]
    joint = confident_joint(labels, confident, probs.shape[1])
    figures = {
        "images": len(labels),
        "heldout_accuracy": float((probs.argmax(axis=1) == labels).mean()),
        "thresholds": np.round(thresholds, 4).tolist(),
        "flagged": int(flagged.sum()),
        "disputed": int((probs.argmax(axis=1) != labels).sum()),
        "estimated_label_errors": estimated_label_errors(joint, labels),
    }
    return rows, figures


def audit_from_probs(
    probs: np.ndarray, labels: np.ndarray, images: np.ndarray, data, split: str, judged_by: str, **extra
) -> dict:
    """A JSON-serialisable audit: the figures, the first KEPT images by rank, the first PICTURED of them
    with their picture (so the page shows them where the dataset is not at hand)."""
    from cnn_core.analysis.evaluation import encode_png

    suspects, figures = find_suspects(probs, labels)
    for row in suspects[:PICTURED]:
        row["image"] = encode_png(images[row["index"]])
    return {
        "dataset": data.info.name,
        "split": split,
        "judged_by": judged_by,
        **figures,
        "suspects": suspects,
        "dataset_sha256": data.sha256,
        "created": now_iso(),
        **extra,
    }


def test_audit(predictor, data) -> dict:
    """Suspects in the test set, judged by a saved model (it never trained on the test set). Give it the
    calibrated predictor (`load_predictor(..., calibrated=True)`): a label-smoothed network never gives more
    than about 1 - smoothing, so its confident mistakes cannot rise above the class thresholds."""
    probs = predictor.predict_samples(data.x_test)
    return audit_from_probs(probs, data.y_test, data.x_test, data, "test", predictor.name, model=predictor.name)


def out_of_fold_probabilities(data, config: dict, folds: int, progress=None) -> np.ndarray:
    """Each training image's probabilities from a network trained, with `config`, on the other folds
    (stratified folds, seeded by the config's seed). Each fold's network trains in a temporary folder
    and is thrown away. `progress(fold, folds)` is told before each fold."""
    import tempfile
    from pathlib import Path

    from sklearn.model_selection import StratifiedKFold

    from cnn_core.data.datasets import Dataset
    from cnn_core.predict.calibration import fit_temperature, with_temperature
    from cnn_core.predict.inference import predict_proba
    from cnn_core.train.training import train

    if folds < 2:
        raise ConfigError(f"Out-of-fold predictions need at least 2 folds, not {folds}.")
    probs = np.zeros((len(data.y_train), data.info.num_classes), np.float32)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config["seed"])
    for fold, (kept, held) in enumerate(splitter.split(np.zeros(len(data.y_train)), data.y_train)):
        if progress:
            progress(fold, folds)
        part = Dataset(
            data.info,
            data.x_train[kept],
            data.y_train[kept],
            data.x_train[held],
            data.y_train[held],
            data.source,
            data.sha256,
        )
        with tempfile.TemporaryDirectory(prefix="cnn_oof_") as folder:
            store = ModelStore(Path(folder), "runs", True, ephemeral=True)
            result = train({**config, "val_size": 0}, f"fold{fold}", store=store, data=part, command="")
            if result.status not in (STATUS_FINISHED, STATUS_EARLY_STOPPED):
                raise ConfigError(f"Fold {fold + 1} of {folds} did not finish ({result.status}): {result.message}")
            fold_probs = predict_proba(
                store.load_model(f"fold{fold}"), part.x_test, data.info, tta=config.get("tta", False)
            )
        # Temperature-scaled on the fold it judges (images its network never saw), as the test audits use a
        # model's calibrated probabilities: label smoothing would otherwise cap every probability near 0.9.
        probs[held] = with_temperature(fold_probs, fit_temperature(fold_probs, part.y_test))
    return probs


def train_audit(data, config: dict, folds: int = DEFAULT_FOLDS, progress=None, **extra) -> dict:
    """Suspects in the training set, judged out-of-fold by `folds` networks trained with `config`."""
    probs = out_of_fold_probabilities(data, config, folds, progress)
    judged_by = f"{folds}-fold cross-validation, recipe {config['recipe']} ({config['epochs']} epochs)"
    return audit_from_probs(
        probs,
        data.y_train,
        data.x_train,
        data,
        "train",
        judged_by,
        folds=folds,
        recipe=config["recipe"],
        epochs=config["epochs"],
        **extra,
    )


def audit_name(split: str, model: str | None = None, dataset: str | None = None) -> tuple[str, str]:
    """(name, suffix) of an audit's file: `MODEL.labels.json` for a model's test-set audit,
    `DATASET.train_labels.json` for a dataset's cross-validated training-set audit."""
    if split not in SPLITS:
        raise ConfigError(f"Unknown split '{split}'. Choose one of: {', '.join(SPLITS)}.")
    return (model, ".labels.json") if split == "test" else (dataset, ".train_labels.json")


def load_audit(split: str, model: str | None = None, dataset: str | None = None) -> dict | None:
    """The saved audit (runs folder first, then the shipped one), or None."""
    name, suffix = audit_name(split, model, dataset)
    for store in reversed(all_stores()):
        if store.path(name, suffix).is_file():
            return read_json(store.path(name, suffix))
    return None


def load_verdicts(dataset: str, split: str) -> dict[int, str]:
    """A person's verdicts on shipped audits' suspects ({image index: "label" | "model" | "unsure"})."""
    for store in all_stores():
        path = store.root / VERDICTS_FILE
        if path.is_file():
            judged = read_json(path).get(dataset, {}).get(split, {})
            return {int(index): verdict for index, verdict in judged.items()}
    return {}


def tally(suspects: list[dict], verdicts: dict[int, str], top: int) -> dict:
    """How the first `top` suspects were judged: counts per verdict, and how many are not judged."""
    counts = {kind: 0 for kind in VERDICTS} | {"not judged": 0}
    for row in suspects[:top]:
        counts[verdicts.get(row["index"], "not judged")] += 1
    return counts
