"""Out-of-distribution warning: "this does not look like a digit" (or like any CIFAR-10 class).

A classifier always answers with one of its classes, so its top probability is a weak tell: a photo
of a car got "8, 76%" from the digit model, above the 72% that 95% of real digits reach. What the
network's hidden layers make of a picture tells far more. The detector (Lee et al., 2018, "A simple
unified framework for detecting out-of-distribution samples") models each layer's features of the
training images as one Gaussian per class with a shared covariance (scikit-learn's Ledoit-Wolf
estimate) and measures how far a new picture's features lie from the nearest class, at every stage
of the network (cnn_core.predict.embedding). Two classic scores of the output join them: the energy of the
logits (Liu et al., 2020) and the top probability (Hendrycks & Gimpel, 2017). Lee et al. weigh the
layers with a regression fitted on outliers; we fit on real images only, so each layer's distance and
each score becomes a p-value against the validation images (held out of training, never the test set)
and Fisher's method adds their logs: a picture far out at any stage, or a little out at many, scores low.

Nothing of other kinds of images is used to fit it: the threshold lets `pass_rate` (99%) of the
validation images pass. benchmarks/ood.py measures it on photos, clothes, noise, scribbles and
near-blank canvases. The statistics live beside the model in NAME.detector.npz; the card's "ood"
entry says how they were made.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from cnn_core.base.errors import ConfigError
from cnn_core.base.store import ModelStore, atomic_write
from cnn_core.data.datasets import DatasetInfo, prepare_data
from cnn_core.predict.embedding import feature_names, features

SCORE = "mahalanobis_energy_fisher"  # the layers' distances and the output's two scores, combined
DEFAULT_PASS_RATE = 0.99  # share of in-distribution validation images that must not be flagged
FIT_IMAGES = 10_000  # training images whose features the class Gaussians are fitted on
MIN_VALIDATION = 100
SUFFIX = ".detector.npz"

WHAT_IT_IS_NOT = {
    "mnist": "This does not look like a handwritten digit.",
    "fashion_mnist": "This does not look like any of the 10 Fashion-MNIST clothing items.",
    "cifar10": "This does not look like any of the 10 CIFAR-10 classes.",
}


OUTPUT_SCORES = ["energy", "top_probability"]  # after the layers' distances, in `Detector.distances`


@dataclass
class Detector:
    """Per feature layer (all of cnn_core.predict.embedding's features but the probabilities): the class means
    and the shared precision matrix; per layer and output score: the validation images' values (sorted),
    the reference their p-values are read against."""

    layers: list[str]
    means: list[np.ndarray]
    precisions: list[np.ndarray]
    reference: list[np.ndarray]
    threshold: float = -np.inf

    def distances(self, feats: list[np.ndarray]) -> np.ndarray:
        """(N, layers + 2), larger = stranger: each picture's squared Mahalanobis distance to its nearest
        class mean at every layer, then minus the logits' energy (log-sum-exp) and minus the top probability."""
        out = []
        for f, means, precision in zip(feats, self.means, self.precisions, strict=False):
            diff = np.asarray(f, np.float64)[:, None, :] - np.asarray(means)[None]  # (N, classes, D)
            out.append(np.einsum("ncd,ncd->nc", diff @ precision, diff).min(axis=1))  # one matmul, not a loop
        logits = np.asarray(feats[len(self.layers) - 1], np.float64)
        top = logits.max(axis=1)
        out.append(-(top + np.log(np.exp(logits - top[:, None]).sum(axis=1))))
        out.append(-np.asarray(feats[len(self.layers)], np.float64).max(axis=1))
        return np.stack(out, axis=1)

    def scores(self, feats: list[np.ndarray]) -> np.ndarray:
        """Typicality of each picture (≤ 0; lower = stranger): the sum over layers and scores of the log
        share of validation images at least as far out (Fisher's method). Beyond the farthest validation
        image the share is extrapolated along an exponential tail fitted to the farthest tenth, so a
        picture twice as far out still counts as stranger (an empirical share would stop at 1/(n+1))."""
        return self.scores_of(self.distances(feats))

    def scores_of(self, distances: np.ndarray) -> np.ndarray:
        """`scores` from distances already measured (`distances`' columns)."""
        return np.sum([_log_tail_share(ref, distances[:, j]) for j, ref in enumerate(self.reference)], axis=0)

    def set_reference(self, val_distances: np.ndarray, pass_rate: float) -> None:
        """Held-out pictures' distances become the reference, and the threshold lets `pass_rate` of them pass."""
        self.reference = [np.sort(val_distances[:, j]) for j in range(val_distances.shape[1])]
        self.threshold = float(np.quantile(self.scores_of(val_distances), 1 - pass_rate))

    def to_bytes(self) -> bytes:
        arrays = {"layers": np.array(self.layers), "threshold": np.float64(self.threshold)}
        for j in range(len(self.layers)):
            arrays |= {
                f"means{j}": self.means[j].astype(np.float32),
                f"precision{j}": self.precisions[j].astype(np.float32),
            }
        arrays |= {f"reference{j}": ref.astype(np.float32) for j, ref in enumerate(self.reference)}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Detector:
        with np.load(io.BytesIO(data)) as z:
            layers = [str(name) for name in z["layers"]]
            means, precisions = (
                [z[f"{kind}{j}"].astype(np.float64) for j in range(len(layers))] for kind in ("means", "precision")
            )
            reference = [z[f"reference{j}"].astype(np.float64) for j in range(len(layers) + len(OUTPUT_SCORES))]
            return cls(layers, means, precisions, reference, float(z["threshold"]))


def _log_tail_share(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """log P(a validation image is at least this far out), from the sorted `reference`."""
    n = len(reference)
    at_least_as_far = n - np.searchsorted(reference, values, side="left")
    logs = np.log((at_least_as_far + 1) / (n + 1))
    beyond = values > reference[-1]
    if beyond.any():
        q90 = reference[int(0.9 * (n - 1))]
        scale = max(float(np.mean(reference[reference > q90] - q90)) if (reference > q90).any() else 0.0, 1e-9)
        logs[beyond] = np.log(1 / (n + 1)) - (values[beyond] - reference[-1]) / scale
    return logs


def class_gaussians(f: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.covariance import LedoitWolf

    classes = np.unique(labels)
    means = np.stack([f[labels == c].mean(axis=0) for c in classes])
    centred = f - means[np.searchsorted(classes, labels)]
    return means, LedoitWolf().fit(centred).precision_


def fit_detector(model, info: DatasetInfo, x_fit, y_fit, x_val, pass_rate: float = DEFAULT_PASS_RATE) -> Detector:
    """Fit the class Gaussians on training images and set the threshold on validation images."""
    if not 0 < pass_rate < 1:
        raise ConfigError(f"The pass rate must be between 0 and 1 (got {pass_rate}).")
    if len(x_val) < MIN_VALIDATION:
        raise ConfigError(
            f"Calibrating needs at least {MIN_VALIDATION} validation images (got {len(x_val)}); "
            "train with --val-size 1000 or more."
        )
    detector = gaussians_detector(feature_names(model)[:-1], features(model, x_fit, info), y_fit)
    detector.set_reference(detector.distances(features(model, x_val, info)), pass_rate)
    return detector


def gaussians_detector(layers: list[str], fit_features: list[np.ndarray], labels: np.ndarray) -> Detector:
    """A detector with each layer's class Gaussians fitted (`fit_features`: one array per layer, the
    probabilities last, which get none); `set_reference` completes it."""
    fitted = [class_gaussians(np.asarray(f, np.float64), np.asarray(labels)) for f in fit_features[: len(layers)]]
    return Detector(list(layers), [m for m, _ in fitted], [p for _, p in fitted], [])


def calibrate(model, card: dict, data, pass_rate: float = DEFAULT_PASS_RATE, split=None) -> tuple[Detector, dict]:
    """The detector of a model and its card's "ood" entry, from the validation split the card's
    hyperparameters describe (rebuilt exactly as training built it, unless the caller passes that
    `split`) and up to FIT_IMAGES of the images it trained on."""
    config = card.get("hyperparameters") or {}
    if not config.get("val_size"):
        raise ConfigError(
            f"'{card.get('name', 'this model')}' was trained without a validation split, so there are "
            "no held-out training images to calibrate on (the test set only reports). "
            "Train with --val-size 5000."
        )
    split = split or prepare_data(config, data=data)[1]
    pick = np.random.default_rng(config["seed"]).permutation(len(split.x_train))[:FIT_IMAGES]
    detector = fit_detector(model, data.info, split.x_train[pick], split.y_train[pick], split.x_val, pass_rate)
    val_flagged = float(np.mean(typicality(model, detector, split.x_val, data.info) < detector.threshold))
    return detector, {
        "score": SCORE,
        "threshold": detector.threshold,
        "pass_rate": pass_rate,
        "layers": detector.layers + OUTPUT_SCORES,
        "fitted_on": f"{len(pick):,} training images",
        "calibrated_on": f"validation split ({len(split.x_val):,} training images held out, seed {config['seed']})",
        "val_flagged": val_flagged,
    }


def save_detector(store: ModelStore, name: str, detector: Detector):
    target = store.path(name, SUFFIX)
    data = detector.to_bytes()
    atomic_write(target, lambda tmp: tmp.write_bytes(data))
    return target


def load_detector(store: ModelStore, name: str, card: dict) -> Detector | None:
    """The model's detector when its card says it has one of this kind and the file is there."""
    ood = card.get("ood") or {}
    path = store.path(name, SUFFIX)
    if ood.get("score") != SCORE or not path.is_file():
        return None
    detector = Detector.from_bytes(path.read_bytes())
    detector.threshold = float(ood["threshold"])
    return detector


def typicality(model, detector: Detector, samples: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """The detector's score of each uint8 sample (lower = stranger)."""
    return detector.scores(features(model, samples, info))


def through_preprocessing(x: np.ndarray, dataset: str) -> np.ndarray:
    """Images of any dataset (uint8 arrays) as the model of `dataset` sees them, through the same
    preprocessing path a user's upload takes (e.g. MNIST digits turned into 32×32 colour)."""
    from PIL import Image

    from cnn_core.data.preprocess import preprocessor

    prep = preprocessor(dataset)
    return np.stack([prep.from_image(Image.fromarray(np.asarray(img, np.uint8))) for img in x])


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve for telling in- from off-distribution images by score (1 = perfect, 0.5 = chance)."""
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.ones(len(in_scores)), np.zeros(len(out_scores))]
    return float(roc_auc_score(labels, np.r_[in_scores, out_scores]))
