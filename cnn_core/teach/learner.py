"""Teach a shipped network classes of your own: transfer learning on its features, in seconds on a CPU.

Top to bottom, as `teach` runs it:

1. pictures → samples: each picture through the one preprocessing path of the backbone's dataset
   (`cnn_core.data.preprocess`), as an upload to the Photo or Draw page would go;
2. samples → views: each picture itself plus augmented copies, with the backbone's own training
   augmentation (`cnn_core.data.augment`), so a handful of pictures covers shifts and flips it will meet;
3. views → features, once: every convolutional stage's channel means and the last hidden layer of the frozen
   backbone, side by side (the earlier stages carry the textures and shapes that classes the backbone never
   saw are told apart by; its last layer alone is tuned to its own ten classes);
4. features → a head: standardisation, then one softmax layer with an L2 penalty (multinomial logistic
   regression), trained by Adam on the views; the whole network is then the backbone's graph with that head;
5. an honest estimate: below SPLIT_FROM pictures per class, k-fold cross-validation (every picture predicted
   once by a head that never saw it or its copies); from there, one stratified held-out split; the model kept
   is trained on every picture after the estimate;
6. "none of these classes": `cnn_core.predict.ood`'s detector over the same features, its threshold set on
   the held-out (out-of-fold) pictures, and its AUROC against CIFAR-10 test photos where that data is at hand.

Everything is bounded by a deadline (TEACH_RECIPE["deadline_seconds"]): a lesson is an interactive step, not
a training run. Figures: benchmarks/results/teach.md.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

import numpy as np

from cnn_core.base.errors import ConfigError, DataError
from cnn_core.data.datasets import DatasetInfo, dataset_info, load_dataset
from cnn_core.data.preprocess import INFERENCE_BATCH, load_image, preprocessor, to_model_input
from cnn_core.predict.embedding import classifier_layer, stage_layers
from cnn_core.predict.ood import Detector, auroc, gaussians_detector, through_preprocessing
from cnn_core.teach.pictures import PictureSet

# The recipe, in one place (airbench's style): what a lesson trains with.
TEACH_RECIPE = {
    "views": 8,  # per picture: itself and 7 augmented copies
    "epochs": 40,  # passes over the views; the head is convex, so this is to convergence, not a guess
    "batch_size": 128,
    "lr": 0.01,  # Adam
    "l2": 1e-3,  # on the head's weights
    "max_folds": 5,
    "split_from": 20,  # pictures in the smallest class from which one held-out split replaces k folds
    "held_out": 0.2,  # share of each class held out then
    "pass_rate": 0.95,  # held-out pictures the "none of these classes" warning must let through
    "foreign_photos": 500,  # CIFAR-10 test photos the warning is tried on (its AUROC on the card)
    "deadline_seconds": 15.0,  # from the click to the estimate; training stops early past it
    "seed": 0,
}
BACKBONE_DATASETS = ("cifar10", "mnist")  # photos; drawings and doodles


@dataclass
class Backbone:
    """A shipped network, frozen, and a model of it that outputs its features side by side."""

    name: str
    card: dict
    info: DatasetInfo
    model: object  # Keras, float32
    features: object  # Keras model: input → concatenated features (FEATURE_PARTS)
    parts: list[tuple[str, int]]  # (name, width) of each slice of the features, in order

    @property
    def augmentation(self) -> dict:
        return dict(self.card["hyperparameters"].get("augment") or {})


def default_backbone(dataset: str = "cifar10") -> str:
    """The network the Photo (cifar10) or Draw (mnist) page opens on: the best shipped one."""
    from cnn_core.studio.catalog import list_models, rank_for_choice

    rows = rank_for_choice(list_models(dataset))
    if not rows:
        raise ConfigError(f"No {dataset} model is available to learn from; train one first.")
    return rows[0]["name"]


@functools.lru_cache(maxsize=4)
def load_backbone(name: str) -> Backbone:
    from cnn_core.base.runtime import configure_threads
    from cnn_core.base.store import find_model
    from cnn_core.predict.inference import load_inference_model

    configure_threads()
    store = find_model(name)
    card = store.load_card(name)
    if card["dataset"] not in BACKBONE_DATASETS:
        raise ConfigError(f"Lessons learn from a {' or '.join(BACKBONE_DATASETS)} network; '{name}' is not one.")
    model = load_inference_model(store, name, "fp32")
    model.trainable = False
    hidden = classifier_layer(model).input
    parts = [(layer.name, int(layer.output.shape[-1])) for layer in stage_layers(model)]
    parts.append(("last_hidden", int(hidden.shape[-1])))
    return Backbone(name, card, dataset_info(card["dataset"]), model, features_model(model), parts)


def features_model(model):
    """A Keras model of `model`'s features side by side: every stage's channel means (`stage_layers`), then the
    classifier's input. Plain Keras: the downloaded script runs this very function."""
    import keras

    pooled = [
        keras.layers.GlobalAveragePooling2D(name=f"mean_{layer.name}")(layer.output) for layer in stage_layers(model)
    ]
    features = keras.layers.Concatenate(name="features")([*pooled, classifier_layer(model).input])
    return keras.Model(model.inputs, features, name="features")


