"""Is "90% confident" right 90% of the time? Reliability, expected calibration error (ECE) and
temperature scaling (Guo et al., 2017).

Modern networks trained to a low loss tend to be over-confident. Temperature scaling divides the logits
by one number T fitted on the validation split (T > 1 softens, T < 1 sharpens); the predicted class never
changes, only how sure the model says it is. The card keeps T and, on the test set before and after
scaling, the ECE, the reliability diagram's bins and each class's over/under-confidence: the Calibration
page draws them from the card. The app's probabilities use T (Predictor.predict_samples). The
out-of-distribution detector (cnn_core.predict.ood) reads hidden-layer features, not probabilities, so its
threshold holds before and after.
"""

from __future__ import annotations

import numpy as np

from cnn_core.base.errors import ConfigError
from cnn_core.data.datasets import prepare_data

BINS = 15  # equal-width confidence bins, as Guo et al.
T_RANGE = (0.05, 20.0)


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities as if the logits had been divided by `temperature` (log-probabilities are the
    logits up to a per-row constant, which softmax ignores)."""
    logits = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T that minimises the negative log-likelihood of the true classes."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels)

    def nll(t):
        return -np.mean(np.log(with_temperature(probs, t)[np.arange(len(labels)), labels] + 1e-12))

    return float(minimize_scalar(nll, bounds=T_RANGE, method="bounded").x)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> dict:
    """Per confidence bin: the mean confidence, the accuracy and the number of images; and the ECE
    (the bins' |accuracy - confidence| weighted by their share of images)."""
    confidence, correct = np.max(probs, axis=1), np.argmax(probs, axis=1) == np.asarray(labels)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            rows.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "confidence": float(confidence[inside].mean()),
                    "accuracy": float(correct[inside].mean()),
                    "count": int(inside.sum()),
                }
            )
            ece += inside.mean() * abs(rows[-1]["accuracy"] - rows[-1]["confidence"])
    return {"ece": float(ece), "bins": rows}


def class_confidence_gaps(probs: np.ndarray, labels: np.ndarray, class_names) -> list[dict]:
    """For each class, over the images predicted as it: mean confidence minus the share that are right
    (> 0: over-confident when it says this class)."""
    predicted, confidence = np.argmax(probs, axis=1), np.max(probs, axis=1)
    out = []
    for c, name in enumerate(class_names):
        chosen = predicted == c
        if chosen.any():
            out.append(
                {
                    "class": name,
                    "gap": float(confidence[chosen].mean() - (np.asarray(labels)[chosen] == c).mean()),
                    "predicted": int(chosen.sum()),
                }
            )
    return out


def calibrate_temperature(predict, card: dict, data, split=None) -> dict:
    """The card's "calibration" entry: T fitted on the validation split that the card's hyperparameters
    describe (`split`, where the caller holds it already), and the test set's reliability before and
    after. `predict` maps uint8 samples to the model's uncalibrated probabilities (with its test-time
    augmentation)."""
    config = card.get("hyperparameters") or {}
    if not config.get("val_size"):
        raise ConfigError(
            "Temperature scaling is fitted on the validation split; this model was trained "
            "without one (train with --val-size 5000)."
        )
    split = split or prepare_data(config, data=data)[1]
    temperature = fit_temperature(predict(split.x_val), split.y_val)
    test = predict(data.x_test)
    before, after = test, with_temperature(test, temperature)
    names = data.info.class_names
    return {
        "temperature": temperature,
        "method": "temperature scaling (Guo et al., 2017)",
        "fitted_on": f"validation split ({len(split.x_val):,} training images held out, seed {config['seed']})",
        "measured_on": f"test set ({len(data.x_test):,} images)",
        "tta": card.get("tta"),
        "before": {**reliability(before, data.y_test), "classes": class_confidence_gaps(before, data.y_test, names)},
        "after": {**reliability(after, data.y_test), "classes": class_confidence_gaps(after, data.y_test, names)},
    }
