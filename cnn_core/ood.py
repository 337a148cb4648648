"""Out-of-distribution warning: "this picture is unlikely to be any of the classes".

A classifier always answers with one of its classes, even for a photo of a face or a
handwritten digit. The maximum softmax probability (Hendrycks & Gimpel, 2017) is a simple,
strong baseline for spotting such inputs: in-distribution images tend to get a confident
top class, off-distribution images a flatter distribution. The model's output layer is a
softmax, so the score is exactly what the app already computes (with the model's TTA).

The threshold is calibrated on the run's validation split — images the network never
trained on, and never the test set — so that a chosen share (95%) of genuine images pass.
The calibration is stored in the model card under "ood" and read back by the app.
"""

from __future__ import annotations

import numpy as np

from .datasets import prepare_data
from .errors import ConfigError
from .inference import tta_level

SCORE = "max_softmax"
DEFAULT_PASS_RATE = 0.95  # share of in-distribution validation images that must not be flagged


def max_softmax(probs: np.ndarray) -> np.ndarray:
    """The in-distribution score of each row of class probabilities: higher = more typical."""
    return np.asarray(probs, np.float64).max(axis=-1)


def calibrate_threshold(val_scores: np.ndarray, pass_rate: float = DEFAULT_PASS_RATE) -> float:
    """The score below which (1 - pass_rate) of the validation images fall."""
    if not 0 < pass_rate < 1:
        raise ConfigError(f"The pass rate must be between 0 and 1 (got {pass_rate}).")
    scores = np.asarray(val_scores, np.float64)
    if scores.size < 100:
        raise ConfigError(f"Calibrating needs at least 100 validation images (got {scores.size}); "
                          "train with --val-size 1000 or more.")
    return float(np.quantile(scores, 1 - pass_rate))


def calibration(predictor, data, pass_rate: float = DEFAULT_PASS_RATE) -> dict:
    """Calibrate a predictor's threshold on the validation split its card describes.

    The split is rebuilt exactly as training built it (same size, seed and subset)."""
    card = predictor.card
    config = card.get("hyperparameters") or {}
    if not config.get("val_size"):
        raise ConfigError(f"'{predictor.name}' was trained without a validation split, so there are no held-out "
                          "training images to calibrate on (the test set only reports). Train with --val-size 5000.")
    _, split = prepare_data(config, data=data)
    scores = max_softmax(predictor.predict_samples(split.x_val))
    threshold = calibrate_threshold(scores, pass_rate)
    return {"score": SCORE, "threshold": threshold, "pass_rate": pass_rate, "tta": predictor.tta,
            "calibrated_on": f"validation split ({len(scores):,} training images held out, seed {config['seed']})",
            "val_flagged": float(np.mean(scores < threshold))}


def is_out_of_distribution(probs: np.ndarray, ood: dict | None) -> bool:
    """True when a card's calibration says this prediction is unlikely to be any class."""
    if not ood:
        return False
    return bool(max_softmax(probs) < ood["threshold"])


def through_preprocessing(x: np.ndarray, dataset: str) -> np.ndarray:
    """Images of any dataset (uint8 arrays) as the model of `dataset` sees them, through the same
    preprocessing path a user's upload takes (e.g. MNIST digits turned into 32×32 colour)."""
    from PIL import Image

    from .preprocess import preprocessor

    prep = preprocessor(dataset)
    return np.stack([prep.from_image(Image.fromarray(np.asarray(img, np.uint8))) for img in x])


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve for telling in- from off-distribution images by score (1 = perfect, 0.5 = chance)."""
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.ones(len(in_scores)), np.zeros(len(out_scores))]
    return float(roc_auc_score(labels, np.r_[in_scores, out_scores]))


def applicable_calibration(predictor) -> dict | None:
    """The card's calibration when it fits how this predictor scores images: the threshold was
    set for that single model with its card's TTA setting; an ensemble or another TTA setting
    shifts the scores, so no warning is better than a miscalibrated one."""
    ood = predictor.card.get("ood")
    if not ood or predictor.extra_models or tta_level(ood.get("tta")) != predictor.tta:
        return None
    return ood