def picture_samples(pictures: PictureSet, info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 samples as the backbone sees them, class indices), in the set's order."""
    prep = preprocessor(info.name)
    samples, labels = [], []
    for index, items in enumerate(pictures.classes.values()):
        for picture in items:
            samples.append(prep.from_image(load_image(picture.data, filename=picture.name)))
            labels.append(index)
    return np.stack(samples), np.asarray(labels)


def augmented_views(backbone: Backbone, samples: np.ndarray, views: int, seed: int) -> np.ndarray:
    """float32 (views, N, H, W, C): view 0 is the samples themselves, the rest the backbone's augmentation."""
    import keras

    from cnn_core.data.augment import build_augmenter

    x = to_model_input(samples, backbone.info)
    augmenter = build_augmenter(backbone.augmentation, seed=seed)
    copies = [x]
    for _ in range(views - 1):
        copies.append(x if augmenter is None else keras.ops.convert_to_numpy(augmenter(x, training=True)))
    return np.stack(copies)


def backbone_features(backbone: Backbone, x: np.ndarray) -> np.ndarray:
    """float32 (N, D): the concatenated features of model inputs `x`."""
    parts = [backbone.features.predict_on_batch(x[i : i + INFERENCE_BATCH]) for i in range(0, len(x), INFERENCE_BATCH)]
    return np.concatenate([np.asarray(p, np.float32) for p in parts]) if parts else np.zeros((0, 0), np.float32)


@dataclass
class Head:
    """Standardisation + one softmax layer over the backbone's features (Keras layers, trained)."""

    norm: object
    dense: object  # linear: its output is the logits, which the detector's energy score reads

    def logits(self, f: np.ndarray) -> np.ndarray:
        return np.asarray(self.dense(self.norm(f)), np.float32)

    def probabilities(self, f: np.ndarray) -> np.ndarray:
        logits = self.logits(f)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def standardised(self, f: np.ndarray) -> np.ndarray:
        return np.asarray(self.norm(f), np.float32)


@dataclass
class Clock:
    """The lesson's deadline: every phase asks it before another epoch."""

    seconds: float
    start: float = field(default_factory=time.perf_counter)
    hit: bool = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def over(self) -> bool:
        self.hit = self.hit or self.elapsed() > self.seconds
        return self.hit


