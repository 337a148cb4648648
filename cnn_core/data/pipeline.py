"""The tf.data input pipeline: uint8 arrays → shuffled, augmented, one-hot batches for fit()."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cnn_core.data.augment import AlternatingFlip, build_augmenter
from cnn_core.data.datasets import DatasetInfo


def make_tf_dataset(
    x: np.ndarray,
    y: np.ndarray,
    info: DatasetInfo,
    batch_size: int,
    augment: dict | None,
    shuffle: bool,
    seed: int,
    drop_remainder: bool = False,
    alternating_flip: AlternatingFlip | None = None,
    mixup: float = 0.0,
    cutmix: float = 0.0,
) -> tf.data.Dataset:
    """Batches of (float32 pixels 0..255, one-hot labels), prefetched; the models rescale internally.
    `drop_remainder` drops a last, smaller batch (a compiled step would compile again for its shape).
    `alternating_flip` (also a callback of the same fit) flips instead of the random flip.
    `mixup` / `cutmix`: their Beta α (0: off), after the augmentation (see batch_mixer)."""
    # The set stays uint8 and each batch is cast to float32: a float32 copy of the whole set,
    # held again by the shuffle buffer, would nearly double the pipeline's peak memory on CIFAR-10
    # (benchmarks/results/memory.md), for the same values.
    x = np.asarray(x)
    if x.ndim == len(info.input_shape):  # (N,H,W) grey → add the channel axis
        x = x[..., None]
    columns = (x, y.astype(np.int32))
    if alternating_flip is not None:  # each image's first-epoch flip travels with it through the shuffle
        columns += (alternating_flip.mirrored_first,)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    augmenter = build_augmenter(augment, seed, random_flip=alternating_flip is None) if augment else None
    mix = batch_mixer(mixup, cutmix, seed)

    def to_example(images, labels, mirrored_first=None):
        images = tf.cast(images, tf.float32)
        if alternating_flip is not None:
            images = alternating_flip.apply(images, mirrored_first)
        if augmenter is not None:
            images = augmenter(images, training=True)
        labels = tf.one_hot(labels, info.num_classes)
        return mix(images, labels) if mix is not None else (images, labels)

    # Augmenting whole batches is far cheaper than per image on a CPU.
    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def batch_mixer(mixup: float, cutmix: float, seed: int):
    """A function (images, one-hot labels) → the batch mixed by Keras' MixUp and/or CutMix layers, or
    None when both are off. With both on, each batch gets one of the two at even odds (as timm does),
    so every batch is still one clean kind of mix."""
    layers = []
    if mixup:
        layers.append(keras.layers.MixUp(alpha=mixup, seed=seed + 5))
    if cutmix:
        layers.append(keras.layers.CutMix(factor=cutmix, seed=seed + 6))
    if not layers:
        return None

    def mixed(layer, images, labels):
        out = layer({"images": images, "labels": labels}, training=True)
        return out["images"], out["labels"]

    if len(layers) == 1:
        return lambda images, labels: mixed(layers[0], images, labels)
    return lambda images, labels: tf.cond(
        tf.random.uniform([], seed=seed) < 0.5,
        lambda: mixed(layers[0], images, labels),
        lambda: mixed(layers[1], images, labels),
    )
