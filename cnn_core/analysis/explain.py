"""Looking inside a trained CNN: its layers, what each convolution responds to, and
which input pixels a decision rests on (Grad-CAM)."""

from __future__ import annotations

import numpy as np

from cnn_core.data.datasets import DatasetInfo
from cnn_core.data.preprocess import to_model_input

# One line per layer type, for learners reading the layer table.
LAYER_EXPLANATIONS = {
    "InputLayer": "The image goes in: raw pixel values, height × width × channels.",
    "Rescaling": "Scales pixel values (0–255) to a small range so training is well-conditioned.",
    "Conv2D": "Slides small learned 3×3 filters over the image; each filter makes one feature map "
    "that lights up where its pattern (edge, stroke, texture…) appears.",
    "SeparableConv2D": "A depthwise-separable convolution: one 3×3 filter per input channel, then a 1×1 mix "
    "of the channels; nearly what a full convolution does with far fewer weights.",
    "Add": "A residual connection: adds the block's input back to what its convolutions made, so they "
    "only learn a change and gradients flow straight through.",
    "BatchNormalization": "Re-centres and re-scales each channel using batch statistics; makes training "
    "faster and more stable.",
    "ReLU": "Keeps positive responses and zeroes the rest: the non-linearity that lets stacked layers "
    "compose shapes from edges.",
    "MaxPooling2D": "Keeps the strongest response in each 2×2 window: halves the size and makes the "
    "features tolerant to small shifts.",
    "Dropout": "During training only, randomly silences a fraction of units so the network cannot rely "
    "on any single one (less overfitting).",
    "Flatten": "Unrolls the stack of feature maps into one long vector for the dense layers.",
    "GlobalMaxPooling2D": "Keeps each channel's strongest response anywhere in the image: one number per "
    "feature, wherever it appeared.",
    "Dense": "Every input connected to every output with a learned weight; the last one scores each class "
    "and softmax turns the scores into probabilities.",
}


def layer_table(model) -> list[dict]:
    rows = []
    for layer in model.layers:
        kind = type(layer).__name__
        shape = layer.output.shape if hasattr(layer, "output") else None
        rows.append(
            {
                "layer": layer.name,
                "type": kind,
                "output shape": "×".join(str(d) for d in shape[1:]) if shape is not None else "",
                "parameters": int(layer.count_params()),
                "what it does": LAYER_EXPLANATIONS.get(kind, ""),
            }
        )
    return rows


CONV_LAYER_KINDS = ("Conv2D", "SeparableConv2D")


def conv_layer_names(model) -> list[str]:
    """The convolutions in order, without a residual block's 1×1 shortcut projections (cnn_core.nets.models)."""
    return [
        layer.name
        for layer in model.layers
        if type(layer).__name__ in CONV_LAYER_KINDS and not layer.name.startswith("shortcut")
    ]