def fit_head(f, y, classes: int, recipe: dict, after_epoch=None):
    """The head, trained: (its standardisation layer, its linear softmax layer), by Adam on minibatches of the
    views' features `f` (N, D) with labels `y`. `after_epoch(norm, dense, epoch)` is told after each pass
    and returns True to stop. Plain Keras and TensorFlow: the downloaded script runs this very function."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(recipe["seed"])
    norm = keras.layers.Normalization(mean=f.mean(axis=0), variance=f.var(axis=0) + 1e-6, name="standardise")
    dense = keras.layers.Dense(classes, name="taught_logits", kernel_regularizer=keras.regularizers.L2(recipe["l2"]))
    head = keras.Sequential([keras.Input((f.shape[1],)), norm, dense])
    optimizer = keras.optimizers.Adam(recipe["lr"])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, head(xb, training=True)) + tf.add_n(head.losses)
        weights = head.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))
        return loss

    rng, batch = np.random.default_rng(recipe["seed"]), recipe["batch_size"]
    for epoch in range(1, recipe["epochs"] + 1):
        order = rng.permutation(len(f))
        for i in range(0, len(f), batch):
            step(f[order[i : i + batch]], y[order[i : i + batch]])
        if after_epoch is not None and after_epoch(norm, dense, epoch):
            break
    return norm, dense


def train_head(f, y, classes: int, recipe: dict, clock: Clock, listener=None, phase="final", held_out=None) -> Head:
    """`fit_head` within the lesson's deadline; an "epoch" event per pass (loss, accuracy on the views, and the
    held-out pictures' accuracy when `held_out` = (features, labels) is given)."""

    def after_epoch(norm, dense, epoch: int) -> bool:
        if listener is not None:
            listener(_epoch_event(Head(norm, dense), f, y, epoch, phase, held_out))
        return clock.over()

    return Head(*fit_head(f, y, classes, recipe, after_epoch))


def _epoch_event(head: Head, f, y, epoch: int, phase: str, held_out) -> dict:
    probs = head.probabilities(f)
    event = {
        "type": "epoch",
        "phase": phase,
        "epoch": epoch,
        "loss": float(-np.mean(np.log(probs[np.arange(len(y)), y] + 1e-12))),
        "accuracy": float(np.mean(probs.argmax(axis=1) == y)),
    }
    if held_out is not None:
        event["held_out_accuracy"] = float(np.mean(head.probabilities(held_out[0]).argmax(axis=1) == held_out[1]))
    return event


# -- the honest estimate --------------------------------------------------------------------------


def held_out_splits(labels: np.ndarray, recipe: dict) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """(how the estimate is made, [(training pictures, held-out pictures)]): k stratified folds while the
    smallest class has fewer than `split_from` pictures (k = that count, at most `max_folds`), else one
    stratified held-out split."""
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

    smallest = int(np.bincount(labels).min())
    if smallest < recipe["split_from"]:
        k = min(recipe["max_folds"], smallest)
        splitter = StratifiedKFold(k, shuffle=True, random_state=recipe["seed"])
        return f"{k}-fold cross-validation", list(splitter.split(labels, labels))
    splitter = StratifiedShuffleSplit(1, test_size=recipe["held_out"], random_state=recipe["seed"])
    share = round(100 * recipe["held_out"])
    return f"held-out split ({share}% of each class)", list(splitter.split(labels, labels))


def detector_features(backbone: Backbone, head: Head, f: np.ndarray) -> list[np.ndarray]:
    """What the "none of these classes" detector compares (cnn_core.predict.ood's layout: feature layers, the
    logits, the probabilities): each slice of the backbone's features (every stage's channel means, its last
    hidden layer), then the head's logits and probabilities. Not the head's standardised input: it is those
    slices side by side, and its Gaussian (1,400 dimensions and more) would take seconds to fit."""
    widths = np.cumsum([0] + [width for _, width in backbone.parts])
    slices = [f[:, widths[i] : widths[i + 1]] for i in range(len(backbone.parts))]
    return [*slices, head.logits(f), head.probabilities(f)]


def detector_layers(backbone: Backbone) -> list[str]:
    return [name for name, _ in backbone.parts] + ["logits"]


def _views_of(features: np.ndarray, pictures: np.ndarray) -> np.ndarray:
    """(views, N, D) features → the rows of every view of `pictures`, flattened."""
    return features[:, pictures].reshape(-1, features.shape[-1])


def _labels_of(labels: np.ndarray, pictures: np.ndarray, views: int) -> np.ndarray:
    return np.tile(labels[pictures], views)


