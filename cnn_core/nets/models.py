"""Architectures as data, and the one builder that turns a spec into a Keras model.

A spec is a list of `(layer_kind, options)` steps. `build_model` makes the Keras layers that
`cnn_core.nets.spec_walk.walk_spec` walks out of it (the exporter writes the same walk out as
script lines); `ARCHITECTURES` names the specs per input kind. Every model takes raw pixel
values (0..255, float32, shape H×W×C) and returns class probabilities, so one
preprocessing path (`cnn_core.data.preprocess`) feeds every model.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnn_core.base.errors import ConfigError
from cnn_core.data.datasets import DatasetInfo, dataset_info
from cnn_core.nets.spec_walk import (
    WHITEN_LAYER,  # noqa: F401  (the stem's name: importers read it here)
    BlockEnd,
    BlockStart,
    Layer,
    Spec,
    walk_spec,
)


def seed_spec(filters: tuple[int, ...], padding: str, dense_units: int) -> Spec:
    """The original notebook's network: [Conv–BN–Conv–BN–MaxPool–Dropout(0.25)] per
    filter count, then Dense–BN–Dropout(0.5) and a softmax classifier."""
    spec: Spec = [("rescale", {"scale": 1 / 255.0, "offset": 0.0})]
    for f in filters:
        spec += [
            ("conv_relu_bn", {"filters": f, "padding": padding}),
            ("conv_relu_bn", {"filters": f, "padding": padding}),
            ("max_pool", {}),
            ("dropout", {"rate": 0.25}),
        ]
    spec += [("flatten", {}), ("dense_relu_bn", {"units": dense_units}), ("dropout", {"rate": 0.5}), ("classifier", {})]
    return spec


def fast_spec(widths: tuple[int, ...], stem: int) -> Spec:
    """A compact net in the style of the fastest CIFAR-10 trainers (airbench, the
    DAWNBench ResNet line): a stem conv, then per stage conv → max-pool → BN → ReLU →
    conv → BN → ReLU, global max-pool and a bias-free linear classifier. Pooling right
    after the first conv of a stage makes the second conv 4× cheaper, which is what
    matters on a CPU."""
    spec: Spec = [("rescale", {"scale": 1 / 64.0, "offset": -2.0}), ("conv_bn_relu", {"filters": stem})]
    for w in widths:
        spec += [("conv_pool_bn_relu", {"filters": w}), ("conv_bn_relu", {"filters": w})]
    spec += [("global_max_pool", {}), ("classifier", {"use_bias": False})]
    return spec


def airbench_spec(widths: tuple[int, ...], stem: int, logit_scale: float = 1 / 9, pool_stem: bool = False) -> Spec:
    """airbench94's network (Keller Jordan's CIFAR-10 speed record): a frozen 2×2 "whitening"
    stem conv (valid, so 32→31 px; its kernel is set from the data's patch covariance by
    `cnn_core.nets.initialisers`), then per stage conv → max-pool → BN → GELU → conv → BN → GELU
    with scale-free batch norm, a max-pool over what is left, and a bias-free linear classifier
    whose logits are scaled down by `logit_scale`. `pool_stem` max-pools right after the stem:
    on 28 px digits that runs every later layer on 13 px or less, so an MNIST epoch ends sooner
    for the same accuracy."""
    bn = {"momentum": 0.6, "epsilon": 1e-12, "scale": False}  # airbench's BN: fast stats, no γ
    spec: Spec = [("rescale", {"scale": 1 / 64.0, "offset": -2.0}), ("whiten_stem", {"filters": stem, "kernel": 2})]
    if pool_stem:
        spec.append(("max_pool", {}))
    for w in widths:
        spec += [
            ("conv_pool_bn_relu", {"filters": w, "activation": "gelu", "bn": bn, "dirac": True}),
            ("conv_bn_relu", {"filters": w, "activation": "gelu", "bn": bn, "dirac": True}),
        ]
    spec += [("global_max_pool", {}), ("classifier", {"use_bias": False, "logit_scale": logit_scale})]
    return spec


CONV_KINDS = ("conv_relu_bn", "conv_bn_relu", "conv_pool_bn_relu")  # steps whose first layer is a 3×3 conv
SAME_SIZE_CONV_KINDS = ("conv_relu_bn", "conv_bn_relu")  # ... that keep the map's height and width


def with_separable(spec: Spec) -> Spec:
    """Depthwise-separable convolutions (MobileNet, Xception): every 3×3 conv after the first becomes a
    per-channel 3×3 filter followed by a 1×1 mix of the channels (keras SeparableConv2D), about 8×
    fewer multiply-adds for 64 channels. The first conv stays whole: it reads only 1 or 3 colour
    channels, where a per-channel filter would leave it almost nothing to learn."""
    out, seen_conv = [], False
    for kind, options in spec:
        if kind in CONV_KINDS:
            options = {**options, "separable": seen_conv}
            seen_conv = True
        out.append((kind, options))
    return out


def with_residual(spec: Spec) -> Spec:
    """ResNet-style skip connections: each run of convolutions that keep the map's size (the convs of a
    stage, between two poolings) becomes one residual block whose output is the run's output plus its
    input, the input through a 1×1 conv where the width changes (ResNet's projection shortcut). A skip
    needs both the same size, so the block's convs pad ('same'). The stem, a conv reading the pixels,
    stays plain, as in ResNet."""
    out: Spec = []
    run: Spec = []

    def close_run():
        if run:
            out.append(("residual", {"steps": [(kind, {**options, "padding": "same"}) for kind, options in run]}))
            run.clear()

    read_pixels = True  # no conv yet: the next one is the stem
    for kind, options in spec:
        if kind in SAME_SIZE_CONV_KINDS and not read_pixels:
            run.append((kind, options))
            continue
        close_run()
        out.append((kind, options))
        if kind in CONV_KINDS or kind == "whiten_stem":
            read_pixels = False
    close_run()
    return out


def architecture_switches(config: dict) -> dict[str, bool]:
    """A run config's architecture switches, as build_model's keyword arguments (off where a config
    saved before they existed lacks them)."""
    return {key: bool(config.get(key, False)) for key in ("residual", "separable")}


def switched_spec(spec: Spec, residual: bool = False, separable: bool = False) -> Spec:
    """`spec` with the architecture switches of cnn_core.train.switches applied."""
    if separable:
        spec = with_separable(spec)
    return with_residual(spec) if residual else spec


def mixed_bf16(spec: Spec) -> Spec:
    """The same network computing in bfloat16 (weights, BN statistics and the softmax
    stay float32): about 2× the training throughput on CPUs with AVX512-BF16 / AMX
    and on recent GPUs, ten times slower on CPUs without them (see cnn_core.nets.precision)."""
    from cnn_core.nets.precision import BF16_POLICY, FP32_POLICY

    body = [(kind, dict(options)) for kind, options in spec]
    kind, options = body[-1]
    if kind != "classifier":
        raise ConfigError("A mixed-precision spec must end with its classifier.")
    body[-1] = (kind, {**options, "dtype": FP32_POLICY})
    return [("dtype_policy", {"name": BF16_POLICY}), *body]


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    specs: dict[str, Spec]  # input kind ("grey28" or "colour32") -> spec


ARCHITECTURES: dict[str, Architecture] = {
    "seed": Architecture(
        "seed",
        "The original notebook's network (VGG-style blocks, dropout, dense head).",
        {"grey28": seed_spec((32, 64), "valid", 128), "colour32": seed_spec((32, 64, 128), "same", 256)},
    ),
    "fast": Architecture(
        "fast",
        "Compact airbench-style net built for time-to-accuracy on a CPU.",
        {"grey28": fast_spec((32, 64), stem=16), "colour32": fast_spec((64, 128, 256), stem=32)},
    ),
    # For time to accuracy on a small CPU (benchmarks/results/time_to_accuracy.md): the
    # `fast` photo net (its recipe trains it in bfloat16 where the CPU has it), and a
    # narrower digit net.
    "turbo": Architecture(
        "turbo",
        "The fast net tuned for a small CPU: bfloat16 for photos where the CPU has it, narrower for digits.",
        {"grey28": fast_spec((24, 48), stem=12), "colour32": fast_spec((64, 128, 256), stem=32)},
    ),
    # The turbo photo net with airbench's widths (64/256/256): more parameters at nearly the
    # same images/s, since the widened middle stage runs on 16x16 and 8x8 maps.
    # Built to ship the most accurate single photo model; the digit net is widened alike.
    "wide": Architecture(
        "wide",
        "The turbo net widened to airbench's 64/256/256 channels: the most accurate, slower to train.",
        {"grey28": fast_spec((64, 128), stem=32), "colour32": fast_spec((64, 256, 256), stem=32)},
    ),
    # airbench94's net and, with the `airbench` recipe, its training method, in Keras: the
    # peer of benchmarks/time_to_accuracy.py rebuilt on the project's engine. The digit net is
    # the same design, narrower (32/64/64), pooled right after its stem: 99% MNIST in one epoch
    # (benchmarks/results/time_to_accuracy.md).
    "airbench": Architecture(
        "airbench",
        "airbench94's network: whitened stem, GELU, scale-free batch norm (the CIFAR-10 speed record).",
        {
            "grey28": airbench_spec((32, 64, 64), stem=8, pool_stem=True),
            "colour32": airbench_spec((64, 256, 256), stem=24),
        },
    ),
    # The same method on narrower nets, for the Train page's first run: the photo net with the
    # `turbo` widths 64/128/256 (more images/s than airbench's widths), the digit net 24/48
    # (benchmarks/results/time_to_accuracy.md).
    "quick": Architecture(
        "quick",
        "airbench's method on narrower nets: the shortest path to a good model.",
        {"grey28": airbench_spec((24, 48), stem=8, pool_stem=True), "colour32": airbench_spec((64, 128, 256), stem=24)},
    ),
}


def input_kind(info: DatasetInfo) -> str:
    return "grey28" if info.input_shape == (28, 28, 1) else "colour32"


def architecture_spec(arch: str, dataset: str) -> Spec:
    if arch not in ARCHITECTURES:
        raise ConfigError(f"Unknown architecture '{arch}'. Choose one of: {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[arch].specs[input_kind(dataset_info(dataset))]


def _keras_layer(layer: Layer):
    """The Keras layer a walked `Layer` describes."""
    from keras import layers  # imported late: the CLI parses arguments without TensorFlow

    from cnn_core.base.layers import FusedBatchNorm

    cls = FusedBatchNorm if layer.cls == "FusedBatchNorm" else getattr(layers, layer.cls)
    return cls(*layer.args, **layer.kwargs, dtype=layer.dtype, name=layer.name)


def _apply_walk(x, events):
    """The tensor after the walked layers (cnn_core.nets.spec_walk): each applied to the tensor so far, a
    residual block's output added to its input (projected where the walk says so); a `Step` only marks
    where a spec step begins."""
    shortcuts = []
    for event in events:
        if isinstance(event, Layer):
            x = _keras_layer(event)(x)
        elif isinstance(event, BlockStart):
            shortcuts.append(x)
        elif isinstance(event, BlockEnd):
            shortcut = shortcuts.pop()
            if event.projection is not None:
                shortcut = _keras_layer(event.projection)(shortcut)
            x = _keras_layer(event.add)([x, shortcut])
    return x


def build_model(
    arch: str,
    dataset: str,
    name: str | None = None,
    precision: str = "fp32",
    residual: bool = False,
    separable: bool = False,
):
    """Build the named architecture for a dataset's input shape and class count (a keras.Model),
    computing in `precision` ('fp32', or 'bf16' for mixed bfloat16), with the architecture
    switches `residual` and `separable` (cnn_core.train.switches) on or off."""
    import keras

    info = dataset_info(dataset)
    spec = switched_spec(architecture_spec(arch, dataset), residual, separable)
    if precision == "bf16":
        spec = mixed_bf16(spec)
    elif precision != "fp32":
        raise ConfigError(f"Precision must be 'bf16' or 'fp32' to build a model (got '{precision}').")
    inputs = keras.Input(shape=info.input_shape, name="pixels")
    x = _apply_walk(inputs, walk_spec(spec, info.num_classes, info.input_shape[-1]))
    return keras.Model(inputs, x, name=name or f"{arch}_{dataset}")
