"""Architectures as data, and the one builder that turns a spec into a Keras model.

A spec is a list of `(layer_kind, options)` steps. `build_model` walks the list;
`ARCHITECTURES` names the specs per input kind. Every model takes raw pixel
values (0..255, float32, shape H×W×C) and returns class probabilities, so one
preprocessing path (`cnn_core.preprocess`) feeds every model.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from .datasets import DatasetInfo, dataset_info
from .errors import ConfigError

Spec = list[tuple[str, dict]]


def seed_spec(filters: tuple[int, ...], padding: str, dense_units: int) -> Spec:
    """The original notebook's network: [Conv–BN–Conv–BN–MaxPool–Dropout(0.25)] per
    filter count, then Dense–BN–Dropout(0.5) and a softmax classifier."""
    spec: Spec = [("rescale", {"scale": 1 / 255.0, "offset": 0.0})]
    for f in filters:
        spec += [("conv_relu_bn", {"filters": f, "padding": padding}),
                 ("conv_relu_bn", {"filters": f, "padding": padding}),
                 ("max_pool", {}),
                 ("dropout", {"rate": 0.25})]
    spec += [("flatten", {}),
             ("dense_relu_bn", {"units": dense_units}),
             ("dropout", {"rate": 0.5}),
             ("classifier", {})]
    return spec


def fast_spec(widths: tuple[int, ...], stem: int) -> Spec:
    """A compact net in the style of the fastest CIFAR-10 trainers (airbench, the
    DAWNBench ResNet line): a stem conv, then per stage conv → max-pool → BN → ReLU →
    conv → BN → ReLU, global max-pool and a bias-free linear classifier. Pooling right
    after the first conv of a stage makes the second conv 4× cheaper, which is what
    matters on a CPU."""
    spec: Spec = [("rescale", {"scale": 1 / 64.0, "offset": -2.0}),
                  ("conv_bn_relu", {"filters": stem})]
    for w in widths:
        spec += [("conv_pool_bn_relu", {"filters": w}),
                 ("conv_bn_relu", {"filters": w})]
    spec += [("global_max_pool", {}), ("classifier", {"use_bias": False})]
    return spec


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    specs: dict[str, Spec]  # input kind ("grey28" or "colour32") -> spec


ARCHITECTURES: dict[str, Architecture] = {
    "seed": Architecture(
        "seed", "The original notebook's network (VGG-style blocks, dropout, dense head).",
        {"grey28": seed_spec((32, 64), "valid", 128),
         "colour32": seed_spec((32, 64, 128), "same", 256)}),
    "fast": Architecture(
        "fast", "Compact airbench-style net built for time-to-accuracy on a CPU.",
        {"grey28": fast_spec((32, 64), stem=16),
         "colour32": fast_spec((64, 128, 256), stem=32)}),
}


def input_kind(info: DatasetInfo) -> str:
    return "grey28" if info.input_shape == (28, 28, 1) else "colour32"


def architecture_spec(arch: str, dataset: str) -> Spec:
    if arch not in ARCHITECTURES:
        raise ConfigError(f"Unknown architecture '{arch}'. Choose one of: {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[arch].specs[input_kind(dataset_info(dataset))]


def _conv(options: dict, use_bias: bool = True, activation=None):
    return layers.Conv2D(options["filters"], 3, padding=options.get("padding", "same"),
                         activation=activation, use_bias=use_bias)


def _bn():
    # Momentum 0.9 (not Keras' 0.99) so running statistics keep up in short runs.
    return layers.BatchNormalization(momentum=0.9)


def _step_layers(kind: str, options: dict, num_classes: int) -> list:
    if kind == "rescale":
        return [layers.Rescaling(options["scale"], options["offset"])]
    if kind == "conv_relu_bn":  # the original order: Conv(ReLU) then BN
        return [_conv(options, activation="relu"), _bn()]
    if kind == "conv_bn_relu":  # BN before the non-linearity, conv bias made redundant by BN
        return [_conv(options, use_bias=False), _bn(), layers.ReLU()]
    if kind == "conv_pool_bn_relu":
        return [_conv(options, use_bias=False), layers.MaxPooling2D(), _bn(), layers.ReLU()]
    if kind == "max_pool":
        return [layers.MaxPooling2D()]
    if kind == "global_max_pool":
        return [layers.GlobalMaxPooling2D()]
    if kind == "dropout":
        return [layers.Dropout(options["rate"])]
    if kind == "flatten":
        return [layers.Flatten()]
    if kind == "dense_relu_bn":
        return [layers.Dense(options["units"], activation="relu"), _bn()]
    if kind == "classifier":
        return [layers.Dense(num_classes, activation="softmax", use_bias=options.get("use_bias", True))]
    raise ConfigError(f"Unknown layer kind '{kind}' in architecture spec.")


def build_model(arch: str, dataset: str, name: str | None = None) -> keras.Model:
    """Build the named architecture for a dataset's input shape and class count."""
    info = dataset_info(dataset)
    spec = architecture_spec(arch, dataset)
    inputs = keras.Input(shape=info.input_shape, name="pixels")
    x = inputs
    for kind, options in spec:
        for layer in _step_layers(kind, options, info.num_classes):
            x = layer(x)
    return keras.Model(inputs, x, name=name or f"{arch}_{dataset}")