@dataclass
class Estimate:
    method: str
    probabilities: np.ndarray  # each picture's, from a head that never saw it (NaN where it trained in every fold)
    distances: np.ndarray  # the held-out pictures' detector distances (every view), from the same heads
    predicted: np.ndarray  # which pictures these are (all of them for k folds)


def estimate(backbone, features, labels, classes, recipe, clock, listener=None) -> Estimate:
    """Train a head per fold (or the one split) and predict the pictures it held out, from their own view."""
    method, splits = held_out_splits(labels, recipe)
    views = features.shape[0]
    probabilities = np.full((len(labels), classes), np.nan, np.float32)
    distances = []
    for number, (train, held) in enumerate(splits, start=1):
        phase = f"fold {number} of {len(splits)}" if len(splits) > 1 else "held-out split"
        if listener is not None:
            listener({"type": "phase", "phase": phase})
        f_train = _views_of(features, train)
        y_train = _labels_of(labels, train, views)
        head = train_head(f_train, y_train, classes, recipe, clock, listener, phase, (features[0, held], labels[held]))
        probabilities[held] = head.probabilities(features[0, held])
        detector = gaussians_detector(detector_layers(backbone), detector_features(backbone, head, f_train), y_train)
        # Every view of a held-out picture is a picture the head never saw: a reference views-times larger
        # than the pictures alone, varied the way new pictures vary.
        distances.append(detector.distances(detector_features(backbone, head, _views_of(features, held))))
    predicted = np.concatenate([held for _, held in splits])
    return Estimate(method, probabilities, np.concatenate(distances), predicted)


# -- the lesson, top to bottom ------------------------------------------------------------------------


