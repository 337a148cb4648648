"""Nearest training images: the training pictures closest to an input in the network's last hidden layer,
i.e. what the model thinks the input resembles (its labels and distances say why it answered as it did).

The index holds every training image's last-hidden-layer values, reduced by PCA to INDEX_DIMS numbers
in float16 (60,000 MNIST images ≈ 7.7 MB), searched with scikit-learn's NearestNeighbors. It is built
once per model from the training set (a minute or two on a laptop CPU) and cached in the runs folder's
.cache/ (git-ignored, never shipped), rebuilt when the model file changes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from cnn_core.base.store import ModelStore, atomic_write
from cnn_core.predict.embedding import last_hidden

INDEX_DIMS = 64
CACHE_DIR = ".cache"


@dataclass
class NeighbourIndex:
    mean: np.ndarray  # PCA centre (D,)
    components: np.ndarray  # (INDEX_DIMS, D)
    points: np.ndarray  # (N, INDEX_DIMS) float16: the training images, reduced
    labels: np.ndarray  # (N,) their given classes
    model_version: int  # the model file's mtime_ns when built

    def reduce(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, np.float32) - self.mean) @ self.components.T

    def nearest(self, model, sample: np.ndarray, info, k: int = 8) -> list[dict]:
        """The k nearest training images: {"index" (into the training set), "label", "distance"}."""
        from sklearn.neighbors import NearestNeighbors

        query = self.reduce(last_hidden(model, np.asarray(sample)[None], info))
        search = NearestNeighbors(n_neighbors=min(k, len(self.points))).fit(self.points.astype(np.float32))
        distances, indices = search.kneighbors(query)
        return [
            {"index": int(i), "label": int(self.labels[i]), "distance": float(d)}
            for d, i in zip(distances[0], indices[0], strict=False)
        ]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            mean=self.mean,
            components=self.components,
            points=self.points,
            labels=self.labels,
            model_version=np.int64(self.model_version),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> NeighbourIndex:
        with np.load(io.BytesIO(data)) as z:
            return cls(z["mean"], z["components"], z["points"], z["labels"], int(z["model_version"]))


def build_index(
    model, x_train: np.ndarray, y_train: np.ndarray, info, model_version: int, progress=None
) -> NeighbourIndex:
    """Embed every training image (telling `progress` the fraction done) and reduce by PCA."""
    from sklearn.decomposition import PCA

    values = last_hidden(model, x_train, info, progress)
    pca = PCA(n_components=min(INDEX_DIMS, values.shape[1]), random_state=0).fit(values)
    index = NeighbourIndex(
        pca.mean_.astype(np.float32),
        pca.components_.astype(np.float32),
        np.empty(0),
        np.asarray(y_train, np.uint8),
        model_version,
    )
    index.points = index.reduce(values).astype(np.float16)
    return index


def index_path(cache: ModelStore, name: str):
    return cache.root / CACHE_DIR / f"{name}.neighbours.npz"


def cached_index(cache: ModelStore, name: str, model, data, model_version: int, progress=None) -> NeighbourIndex:
    """The model's index from the cache when it was built for this version of the model, else built
    (from `data`'s training set) and cached."""
    path = index_path(cache, name)
    if path.is_file():
        index = NeighbourIndex.from_bytes(path.read_bytes())
        if index.model_version == model_version and len(index.labels) == len(data.x_train):
            return index
    index = build_index(model, data.x_train, data.y_train, data.info, model_version, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = index.to_bytes()
    atomic_write(path, lambda tmp: tmp.write_bytes(payload))
    return index
