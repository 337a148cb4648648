"""Data augmentation with Keras preprocessing layers, applied per batch in tf.data.

Each transform is switched on by a non-zero value in the recipe's `augment` dict:
rotation (degrees), shift (fraction of width/height), zoom (fraction), flip (bool).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from cnn_core.data.datasets import dataset_info
from cnn_core.data.preprocess import to_model_input


class AlternatingFlip(keras.callbacks.Callback):
    """airbench's alternating flip: each training image is mirrored or not at random in the first
    epoch and the other way round in every following one, so two epochs show every image both
    ways (random flips show half of them the same way in both). The flip of an epoch is
    (the image's first-epoch choice) XOR (the epoch is odd); fit() reports the epoch here before
    it opens that epoch's pass over the data, which reads it (cnn_core.data.pipeline)."""

    def __init__(self, size: int, seed: int = 0):
        super().__init__()
        self.mirrored_first = np.random.default_rng(seed).random(size) < 0.5  # per training image
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="alternating_flip_epoch")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)  # fit()'s epoch counts on across a resumed run

    def apply(self, images, mirrored_first):
        """A batch (N, H, W, C) with the images due a mirror this epoch mirrored."""
        mirror = tf.not_equal(mirrored_first, tf.equal(self.epoch % 2, 1))
        return tf.where(mirror[:, None, None, None], tf.reverse(images, axis=[2]), images)


def build_augmenter(augment: dict, seed: int = 0, random_flip: bool = True) -> keras.Sequential | None:
    """A Sequential of random layers, or None when every transform is off. `random_flip` False
    leaves flipping to an AlternatingFlip (the other transforms still apply)."""
    steps = []
    if augment.get("flip") and random_flip:
        steps.append(layers.RandomFlip("horizontal", seed=seed))
    if augment.get("rotation"):
        steps.append(layers.RandomRotation(augment["rotation"] / 360.0, fill_mode="constant", seed=seed + 1))
    if augment.get("shift"):
        s = augment["shift"]
        # Reflect padding + nearest = the classic "pad and random-crop" for photos;
        # digits get black fill so no mirrored strokes appear at the border.
        fill = "reflect" if augment.get("flip") else "constant"
        steps.append(layers.RandomTranslation(s, s, fill_mode=fill, interpolation="nearest", seed=seed + 2))
    if augment.get("zoom"):
        steps.append(layers.RandomZoom(augment["zoom"], fill_mode="constant", seed=seed + 3))
    return keras.Sequential(steps, name="augment") if steps else None


def augmented_views(image: np.ndarray, dataset: str, augment: dict, n: int = 8, seed: int = 0) -> np.ndarray:
    """`n` augmented copies of one uint8 sample (for an augmentation preview)."""
    info = dataset_info(dataset)
    batch = np.repeat(to_model_input(np.asarray(image)[None], info), n, axis=0)
    augmenter = build_augmenter(augment, seed)
    if augmenter is None:
        out = batch
    else:
        out = keras.ops.convert_to_numpy(augmenter(batch, training=True))
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out[..., 0] if len(info.raw_shape) == 2 else out