@dataclass
class Taught:
    """A taught classifier: the frozen backbone, the trained head, its "none of these classes" detector and its
    card (classes, recipe, estimate, data fingerprint, time, machine)."""

    backbone: Backbone
    head: Head
    detector: Detector
    card: dict

    @property
    def class_names(self) -> list[str]:
        return list(self.card["class_names"])

    @property
    def info(self) -> DatasetInfo:
        """The backbone's dataset with the lesson's classes: how a picture is prepared, what the answers are."""
        from dataclasses import replace

        return replace(self.backbone.info, title="your classes", class_names=tuple(self.class_names))

    def sample(self, picture_bytes: bytes, file_name: str | None = None) -> np.ndarray:
        """A picture file as the network sees it (the backbone dataset's preprocessing)."""
        return preprocessor(self.backbone.info.name).from_image(load_image(picture_bytes, filename=file_name))

    def classify(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, classes), whether each looks like none of the classes) for uint8 samples."""
        f = backbone_features(self.backbone, to_model_input(samples, self.backbone.info))
        feats = detector_features(self.backbone, self.head, f)
        return feats[-1], self.detector.scores(feats) < self.detector.threshold

    def keras_model(self):
        """The whole network as one Keras model (backbone graph → features → head), for Grad-CAM and saving."""
        import keras

        logits = self.head.dense(self.head.norm(self.backbone.features.output))
        probabilities = keras.layers.Softmax(name="probabilities")(logits)
        return keras.Model(self.backbone.model.inputs, probabilities, name="taught")


@functools.lru_cache(maxsize=4)
def foreign_photo_features(backbone_name: str, count: int) -> np.ndarray | None:
    """The backbone's features of `count` CIFAR-10 test photos (a seeded draw), through the backbone dataset's
    preprocessing; None when CIFAR-10 is not in the local data folder (a lesson never downloads 170 MB)."""
    try:
        photos = load_dataset("cifar10", allow_download=False).x_test
    except DataError:
        return None
    backbone = load_backbone(backbone_name)
    pick = np.sort(np.random.default_rng(0).choice(len(photos), min(count, len(photos)), replace=False))
    samples = through_preprocessing(photos[pick], backbone.info.name)
    return backbone_features(backbone, to_model_input(samples, backbone.info))


def warm_up(backbone_name: str, recipe: dict | None = None) -> None:
    """Load what a lesson on `backbone_name` needs before the first one (the backbone, the warning's photos'
    features), so the click to train pays only for the training."""
    load_backbone(backbone_name)
    foreign_photo_features(backbone_name, {**TEACH_RECIPE, **(recipe or {})}["foreign_photos"])


def teach(pictures: PictureSet, backbone_name: str | None = None, recipe: dict | None = None, listener=None) -> Taught:
    """Train a classifier of `pictures`' classes on a shipped network's features; `listener` gets "phase" and
    "epoch" events as it goes (the page's live curves)."""
    pictures.check_trainable()
    recipe = {**TEACH_RECIPE, **(recipe or {})}
    clock = Clock(recipe["deadline_seconds"])
    backbone = load_backbone(backbone_name or default_backbone())
    _tell(listener, "preparing the pictures")
    samples, labels = picture_samples(pictures, backbone.info)
    x_views = augmented_views(backbone, samples, recipe["views"], recipe["seed"])
    features = backbone_features(backbone, x_views.reshape(-1, *x_views.shape[2:]))
    features = features.reshape(recipe["views"], len(labels), -1)
    classes = len(pictures.classes)
    held = estimate(backbone, features, labels, classes, recipe, clock, listener)
    _tell(listener, "the final model, on every picture")
    everyone = np.arange(len(labels))
    f_all, y_all = _views_of(features, everyone), _labels_of(labels, everyone, recipe["views"])
    head = train_head(f_all, y_all, classes, recipe, clock, listener, "final")
    detector = gaussians_detector(detector_layers(backbone), detector_features(backbone, head, f_all), y_all)
    detector.set_reference(held.distances, recipe["pass_rate"])
    card = lesson_card(pictures, backbone, recipe, labels, held, clock)
    card["none_of_these"] |= foreign_check(backbone, head, detector, held, recipe)
    card["seconds"] = round(clock.elapsed(), 2)
    return Taught(backbone, head, detector, card)


def foreign_check(backbone: Backbone, head: Head, detector: Detector, held: Estimate, recipe: dict) -> dict:
    """How well the warning tells CIFAR-10 test photos from the held-out pictures: AUROC and the share flagged."""
    foreign = foreign_photo_features(backbone.name, recipe["foreign_photos"])
    if foreign is None:
        return {"foreign_photos": 0, "auroc": None, "foreign_flagged": None}
    scores = detector.scores(detector_features(backbone, head, foreign))
    return {
        "foreign_photos": len(foreign),
        "auroc": auroc(detector.scores_of(held.distances), scores),
        "foreign_flagged": float(np.mean(scores < detector.threshold)),
    }


def lesson_card(pictures: PictureSet, backbone: Backbone, recipe: dict, labels, held: Estimate, clock: Clock) -> dict:
    """What was taught, how, how well (on held-out pictures) and where: the taught model's card."""
    from cnn_core.base.runtime import library_versions, machine_info, now_iso

    predicted = held.predicted
    right = held.probabilities[predicted].argmax(axis=1) == labels[predicted]
    names = pictures.class_names
    per_class = {name: float(np.mean(right[labels[predicted] == i])) for i, name in enumerate(names)}
    return {
        "kind": "taught",
        "class_names": names,
        "pictures": pictures.counts(),
        "pictures_sha256": pictures.fingerprint(),
        "backbone": backbone.name,
        "backbone_dataset": backbone.info.name,
        "backbone_accuracy": backbone.card.get("test_accuracy"),
        "augmentation": backbone.augmentation,
        "recipe": recipe,
        "estimate": {"method": held.method, "accuracy": float(np.mean(right)), "pictures": len(predicted)},
        "per_class_accuracy": per_class,
        "none_of_these": {"pass_rate": recipe["pass_rate"], "calibrated_on": f"the held-out pictures ({held.method})"},
        "deadline_hit": clock.hit,
        "machine": machine_info(),
        "versions": library_versions(),
        "created": now_iso(),
    }


def _tell(listener, phase: str) -> None:
    if listener is not None:
        listener({"type": "phase", "phase": phase})
