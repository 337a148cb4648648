"""Evaluation on the test set, and the JSON artefact that lets results be shown
later without the dataset (it carries a bounded gallery of the images it cites)."""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np
from PIL import Image
from sklearn.metrics import classification_report, confusion_matrix, log_loss

from cnn_core.base.runtime import now_iso
from cnn_core.data.datasets import Dataset
from cnn_core.predict.inference import predict_proba, tta_level

GALLERY_PER_CELL = 12  # misclassified images kept per (true, predicted) pair
SAMPLE_COUNT = 36  # random test images kept with their predictions
AUGMENT_SOURCES = 4  # test images kept for the augmentation preview


def encode_png(sample: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(sample, np.uint8)).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true class, from the probabilities of every class.

    scikit-learn clips probabilities at their dtype's machine epsilon (1.2e-7 for the models'
    float32), Keras at 1e-7: the two agree unless a true class got less than that."""
    with warnings.catch_warnings():
        # scikit-learn 1.9 renamed the second parameter `y_proba`; positional works from 1.4 on.
        warnings.simplefilter("ignore", FutureWarning)
        return float(log_loss(labels, probs, labels=list(range(probs.shape[1]))))


def evaluate(model, data: Dataset, tta: bool | int = False, model_name: str | None = None, seed: int = 0) -> dict:
    """Test-set metrics plus the images needed to show them; JSON-serialisable."""
    info = data.info
    probs = predict_proba(model, data.x_test, info, tta=tta)
    return evaluation_from_probs(probs, data, tta=tta, model_name=model_name, seed=seed)


def evaluate_predictor(predictor, data: Dataset, seed: int = 0) -> dict:
    """Like `evaluate`, for a Predictor (single model or ensemble, with its TTA setting)."""
    probs = predictor.predict_samples(data.x_test)
    result = evaluation_from_probs(probs, data, tta=predictor.tta, model_name=predictor.name, seed=seed)
    result["members"] = predictor.name.split("+")
    return result


def evaluation_from_probs(
    probs: np.ndarray, data: Dataset, tta: bool | int = False, model_name: str | None = None, seed: int = 0
) -> dict:
    info, y = data.info, data.y_test
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    labels = list(range(info.num_classes))
    cm = confusion_matrix(y, pred, labels=labels)
    report = classification_report(
        y, pred, labels=labels, target_names=list(info.class_names), output_dict=True, zero_division=0
    )
    misclassified = _misclassified(y, pred, conf)
    gallery = _mistake_gallery(misclassified, data.x_test)
    samples, augment_sources = _random_samples(y, pred, conf, data.x_test, seed)
    return {
        "model": model_name,
        "dataset": info.name,
        "class_names": list(info.class_names),
        "tta": tta_level(tta),
        "test_size": len(y),
        "accuracy": float((pred == y).mean()),
        "loss": cross_entropy(probs, y),
        # A class's accuracy is its recall: the share of its test images predicted as it.
        "per_class_accuracy": {c: float(report[c]["recall"]) for c in info.class_names},
        "report": report,
        "confusion_matrix": cm.tolist(),
        "misclassified": misclassified,
        # Every test image's predicted class and confidence, in test-set order: any cell of the
        # matrix (the diagonal too) can list its images, read from the dataset when it is at hand.
        "predictions": {"class": pred.astype(int).tolist(), "confidence": np.round(conf, 4).tolist()},
        "gallery": gallery,
        "samples": samples,
        "augment_sources": augment_sources,
        "dataset_sha256": data.sha256,
        "created": now_iso(),
    }


def _misclassified(y: np.ndarray, pred: np.ndarray, conf: np.ndarray) -> list[dict]:
    """Every mistake, the most confident first: they are the most instructive."""
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")]
    return [
        {"index": int(i), "true": int(y[i]), "pred": int(pred[i]), "confidence": round(float(conf[i]), 4)}
        for i in wrong
    ]


def _mistake_gallery(misclassified: list[dict], x_test: np.ndarray) -> dict[str, str]:
    """PNGs of the first GALLERY_PER_CELL mistakes of each confusion cell, keyed by test index."""
    gallery, per_cell = {}, {}
    for item in misclassified:
        cell = (item["true"], item["pred"])
        if per_cell.get(cell, 0) < GALLERY_PER_CELL:
            per_cell[cell] = per_cell.get(cell, 0) + 1
            gallery[str(item["index"])] = encode_png(x_test[item["index"]])
    return gallery


def _random_samples(
    y: np.ndarray, pred: np.ndarray, conf: np.ndarray, x_test: np.ndarray, seed: int
) -> tuple[list[dict], list[str]]:
    """SAMPLE_COUNT test images drawn with `seed`, with their predictions; the first
    AUGMENT_SOURCES of them as PNGs for the augmentation preview."""
    rng = np.random.default_rng(seed)
    sample_idx = rng.choice(len(y), size=min(SAMPLE_COUNT, len(y)), replace=False)
    samples = [
        {
            "index": int(i),
            "true": int(y[i]),
            "pred": int(pred[i]),
            "confidence": round(float(conf[i]), 4),
            "image": encode_png(x_test[i]),
        }
        for i in sample_idx
    ]
    return samples, [encode_png(x_test[int(i)]) for i in sample_idx[:AUGMENT_SOURCES]]


def most_confused_cell(confusion: np.ndarray | list) -> tuple[int, int]:
    """(true, predicted) of the off-diagonal cell with the most mistakes, the first one on a tie;
    (0, 0) when there are no mistakes at all."""
    off = np.array(confusion)
    np.fill_diagonal(off, 0)
    true, predicted = np.unravel_index(off.argmax(), off.shape)
    return int(true), int(predicted)


def per_class_rows(evaluation: dict) -> list[dict]:
    """The classification report as one row per class: precision, recall, F1 and support."""
    report = evaluation["report"]
    return [
        {
            "class": c,
            "precision": report[c]["precision"],
            "recall": report[c]["recall"],
            "F1": report[c]["f1-score"],
            "support": int(report[c]["support"]),
        }
        for c in evaluation["class_names"]
    ]


def cell_items(evaluation: dict, true: int, pred: int, x_test: np.ndarray | None = None) -> list[dict]:
    """The test images of one confusion-matrix cell, most confident first: {"index", "true", "pred",
    "confidence", "image"}. Images come from `x_test` (the test set, when at hand and as large as the one
    evaluated), else from the
    artefact's gallery (the most confident mistakes of each cell; None for the rest). A diagonal cell
    needs the artefact's per-image predictions (evaluations written since they were added)."""
    predictions = evaluation.get("predictions")
    if predictions is not None:
        labels = _test_labels(evaluation, predictions)
        predicted, confidence = np.asarray(predictions["class"]), np.asarray(predictions["confidence"])
        index = np.flatnonzero((labels == true) & (predicted == pred))
        index = index[np.argsort(-confidence[index], kind="stable")]
        items = [{"index": int(i), "true": true, "pred": pred, "confidence": float(confidence[i])} for i in index]
    else:
        items = [{k: v for k, v in item.items() if k != "image"} for item in mistakes_for_cell(evaluation, true, pred)]
    gallery = evaluation.get("gallery", {})
    if x_test is not None and len(x_test) != evaluation["test_size"]:
        x_test = None  # not the test set this evaluation ran on (a smaller data folder): its indices mean nothing there
    for item in items:
        if x_test is not None:
            item["image"] = x_test[item["index"]]
        else:
            item["image"] = decode_png(gallery[str(item["index"])]) if str(item["index"]) in gallery else None
    return items


def _test_labels(evaluation: dict, predictions: dict) -> np.ndarray:
    """Each test image's true class, rebuilt from the predictions and the list of mistakes."""
    labels = np.asarray(predictions["class"]).copy()
    for item in evaluation["misclassified"]:
        labels[item["index"]] = item["true"]
    return labels


def mistakes_for_cell(evaluation: dict, true: int | None = None, pred: int | None = None) -> list[dict]:
    """Misclassified items (with images when the artefact kept them) for one matrix cell,
    or for a whole row / column when one side is None."""
    gallery = evaluation.get("gallery", {})
    out = []
    for item in evaluation["misclassified"]:
        if (true is None or item["true"] == true) and (pred is None or item["pred"] == pred):
            image = gallery.get(str(item["index"]))
            out.append({**item, "image": decode_png(image) if image else None})
    return out
