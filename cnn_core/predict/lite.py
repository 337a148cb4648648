"""Predictions through LiteRT (TensorFlow Lite's runtime, package `ai-edge-litert`).

The app classifies one drawing or photo at a time, where Keras' per-call overhead dominates:
LiteRT's XNNPACK kernels predict a single image faster than Keras, with probabilities within
1e-6 of Keras' (benchmarks/results/inference.md has the figures per CPU). So a loaded model is
converted once, in memory, to a float32 LiteRT flatbuffer, and predictions run through that;
the Keras model stays for training, Grad-CAM and feature maps. Where LiteRT is not installed
(no wheel for the platform) or a conversion fails, predictions stay on Keras.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading

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


class LiteModel:
    """A LiteRT interpreter with Keras' `predict_on_batch` contract: a float32 batch in,
    class probabilities out, any batch size. One interpreter is not safe to call from two
    threads (Streamlit serves each visitor in a thread), hence the lock."""

    def __init__(self, flatbuffer: bytes, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        from cnn_core.base.runtime import native_stderr_captured

        with native_stderr_captured():  # LiteRT announces its XNNPACK delegate on fd 2
            self._interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = None
        self._lock = threading.Lock()

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        with self._lock:
            if x.shape[0] != self._batch:  # re-plan only when the batch size changes
                self._interpreter.resize_tensor_input(self._input, x.shape)
                self._interpreter.allocate_tensors()
                self._batch = x.shape[0]
            self._interpreter.set_tensor(self._input, x)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output).copy()


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
