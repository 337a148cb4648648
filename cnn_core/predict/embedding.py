"""What a network's hidden layers make of images: the features that the out-of-distribution
detector (cnn_core.predict.ood) and the nearest-training-images view (cnn_core.analysis.neighbours) compare.

Each convolutional stage's activations are averaged over the image (one number per channel: which
patterns it found, not where), the classifier's input is taken as it is (the "last hidden layer",
the network's own summary of the picture), then the classifier's output (the logits; the probabilities
themselves where the classifier has its softmax built in) and the model's probabilities.
"""

from __future__ import annotations

import functools

import numpy as np

from cnn_core.data.datasets import DatasetInfo
from cnn_core.data.preprocess import INFERENCE_BATCH, Preprocessor

BATCH = INFERENCE_BATCH
LAST_HIDDEN = "last_hidden"
LOGITS = "logits"
PROBABILITIES = "probabilities"


def classifier_layer(model):
    """The last Dense layer: its input is the last hidden layer, its output the logits."""
    import keras

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(f"{model.name} has no Dense classifier layer to read features before.")
    return dense[-1]


def stage_layers(model) -> list:
    """Every nonlinearity with an image-shaped output (N, H, W, C), in network order: the output of each
    convolutional stage. Activation layers, or convolutions with their activation built in (the
    original notebook's `Conv2D(..., activation="relu")`)."""
    import keras

    kinds = (keras.layers.ReLU, keras.layers.Activation, keras.layers.LeakyReLU, keras.layers.ELU)
    convs = (keras.layers.Conv2D, keras.layers.SeparableConv2D)

    def nonlinear(layer):
        return isinstance(layer, kinds) or (isinstance(layer, convs) and layer.activation.__name__ != "linear")

    return [layer for layer in model.layers if nonlinear(layer) and len(layer.output.shape) == 4]


def feature_names(model) -> list[str]:
    """The names of what `features` returns, in order."""
    return [layer.name for layer in stage_layers(model)] + [LAST_HIDDEN, LOGITS, PROBABILITIES]


@functools.lru_cache(maxsize=16)
def _feature_model(model, last_hidden_only: bool):
    import keras

    dense = classifier_layer(model)
    if last_hidden_only:
        return keras.Model(model.inputs, dense.input)
    pooled = [keras.layers.GlobalAveragePooling2D()(layer.output) for layer in stage_layers(model)]
    return keras.Model(model.inputs, [*pooled, dense.input, dense.output, model.output])


def feature_model(model):
    """A Keras model of `model` whose outputs are every feature of `feature_names`, in order."""
    return _feature_model(model, False)


def features(model, samples: np.ndarray, info: DatasetInfo) -> list[np.ndarray]:
    """Every feature of `feature_names` for a batch of uint8 samples: a float32 (N, D) array each. `model`: a
    Keras model, or a LiteRT features file (cnn_core.predict.lite) that computes the same without TensorFlow."""
    run = model.features_on_batch if getattr(model, "has_features", False) else feature_model(model).predict_on_batch
    prep = Preprocessor(info)
    parts = [
        [np.asarray(out, np.float32) for out in run(prep.to_model_input(samples[i : i + BATCH]))]
        for i in range(0, len(samples), BATCH)
    ]
    return [np.concatenate([part[j] for part in parts]) for j in range(len(parts[0]))]


def last_hidden(model, samples: np.ndarray, info: DatasetInfo, progress=None) -> np.ndarray:
    """The last hidden layer's values (float32 (N, D)) for a batch of uint8 samples; `progress`
    (a function of the fraction done) is told after each batch."""
    feature_model = _feature_model(model, True)
    prep = Preprocessor(info)
    parts = []
    for i in range(0, len(samples), BATCH):
        parts.append(
            np.asarray(feature_model.predict_on_batch(prep.to_model_input(samples[i : i + BATCH])), np.float32)
        )
        if progress:
            progress(min(1.0, (i + BATCH) / len(samples)))
    return np.concatenate(parts)
