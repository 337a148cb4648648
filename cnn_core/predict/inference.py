"""Predictions: the one function the CLI, the app, evaluation and benchmarks call."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cnn_core.base.store import ModelStore, find_model
from cnn_core.data.datasets import DatasetInfo, dataset_info
from cnn_core.data.preprocess import INFERENCE_BATCH, Preprocessor, load_image, preprocessor
from cnn_core.predict.calibration import with_temperature
from cnn_core.predict.ood import load_detector, typicality


def _forward(model, x: np.ndarray) -> np.ndarray:
    """Probabilities for one batch from a Keras model or a LiteModel (cnn_core.predict.lite)."""
    # predict_on_batch runs one compiled call, without predict()'s per-call setup: far faster than
    # eager model(x) for one image.
    return np.asarray(model.predict_on_batch(x))


# Test-time augmentation levels, as airbench numbers them: 0 none; 1 the image and its mirror
# image; 2 those plus both shifted one pixel up-left and down-right (reflect-padded), the shifted
# four weighing as much as the unshifted two. Cards written before level 2 say true/false (= 1/0).
# A digit's mirror image is no digit (flip TTA lowers MNIST models' accuracy), so for
# datasets that are not `mirrorable` the levels add shifts instead: 1 the image and its four
# one-pixel shifts (up, down, left, right), 2 all nine positions of its 3×3 neighbourhood, weighed
# alike (each level's test accuracy: benchmarks/results/tta_ensembles.md).
TTA_LEVELS = {0: "off", 1: "flip", 2: "flip + 1-px shifts"}
TTA_PASSES = {0: 1, 1: 2, 2: 6}  # forward passes per image at each level
SHIFT_TTA_LEVELS = {0: "off", 1: "1-px shifts", 2: "1-px shifts and diagonals"}
SHIFT_TTA_PASSES = {0: 1, 1: 5, 2: 9}
SHIFT_TTA_OFFSETS = {
    1: ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)),
    2: tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)),
}


def tta_level(value) -> int:
    """A recipe's or card's `tta` (false/true or 0/1/2) as its level."""
    from cnn_core.base.errors import ConfigError

    if value is None:
        return 0
    if isinstance(value, (bool, int, np.integer)) and int(value) in TTA_LEVELS:
        return int(value)
    raise ConfigError(f"Test-time augmentation must be true/false or a level 0, 1 or 2 (got {value!r}).")


def tta_levels(info: DatasetInfo | str) -> dict[int, str]:
    """{level: what it averages over} for a dataset's pictures."""
    info = dataset_info(info) if isinstance(info, str) else info
    return TTA_LEVELS if info.mirrorable else SHIFT_TTA_LEVELS


def tta_passes(level, info: DatasetInfo | str) -> int:
    """Forward passes per image at a TTA level for a dataset's pictures."""
    info = dataset_info(info) if isinstance(info, str) else info
    return (TTA_PASSES if info.mirrorable else SHIFT_TTA_PASSES)[tta_level(level)]


def tta_label(value, info: DatasetInfo | str) -> str:
    """How a TTA setting reads on a page, e.g. 'off', 'flip + 1-px shifts' or '1-px shifts'."""
    return tta_levels(info)[tta_level(value)]


