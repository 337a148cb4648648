"""Predictions through LiteRT (TensorFlow Lite's runtime, package `ai-edge-litert`).

The app classifies one drawing or photo at a time, where Keras' per-call overhead dominates:
LiteRT's XNNPACK kernels predict a single image faster than Keras, with probabilities within
1e-6 of Keras' (benchmarks/results/inference.md has the figures per CPU). So a loaded model is
converted once, in memory, to a float32 LiteRT flatbuffer, and predictions run through that;
the Keras model stays for training, Grad-CAM and feature maps. Where LiteRT is not installed
(no wheel for the platform) or a conversion fails, predictions stay on Keras.

A shipped model also has its LiteRT file committed beside it (NAME.tflite, written by
`python -m cnn_core litert`): its outputs are every feature of cnn_core.predict.embedding, the
probabilities last, so one file serves the predictions and the out-of-distribution detector without
TensorFlow, and no process converts the model again. The card's "litert" entry names the .keras file's
SHA-256 it was made from; a file that no longer matches is stale and not used.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import logging
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def litert_available() -> bool:
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def to_flatbuffer(model) -> bytes:
    """A Keras model as a float32 LiteRT flatbuffer (the converter's chatter kept off stdout,
    where `predict --json` writes)."""
    import tensorflow as tf

    with contextlib.redirect_stdout(io.StringIO()):
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


LITERT_SUFFIX = ".tflite"
# The most a committed file's outputs may differ from its Keras model's, on the same float32 input.
LITERT_TOLERANCE = 1e-5


class LiteModel:
    """A LiteRT interpreter with Keras' `predict_on_batch` contract: a float32 batch in,
    class probabilities out, any batch size. One interpreter is not safe to call from two
    threads (Streamlit serves each visitor in a thread), hence the lock. A features file
    (`output_order` given: the interpreter's output index of each feature, in
    cnn_core.predict.embedding's order) also answers `features_on_batch`."""

    def __init__(self, flatbuffer: bytes, threads: int, output_order: list[int] | None = None):
        from ai_edge_litert.interpreter import Interpreter

        from cnn_core.base.runtime import native_stderr_captured

        with native_stderr_captured():  # LiteRT announces its XNNPACK delegate on fd 2
            self._interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._every = [detail["index"] for detail in self._interpreter.get_output_details()]
        self._outputs = [self._every[i] for i in output_order] if output_order is not None else self._every[:1]
        self.has_features = output_order is not None
        self._batch = None
        self._lock = threading.Lock()
        self._recent: collections.OrderedDict[bytes, list[np.ndarray]] = collections.OrderedDict()

    RECENT_ROWS = 32  # inputs whose outputs are kept: a prediction's views, then its detector asks again

    def _run(self, x: np.ndarray, outputs: list[int]) -> list[np.ndarray]:
        """The outputs at `outputs` for batch `x`. Every output of each row is kept for the last RECENT_ROWS
        rows: a picture's prediction and the "none of these classes" check need the same forward pass (the
        check, its features; the prediction, its probabilities), and a pass costs milliseconds, a lookup
        microseconds. The same input always gives the same outputs."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in x]
        with self._lock:
            if not all(key in self._recent for key in keys):
                self._invoke(x, keys)
            rows = [self._recent[key] for key in keys]
        return [np.stack([row[self._every.index(index)] for row in rows]) for index in outputs]

    def _invoke(self, x: np.ndarray, keys: list[bytes]) -> None:
        if x.shape[0] != self._batch:  # re-plan only when the batch size changes
            self._interpreter.resize_tensor_input(self._input, x.shape)
            self._interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self._interpreter.set_tensor(self._input, x)
        self._interpreter.invoke()
        every = [self._interpreter.get_tensor(index) for index in self._every]
        for i, key in enumerate(keys):
            self._recent[key] = [output[i].copy() for output in every]
            self._recent.move_to_end(key)
        while len(self._recent) > max(self.RECENT_ROWS, len(keys)):
            self._recent.popitem(last=False)

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        """The class probabilities (a features file's last output)."""
        return self._run(x, self._outputs[-1:])[0]

    def features_on_batch(self, x: np.ndarray) -> list[np.ndarray]:
        """Every feature of cnn_core.predict.embedding.feature_names, in order (a features file only)."""
        if not self.has_features:
            raise ValueError("this LiteRT model has only the probabilities; features need its committed file")
        return self._run(x, self._outputs)


def lite_model(model) -> LiteModel | None:
    """The float32 Keras `model` as a LiteModel, or None where LiteRT cannot serve it here."""
    from cnn_core.base.runtime import cpu_quota

    if not litert_available():
        return None
    try:
        return LiteModel(to_flatbuffer(model), threads=cpu_quota())
    except Exception as err:  # noqa: BLE001 - the LiteRT converter raises many types; Keras still serves the model
        log.warning("LiteRT conversion of %s failed, predicting with Keras instead: %s", model.name, err)
        return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def committed_lite_model(store, name: str, card: dict) -> LiteModel | None:
    """The model's committed LiteRT features file (see the module's docstring), or None where there is none,
    LiteRT is not installed, or the file is stale (made from another .keras file than the one beside it)."""
    from cnn_core.base.runtime import cpu_quota

    entry = card.get("litert")
    path = store.path(name, LITERT_SUFFIX)
    if not entry or not path.is_file() or not litert_available():
        return None
    if file_sha256(store.model_path(name)) != entry["keras_sha256"]:
        log.warning("%s is stale (made from another %s): not used", path.name, store.model_path(name).name)
        return None
    return LiteModel(path.read_bytes(), threads=cpu_quota(), output_order=entry["output_order"])


def _output_order(expected: list[np.ndarray], outputs: list[np.ndarray]) -> list[int]:
    """For each Keras output, the index of the LiteRT output that computes it (the converter does not keep
    their order): the one of the same shape nearest in value."""
    order = []
    for want in expected:
        candidates = [i for i, got in enumerate(outputs) if got.shape == want.shape and i not in order]
        order.append(min(candidates, key=lambda i: float(np.abs(outputs[i] - want).max())))
    return order


def write_litert_file(store, name: str, model, samples: np.ndarray) -> dict:
    """Write the LiteRT features file of `model` (the saved model `name`, float32 as it is served:
    cnn_core.predict.inference.load_inference_model) beside it, and its card's "litert" entry; returns the
    entry. `samples` (uint8, shaped like the dataset's images) tell the converter's outputs apart."""
    from cnn_core.base.runtime import cpu_quota
    from cnn_core.base.store import atomic_write
    from cnn_core.data.datasets import dataset_info
    from cnn_core.data.preprocess import Preprocessor
    from cnn_core.predict.embedding import feature_model, feature_names

    card = store.load_card(name)
    keras_features = feature_model(model)
    flatbuffer = to_flatbuffer(keras_features)
    x = Preprocessor(dataset_info(card["dataset"])).to_model_input(samples)
    expected = [np.asarray(out, np.float32) for out in keras_features(x, training=False)]
    raw = LiteModel(flatbuffer, threads=cpu_quota())
    outputs = raw._run(x, [d["index"] for d in raw._interpreter.get_output_details()])
    entry = {
        "file": store.path(name, LITERT_SUFFIX).name,
        "keras_sha256": file_sha256(store.model_path(name)),
        "features": feature_names(model),
        "output_order": _output_order(expected, outputs),
    }
    atomic_write(store.path(name, LITERT_SUFFIX), lambda tmp: tmp.write_bytes(flatbuffer))
    store.save_json(name, ".json", {**card, "litert": entry})
    return entry