def feature_maps(model, sample: np.ndarray, info: DatasetInfo) -> dict[str, np.ndarray]:
    """Output of every convolution for one uint8 sample: {layer name: (H, W, channels)}."""
    import keras

    names = conv_layer_names(model)
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    outputs = probe(to_model_input(np.asarray(sample)[None], info), training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    # float32 whatever the model computes in: bfloat16 (`turbo`) maps would trip up plotting.
    return {n: keras.ops.convert_to_numpy(o)[0].astype(np.float32) for n, o in zip(names, outputs, strict=False)}


def _unit_scaled(stack: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Each item of `stack` min-max scaled on its own to 0..1 over `axes` (flat items become 0)."""
    lo = stack.min(axis=axes, keepdims=True)
    hi = stack.max(axis=axes, keepdims=True)
    return (stack - lo) / np.maximum(hi - lo, 1e-8)


def _grey_levels(unit: np.ndarray) -> np.ndarray:
    """0..1 values as 0..255 uint8 pixels, for display."""
    return (unit * 255).astype(np.uint8)


def unit_scaled_grey(stack: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Each item of `stack` scaled to its own range over `axes`, as 0..255 uint8 pixels."""
    return _grey_levels(_unit_scaled(stack, axes))


def first_layer_filters(model) -> np.ndarray:
    """The first convolution's kernels as (filters, k, k, in_channels), each scaled to 0..1 for display."""
    kernel = keras_weights(model.get_layer(conv_layer_names(model)[0]))[0]  # (k, k, in, out)
    return _unit_scaled(np.transpose(kernel, (3, 0, 1, 2)), axes=(1, 2, 3))


def kernel_tiles(kernel: np.ndarray) -> list[np.ndarray]:
    """A (k, k, in, out) kernel as uint8 pictures, one per filter scaled to its own range: grey (k, k)
    for one input channel, (k, k, 3) for colour, and grey averaged over the input channels for
    others (a convolution after a stem, whose inputs are not colours)."""
    if kernel.shape[2] not in (1, 3):
        kernel = kernel.mean(axis=2, keepdims=True)
    filters = unit_scaled_grey(np.transpose(kernel, (3, 0, 1, 2)), axes=(1, 2, 3))
    return [f[..., 0] if f.shape[-1] == 1 else f for f in filters]


def first_layer_filter_tiles(model) -> list[np.ndarray]:
    """The first convolution's kernels as uint8 pictures (see kernel_tiles)."""
    return kernel_tiles(keras_weights(model.get_layer(conv_layer_names(model)[0]))[0])


def montage(tiles: list[np.ndarray], ncols: int, scale: int, gap: int = 1) -> np.ndarray:
    """Equal-sized uint8 tiles (grey or RGB) in one picture, `ncols` a row, each pixel a `scale`×`scale`
    block (no blur when a browser shows a 3×3 filter large), `gap` white pixels between tiles."""
    tiles = [t if t.ndim == 3 else t[..., None] for t in tiles]
    h, w, c = tiles[0].shape
    rows = -(-len(tiles) // ncols)
    sheet = np.full((rows * (h * scale + gap) - gap, ncols * (w * scale + gap) - gap, c), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, ncols)
        y, x = r * (h * scale + gap), col * (w * scale + gap)
        sheet[y : y + h * scale, x : x + w * scale] = tile.repeat(scale, axis=0).repeat(scale, axis=1)
    return sheet[..., 0] if c == 1 else sheet


def strongest_feature_maps(maps: np.ndarray, count: int = 32) -> list[tuple[int, np.ndarray]]:
    """The `count` channels of one layer's (H, W, channels) maps with the highest mean response,
    strongest first, each as (channel, uint8 picture scaled to its own range)."""
    channels = np.argsort(maps.reshape(-1, maps.shape[-1]).mean(axis=0))[::-1][:count]
    tiles = _grey_levels(_unit_scaled(np.moveaxis(maps[..., channels], -1, 0), axes=(1, 2)))
    return [(int(c), tile) for c, tile in zip(channels, tiles, strict=False)]


def keras_weights(layer) -> list[np.ndarray]:
    return [np.asarray(w) for w in layer.get_weights()]


MIN_CAM_SIZE = 8  # px: coarser maps (e.g. 7×7 or 4×4 after the last pooling) blur or lose the evidence


def cam_layer_name(model) -> str:
    """The deepest rectified convolutional feature maps that are still at least 8×8.

    Grad-CAM needs activations after the ReLU (BatchNorm's offsets can otherwise flip the map)
    and enough resolution: on a known synthetic case the 7×7 maps feeding the fast net's global
    max-pool gave chance-level maps while its 14×14 maps found the evidence every time.
    """
    fallback = None
    for layer in reversed(model.layers):
        shape = layer.output.shape
        if len(shape) != 4:
            continue
        kind = type(layer).__name__
        if kind == "ReLU" or (kind in CONV_LAYER_KINDS and getattr(layer.activation, "__name__", "") == "relu"):
            fallback = fallback or layer.name
            if min(shape[1], shape[2]) >= MIN_CAM_SIZE:
                return layer.name
    return fallback or conv_layer_names(model)[-1]


def grad_cam(
    model, sample: np.ndarray, info: DatasetInfo, class_index: int | None = None, layer_name: str | None = None
) -> tuple[np.ndarray, int]:
    """Grad-CAM (Selvaraju et al., 2017): weight the last conv layer's maps by the gradient of the
    class score, keep the positive part, upsample to the input size.

    Returns (heat map in 0..1 of the input's height × width, class explained).
    """
    import keras
    import tensorflow as tf

    layer_name = layer_name or cam_layer_name(model)
    probe = keras.Model(model.input, [model.get_layer(layer_name).output, model.output])
    x = tf.convert_to_tensor(to_model_input(np.asarray(sample)[None], info))
    with tf.GradientTape() as tape:
        maps, probs = probe(x, training=False)
        if class_index is None:
            class_index = int(tf.argmax(probs[0]))
        # The log-probability's gradient is the softmax-aware version of the class score's.
        score = tf.math.log(probs[:, class_index] + 1e-9)
    grads = tape.gradient(score, maps)[0]  # (h, w, channels)
    weights = tf.reduce_mean(grads, axis=(0, 1))
    cam = tf.nn.relu(tf.reduce_sum(maps[0] * weights, axis=-1)).numpy()
    if cam.max() > 0:
        cam = cam / cam.max()
    h, w = info.input_shape[:2]
    heat = tf.image.resize(cam[..., None], (h, w), method="bilinear").numpy()[..., 0]
    return np.clip(heat, 0, 1), class_index


def grad_cam_picture(model, sample: np.ndarray, info: DatasetInfo, class_index: int) -> np.ndarray:
    """The sample with its Grad-CAM heat map for `class_index` on top, as a uint8 RGB picture."""
    heat, _ = grad_cam(model, sample, info, class_index)
    return heat_picture(sample, heat)


def heat_picture(sample: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The sample with a heat map (values 0..1, the sample's height and width) on top, as uint8 RGB."""
    return _grey_levels(overlay(sample, heat))


def overlay(sample: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The sample in grey/colour with the heat map on top (cividis: colour-blind safe)."""
    from matplotlib import colormaps

    base = np.asarray(sample, np.float32) / 255.0
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    colour = colormaps["cividis"](heat)[..., :3]
    return np.clip((1 - alpha) * base + alpha * colour, 0, 1)