def _mirror_mean(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    mirrored = x[:, :, ::-1, :]
    if 2 * len(x) <= batch_size:  # a picture and its mirror image in one call, not two
        both = _forward(model, np.concatenate([x, mirrored]))
        return (both[: len(x)] + both[len(x) :]) / 2.0
    return (_forward(model, x) + _forward(model, mirrored)) / 2.0


def _shift_mean(model, x: np.ndarray, level: int, batch_size: int) -> np.ndarray:
    """The mean prediction over `x` moved by each of the level's one-pixel offsets. Zero-padded:
    the digits' background is black."""
    height, width = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    views = [padded[:, 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for dy, dx in SHIFT_TTA_OFFSETS[level]]
    if len(views) * len(x) <= batch_size:  # a drawing's views in one call
        return _forward(model, np.concatenate(views)).reshape(len(views), len(x), -1).mean(axis=0)
    return np.mean([_forward(model, np.ascontiguousarray(view)) for view in views], axis=0)


def predict_proba(
    model, x_uint8: np.ndarray, info: DatasetInfo, tta: bool | int = False, batch_size: int = INFERENCE_BATCH
) -> np.ndarray:
    """Class probabilities for a batch of uint8 samples shaped like the dataset's images.

    `tta` (see TTA_LEVELS): 1 averages predictions on the image and its mirror image
    (horizontal-flip test-time augmentation, for datasets trained with flips); 2 adds
    the 1-pixel shifts of both, for nets trained on shifted crops (airbench's multi-crop).
    For datasets whose mirror images are not their classes (digits) the levels average over
    one-pixel shifts alone (SHIFT_TTA_LEVELS).
    Samples become float32 one batch at a time: a whole test set at once (and its mirror
    image) would be the peak of a training run's memory, ≈ 250 MB of float32 for CIFAR-10.
    """
    level = tta_level(tta)
    if len(x_uint8) > batch_size:
        return np.concatenate(
            [
                predict_proba(model, x_uint8[i : i + batch_size], info, level, batch_size)
                for i in range(0, len(x_uint8), batch_size)
            ]
        )
    x = Preprocessor(info).to_model_input(x_uint8)
    if level == 0:
        return _forward(model, x)
    if not info.mirrorable:
        return _shift_mean(model, x, level, batch_size)
    unshifted = _mirror_mean(model, x, batch_size)
    if level == 1:
        return unshifted
    height, width = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    shifted = [
        _mirror_mean(model, np.ascontiguousarray(padded[:, dy : dy + height, dx : dx + width]), batch_size)
        for dy, dx in ((0, 0), (2, 2))
    ]
    return 0.5 * unshifted + 0.25 * (shifted[0] + shifted[1])


LOW_CONFIDENCE = 0.6  # below this top-class probability the model counts as unsure


def is_unsure(probs: np.ndarray) -> bool:
    """True when one prediction's top class has too little probability to be taken at its word."""
    return bool(np.max(probs) < LOW_CONFIDENCE)


def top_k(probs: np.ndarray, class_names, k: int = 3) -> list[tuple[str, float]]:
    """[(class name, probability)] for the k most likely classes of one prediction."""
    order = np.argsort(probs)[::-1][:k]
    return [(class_names[i], float(probs[i])) for i in order]


@dataclass
class Predictor:
    """A loaded model (or a small ensemble of models for one dataset, averaged) plus everything
    needed to classify a picture the way it was trained."""

    name: str
    model: object  # the Keras model; None when predictions come from the committed LiteRT file alone
    card: dict
    info: DatasetInfo
    tta: int  # the TTA level (TTA_LEVELS)
    extra_models: tuple = ()  # further ensemble members; their probabilities are averaged with model's
    precision: str = "fp32"  # what the network computes in here (cnn_core.nets.precision)
    runners: tuple = ()  # what each member's predictions run through (LiteModels); empty: the Keras models
    runtime: str = "keras"  # "litert" when predictions run through LiteRT (cnn_core.predict.lite)
    detector: object = None  # the first model's out-of-distribution detector (cnn_core.predict.ood), if it has one
    temperature: float | None = (
        None  # temperature scaling of a single model at its card's TTA (cnn_core.predict.calibration)
    )

    @property
    def preprocessor(self) -> Preprocessor:
        return preprocessor(self.info.name)

    @property
    def members(self) -> tuple:
        return (self.model, *self.extra_models)

    def predict_samples(self, samples: np.ndarray) -> np.ndarray:
        probs = [predict_proba(m, samples, self.info, tta=self.tta) for m in self.runners or self.members]
        if len(probs) > 1:
            return np.mean(probs, axis=0)
        calibrated = self.temperature and self.tta == tta_level((self.card.get("calibration") or {}).get("tta"))
        return with_temperature(probs[0], self.temperature) if calibrated else probs[0]

    def sample_from_image(self, img) -> np.ndarray:
        return self.preprocessor.from_image(img)

    def predict_image(self, img) -> tuple[np.ndarray, np.ndarray]:
        """(the sample the network sees, its class probabilities) for a PIL image or array."""
        sample = self.sample_from_image(img)
        return sample, self.predict_samples(sample[None])[0]

    def predict_file(self, data) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_image(load_image(data))

    def looks_foreign(self, samples: np.ndarray) -> np.ndarray | None:
        """For each sample, whether it looks like none of the classes (cnn_core.predict.ood); None when the
        model has no detector. An ensemble asks its first model, whose card it carries."""
        if self.detector is None:
            return None
        features_from = self.runners[0] if self.runners and getattr(self.runners[0], "has_features", False) else None
        return typicality(features_from or self.model, self.detector, samples, self.info) < self.detector.threshold


def load_inference_model(store: ModelStore, name: str, precision: str | None = None):
    """A saved model ready to predict on this CPU: computing in `precision` ('fp32' or 'bf16'),
    by default float32 whatever it was trained in (see cnn_core.nets.precision for why)."""
    from cnn_core.nets.precision import INFERENCE_PRECISION, with_precision

    return with_precision(store.load_model(name), precision or INFERENCE_PRECISION)


RUNTIMES = ("litert", "keras")


def load_predictor(
    name: str,
    store: ModelStore | None = None,
    tta: bool | int | None = None,
    precision: str | None = None,
    runtime: str | None = None,
    calibrated: bool = False,
    keras: bool = True,
) -> Predictor:
    """Load a saved model; `tta` None follows its card, `precision` None is the inference default.
    `calibrated` applies the card's temperature scaling, if any, to its probabilities (what the app and
    `predict` show; evaluations and benchmarks measure the network as trained).

    `runtime` "litert" (the default where it is installed: the fastest, see cnn_core.predict.lite) runs
    float32 predictions through LiteRT: the model's committed LiteRT file where it has a fresh one, else a
    conversion made here; "keras" (and any bfloat16 model) through Keras. `keras` False serves a model that
    has a fresh committed file from that file alone (`model` None), without loading TensorFlow."""
    from cnn_core.base.errors import ConfigError
    from cnn_core.predict.lite import committed_lite_model

    if runtime not in (None, *RUNTIMES):
        raise ConfigError(f"Unknown runtime '{runtime}'. Choose one of: {', '.join(RUNTIMES)}.")
    store = store or find_model(name)
    card = store.load_card(name)
    float32 = precision in (None, "fp32")  # a committed file computes in float32, the inference default
    committed = committed_lite_model(store, name, card) if runtime != "keras" and float32 else None
    model, computes_in = (None, "fp32") if committed is not None and not keras else _keras_model(store, name, precision)
    lite = committed if computes_in == "fp32" else None
    if lite is None and runtime != "keras" and computes_in == "fp32":
        from cnn_core.predict.lite import lite_model

        lite = lite_model(model)
    if runtime == "litert" and lite is None:
        raise ConfigError("LiteRT cannot serve this model here: it needs the ai-edge-litert package and float32.")
    return Predictor(
        name,
        model,
        card,
        dataset_info(card["dataset"]),
        tta_level(card.get("tta") if tta is None else tta),
        precision=computes_in,
        runners=(lite,) if lite is not None else (),
        runtime="litert" if lite is not None else "keras",
        detector=load_detector(store, name, card),
        temperature=(card.get("calibration") or {}).get("temperature") if calibrated else None,
    )


def _keras_model(store: ModelStore, name: str, precision: str | None):
    """(the saved Keras model ready to predict, the precision it computes in)."""
    from cnn_core.base.runtime import configure_threads
    from cnn_core.nets.precision import model_precision

    configure_threads()
    model = load_inference_model(store, name, precision)
    return model, model_precision(model)


def ensemble_of(members: list[Predictor], tta: bool | int | None = None) -> Predictor:
    """Loaded models of one dataset as one Predictor whose probabilities are averaged (the first
    member's card and Keras model stand for the whole); `tta` None keeps the first member's."""
    from cnn_core.base.errors import ModelStoreError

    datasets = {m.info.name for m in members}
    if len(datasets) > 1:
        raise ModelStoreError(f"An ensemble needs models of one dataset; got {', '.join(sorted(datasets))}.")
    first = members[0]
    tta = first.tta if tta is None else tta_level(tta)
    if len(members) == 1:
        return first if tta == first.tta else replace(first, tta=tta)
    return replace(
        first,
        name="+".join(m.name for m in members),
        tta=tta,
        extra_models=tuple(m.model for m in members[1:]),
        runners=tuple(m.runners[0] if m.runners else m.model for m in members),
        runtime="+".join(sorted({m.runtime for m in members})),
    )


def load_ensemble(names: list[str], tta: bool | int | None = None, load=None) -> Predictor:
    """Several saved models of one dataset whose probabilities are averaged. `load` (a name →
    Predictor function, default `load_predictor`) lets the app pass its cached loader."""
    return ensemble_of([(load or load_predictor)(n) for n in names], tta)
