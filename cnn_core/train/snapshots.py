"""What a run records at the end of every epoch so that the app can replay how it learned: the
predicted class of each validation image (for the confusion matrix and per-class accuracy as they
were then), the first trainable convolution's filters, and that layer's feature maps of one fixed
probe image (the user's own drawing or photo where they gave one).

Stored compactly beside the model as NAME.snapshots.npz, rewritten atomically after each epoch
(a few kilobytes per epoch), with "epoch 0" the untrained network:

    snaps = load_snapshots(store, "mnist_demo")        # None for a run without them
    cm, per_class = confusion_at(snaps, epoch=3)        # as on epoch 3's validation images
    filter_tiles(snaps, 3), map_tiles(snaps, 3)         # uint8 pictures for a grid
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import keras
import numpy as np

from cnn_core.analysis.explain import kernel_tiles, unit_scaled_grey
from cnn_core.base.store import ModelStore, atomic_write
from cnn_core.data.datasets import DatasetInfo
from cnn_core.data.preprocess import INFERENCE_BATCH, to_model_input
from cnn_core.nets.models import WHITEN_LAYER

SUFFIX = ".snapshots.npz"
MAX_VAL_IMAGES = 2000  # validation images whose predictions are kept per epoch (one byte each)
MAX_CHANNELS = 32  # feature maps kept per epoch (the layer's first channels, the same every epoch)
PREDICT_BATCH = INFERENCE_BATCH


@dataclass
class Snapshots:
    epochs: np.ndarray  # (E,) epoch numbers, 0 = before training
    val_labels: np.ndarray  # (N,) uint8 true classes of the validation images used
    val_predictions: np.ndarray  # (E, N) uint8 predicted classes
    filters: np.ndarray  # (E, k, k, in, out) float16 kernels of the first trainable convolution
    feature_maps: np.ndarray  # (E, H, W, C) uint8, each map scaled to its own range that epoch
    probe: np.ndarray  # the probe image (uint8 sample)
    probe_source: str
    layer: str  # the convolution they come from

    def index(self, epoch: int) -> int:
        where = np.flatnonzero(self.epochs == epoch)
        if not len(where):
            raise ValueError(f"No snapshot of epoch {epoch}; recorded: {self.epochs.tolist()}")
        return int(where[0])

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            epochs=self.epochs,
            val_labels=self.val_labels,
            val_predictions=self.val_predictions,
            filters=self.filters,
            feature_maps=self.feature_maps,
            probe=self.probe,
            probe_source=np.array(self.probe_source),
            layer=np.array(self.layer),
        )
        return buffer.getvalue()


def load_snapshots(store: ModelStore, name: str) -> Snapshots | None:
    path = store.path(name, SUFFIX)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as f:
        return Snapshots(
            f["epochs"],
            f["val_labels"],
            f["val_predictions"],
            f["filters"],
            f["feature_maps"],
            f["probe"],
            str(f["probe_source"]),
            str(f["layer"]),
        )


def first_trainable_conv(model):
    """The first Conv2D that training changes (airbench's whitening stem is set from data and frozen)."""
    for layer in model.layers:
        if type(layer).__name__ == "Conv2D" and layer.name != WHITEN_LAYER:
            return layer
    raise ValueError(f"Model {model.name} has no trainable convolution.")


def confusion_at(snaps: Snapshots, epoch: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(confusion matrix, per-class accuracy) on the kept validation images at `epoch`."""
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(snaps.val_labels, snaps.val_predictions[snaps.index(epoch)], labels=range(classes))
    return cm, np.diag(cm) / np.maximum(cm.sum(axis=1), 1)


def filter_tiles(snaps: Snapshots, epoch: int) -> list[np.ndarray]:
    return kernel_tiles(snaps.filters[snaps.index(epoch)].astype(np.float32))


def map_tiles(snaps: Snapshots, epoch: int) -> list[np.ndarray]:
    return list(np.moveaxis(snaps.feature_maps[snaps.index(epoch)], -1, 0))


class EpochSnapshots(keras.callbacks.Callback):
    """Records a snapshot before training and after every epoch, and writes the file each time.
    `restored`: a resumed run's snapshots so far (kept, then added to)."""

    def __init__(
        self,
        store: ModelStore,
        name: str,
        info: DatasetInfo,
        x_val,
        y_val,
        probe: np.ndarray,
        probe_source: str,
        restored: Snapshots | None = None,
    ):
        super().__init__()
        self.store, self.name, self.info = store, name, info
        self.x_val, self.y_val = x_val[:MAX_VAL_IMAGES], np.asarray(y_val[:MAX_VAL_IMAGES], np.uint8)
        self.probe, self.probe_source = np.asarray(probe, np.uint8), probe_source
        self.snaps = restored

    def on_train_begin(self, logs=None):
        if self.snaps is None:
            self.record(0)

    def on_epoch_end(self, epoch, logs=None):
        self.record(epoch + 1)

    def record(self, epoch: int) -> None:
        layer = first_trainable_conv(self.model)
        kernel = np.asarray(layer.kernel, np.float32).astype(np.float16)[None]
        maps = keras.Model(self.model.input, layer.output)(to_model_input(self.probe[None], self.info), training=False)
        maps = unit_scaled_grey(np.moveaxis(np.asarray(maps, np.float32)[0, ..., :MAX_CHANNELS], -1, 0), (1, 2))
        maps = np.moveaxis(maps, 0, -1)[None]
        predicted = self._predicted()[None]
        if self.snaps is None:
            self.snaps = Snapshots(
                np.array([epoch]), self.y_val, predicted, kernel, maps, self.probe, self.probe_source, layer.name
            )
        else:
            s = self.snaps
            keep = s.epochs < epoch  # a resumed run re-recording an epoch replaces it
            self.snaps = Snapshots(
                np.append(s.epochs[keep], epoch),
                s.val_labels,
                np.concatenate([s.val_predictions[keep], predicted]),
                np.concatenate([s.filters[keep], kernel]),
                np.concatenate([s.feature_maps[keep], maps]),
                s.probe,
                s.probe_source,
                s.layer,
            )
        data = self.snaps.to_bytes()
        atomic_write(self.store.path(self.name, SUFFIX), lambda tmp: tmp.write_bytes(data))

    def _predicted(self) -> np.ndarray:
        if not len(self.x_val):
            return np.zeros(0, np.uint8)
        out = [
            np.argmax(
                np.asarray(
                    self.model(to_model_input(self.x_val[i : i + PREDICT_BATCH], self.info), training=False), np.float32
                ),
                axis=-1,
            )
            for i in range(0, len(self.x_val), PREDICT_BATCH)
        ]
        return np.concatenate(out).astype(np.uint8)


__all__ = [
    "MAX_CHANNELS",
    "MAX_VAL_IMAGES",
    "SUFFIX",
    "EpochSnapshots",
    "Snapshots",
    "confusion_at",
    "filter_tiles",
    "first_trainable_conv",
    "load_snapshots",
    "map_tiles",
]
