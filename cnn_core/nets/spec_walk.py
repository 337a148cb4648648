"""The one walk of an architecture spec: each step's layers, as data (Keras class, name, arguments).

`walk_spec` yields, in build order, a `Step` where a spec step begins, a `Layer` for each of its
layers, and `BlockStart` / `BlockEnd` around a residual block. The builder
(`cnn_core.nets.models.build_model`) turns them into Keras layers; the exporter
(`cnn_core.export.export`) writes them out as the lines of a standalone script. Neither names a
layer or decides a layer's arguments itself, so the script's network is the builder's, layer for
layer and name for name. Nothing here imports Keras: exporting a script loads no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from cnn_core.base.errors import ConfigError

Spec = list[tuple[str, dict]]
WHITEN_LAYER = "whiten"  # the name of a `whiten_stem` conv: set from data, never trained


@dataclass(frozen=True)
class Step:
    """A spec step begins (its layers follow), with its kind and options as the spec gives them."""

    kind: str
    options: dict


@dataclass(frozen=True)
class Layer:
    """One layer: `keras.layers.<cls>(*args, **kwargs, dtype=dtype, name=name)` applied to the tensor so far."""

    cls: str  # a keras.layers class name, or "FusedBatchNorm" (cnn_core.base.layers)
    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    dtype: str | None = None  # a Keras dtype policy name; None: the global policy


@dataclass(frozen=True)
class BlockStart:
    """A residual block begins: the tensor so far is kept as its shortcut."""


@dataclass(frozen=True)
class BlockEnd:
    """A residual block ends: its shortcut, through `projection` (a bias-free 1×1 conv, ResNet's projection
    shortcut) where the block takes `channels_in` channels to `channels_out`, is added to its output by `add`."""

    channels_in: int
    channels_out: int
    projection: Layer | None
    add: Layer


Event = Step | Layer | BlockStart | BlockEnd


class _LayerNames:
    """Readable, unique layer names (conv1, bn1, relu1, …) chosen by the walk itself.

    Keras' automatic names come from counters that can be reset under a model being built in a
    background training thread (seen as "the name conv2d is used 2 times"); explicit names cannot
    collide, and they make layer tables easy to read."""

    def __init__(self):
        self.counts: dict[str, int] = {}

    def __call__(self, prefix: str) -> str:
        self.counts[prefix] = self.counts.get(prefix, 0) + 1
        return f"{prefix}{self.counts[prefix]}"


def _conv(options: dict, name: str, dtype, use_bias: bool = True, activation: str | None = None) -> Layer:
    """A 3×3 (or `kernel`) Conv2D, or for a `separable` step a SeparableConv2D (a per-channel filter, then a
    1×1 mix of the channels)."""
    kwargs = {"padding": options.get("padding", "same"), "use_bias": use_bias}
    if activation:
        kwargs["activation"] = activation
    cls = "SeparableConv2D" if options.get("separable") else "Conv2D"
    return Layer(cls, name, (options["filters"], options.get("kernel", 3)), kwargs, dtype)


def _bn(name: str, dtype, options: dict | None = None) -> Layer:
    options = {"momentum": 0.9, **(options or {})}  # 0.9, not Keras' 0.99: statistics keep up in short runs
    cls = "FusedBatchNorm" if options.pop("fused", False) else "BatchNormalization"
    return Layer(cls, name, (), options, dtype)


def _activation(options: dict, names: _LayerNames, dtype) -> Layer:
    kind = options.get("activation", "relu")
    return (
        Layer("ReLU", names("relu"), dtype=dtype)
        if kind == "relu"
        else Layer("Activation", names(kind), (kind,), {}, dtype)
    )


def _classifier(options: dict, num_classes: int, dtype) -> list[Layer]:
    """The classifier: a softmax Dense, or (with `logit_scale`) a Dense whose logits are scaled, then softmax."""
    bias = options.get("use_bias", True)
    if "logit_scale" not in options:
        return [Layer("Dense", "classifier", (num_classes,), {"activation": "softmax", "use_bias": bias}, dtype)]
    return [
        Layer("Dense", "classifier", (num_classes,), {"use_bias": bias}, dtype),
        Layer("Rescaling", "logit_scale", (options["logit_scale"],), {}, dtype),
        Layer("Softmax", "softmax", dtype=dtype),
    ]


# Steps that are one layer with no arguments: kind -> (Keras class, name prefix).
_PLAIN = {
    "max_pool": ("MaxPooling2D", "pool"),
    "global_max_pool": ("GlobalMaxPooling2D", "global_max_pool"),
    "flatten": ("Flatten", "flatten"),
}


def _step_layers(kind: str, options: dict, num_classes: int, names: _LayerNames, dtype=None) -> list[Layer]:
    """The layers of one spec step (not `residual`, nor `dtype_policy`), named by `names`; `dtype` is a Keras
    dtype policy name (None: the global one)."""
    if kind in _PLAIN:
        cls, prefix = _PLAIN[kind]
        return [Layer(cls, names(prefix), dtype=dtype)]
    if kind == "rescale":
        return [Layer("Rescaling", names("rescale"), (options["scale"],), {"offset": options["offset"]}, dtype)]
    if kind == "dropout":
        return [Layer("Dropout", names("dropout"), (options["rate"],), {}, dtype)]
    if kind == "conv_relu_bn":  # the original order: Conv(ReLU) then BN
        return [_conv(options, names("conv"), dtype, activation="relu"), _bn(names("bn"), dtype)]
    if kind in ("conv_bn_relu", "conv_pool_bn_relu"):  # BN before the non-linearity, conv bias made redundant by BN
        conv = _conv(options, names("conv"), dtype, use_bias=False)
        pool = [Layer("MaxPooling2D", names("pool"), dtype=dtype)] if kind == "conv_pool_bn_relu" else []
        return [conv, *pool, _bn(names("bn"), dtype, options.get("bn")), _activation(options, names, dtype)]
    if kind == "whiten_stem":  # frozen by the optimizer's lr multipliers (cnn_core.train.optimizer)
        stem = _conv({**options, "padding": "valid"}, WHITEN_LAYER, dtype)
        return [stem, Layer("Activation", names("gelu"), ("gelu",), {}, dtype)]
    if kind == "dense_relu_bn":
        dense = Layer("Dense", names("dense"), (options["units"],), {"activation": "relu"}, dtype)
        return [dense, _bn(names("bn"), dtype)]
    if kind == "classifier":  # its own dtype where the spec gives one (mixed_bf16 keeps it float32)
        return _classifier(options, num_classes, options.get("dtype", dtype))
    raise ConfigError(f"Unknown layer kind '{kind}' in architecture spec.")


class _Walk:
    """The walk's state: the layer names so far, the dtype policy in force and the channel count of the
    tensor so far (which decides a residual block's projection)."""

    def __init__(self, num_classes: int, channels: int):
        self.num_classes, self.channels, self.dtype, self.names = num_classes, channels, None, _LayerNames()

    def steps(self, spec: Spec) -> Iterator[Event]:
        for kind, options in spec:
            if kind == "dtype_policy":  # applies to the steps after it
                self.dtype = options["name"]
            elif kind == "residual":
                yield from self.block(options["steps"])
            else:
                yield Step(kind, options)
                for layer in _step_layers(kind, options, self.num_classes, self.names, self.dtype):
                    if layer.cls in ("Conv2D", "SeparableConv2D", "Dense"):
                        self.channels = layer.args[0]
                    yield layer

    def block(self, steps: Spec) -> Iterator[Event]:
        """A residual block: its steps' output plus its input, the input through a bias-free 1×1 conv where the
        channel count changes."""
        before = self.channels
        yield BlockStart()
        yield from self.steps(steps)
        projection = None
        if self.channels != before:
            projection = Layer("Conv2D", self.names("shortcut"), (self.channels, 1), {"use_bias": False}, self.dtype)
        yield BlockEnd(before, self.channels, projection, Layer("Add", self.names("add"), dtype=self.dtype))


def walk_spec(spec: Spec, num_classes: int, channels: int) -> Iterator[Event]:
    """The spec's steps, layers and residual blocks in build order (see the module's docstring), for a network
    with `num_classes` outputs whose input has `channels` channels. A `dtype_policy` step sets the dtype of
    the layers after it; a `residual` step is its block's `BlockStart`, its sub-steps and its `BlockEnd`."""
    yield from _Walk(num_classes, channels).steps(spec)
