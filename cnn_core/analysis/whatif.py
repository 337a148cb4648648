"""What-if edits: rotate, shift, scale, blur or cover part of a picture and see how the prediction moves;
and the occlusion-sensitivity map (Zeiler & Fergus, 2014): a grey patch slid over the picture, and how
much the predicted class's probability drops with the patch at each place.

Edits work on the uint8 sample the network takes (28×28 grey or 32×32 colour), after preprocessing,
so what changes is exactly what the network sees."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cnn_core.base.errors import ConfigError

GREY = 128  # the occluding patch's value: neutral, neither ink nor background


@dataclass(frozen=True)
class Edit:
    """One combination of edits; the defaults change nothing."""

    rotate: float = 0.0  # degrees, counter-clockwise
    shift_x: float = 0.0  # pixels, right
    shift_y: float = 0.0  # pixels, down
    scale: float = 1.0  # > 1 enlarges about the centre
    blur: float = 0.0  # Gaussian sigma in pixels
    occlude: tuple[int, int, int] | None = None  # (row, column, size) of a grey square

    def __post_init__(self):
        if not 0.25 <= self.scale <= 4:
            raise ConfigError(f"The scale must be between 0.25 and 4 (got {self.scale}).")
        if self.blur < 0:
            raise ConfigError(f"The blur must be 0 or more pixels (got {self.blur}).")


def apply_edit(sample: np.ndarray, edit: Edit) -> np.ndarray:
    """The sample with the edit applied (uint8, same shape). Grey pictures (digits, clothes) are
    filled with black where the edit uncovers the border, as their backgrounds are; photos repeat
    their edge pixels."""
    x = np.asarray(sample, np.float32)
    colour = x.ndim == 3
    h, w = x.shape[:2]
    angle = np.deg2rad(edit.rotate)
    # affine_transform maps output coordinates to input ones: the inverse of rotate-then-scale.
    inverse = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]]) / edit.scale
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    offset = centre - inverse @ (centre + np.array([edit.shift_y, edit.shift_x]))
    mode = "nearest" if colour else "constant"
    channels = [x[..., c] for c in range(x.shape[2])] if colour else [x]
    moved = [ndimage.affine_transform(c, inverse, offset=offset, order=1, mode=mode, cval=0.0) for c in channels]
    if edit.blur > 0:
        moved = [ndimage.gaussian_filter(c, edit.blur) for c in moved]
    out = np.stack(moved, axis=-1) if colour else moved[0]
    if edit.occlude is not None:
        row, col, size = edit.occlude
        out[max(0, row) : row + size, max(0, col) : col + size] = GREY
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def occlusion_map(
    predict, sample: np.ndarray, class_index: int, patch: int | None = None, stride: int = 2
) -> np.ndarray:
    """How much the probability of `class_index` drops when a grey `patch`×`patch` square covers each
    place (float (H, W), 0 where covering changes nothing; negative where it helps the class).
    `predict` maps a batch of uint8 samples to class probabilities (e.g. Predictor.predict_samples);
    all placements go through it in one batch."""
    h, w = sample.shape[:2]
    patch = patch or max(3, h // 5)
    starts = [(r, c) for r in range(0, h - patch + 1, stride) for c in range(0, w - patch + 1, stride)]
    covered = np.repeat(np.asarray(sample, np.uint8)[None], len(starts), axis=0)
    for i, (r, c) in enumerate(starts):
        covered[i, r : r + patch, c : c + patch] = GREY
    base = float(predict(np.asarray(sample, np.uint8)[None])[0, class_index])
    drops = base - predict(covered)[:, class_index]
    total, count = np.zeros((h, w)), np.zeros((h, w))
    for drop, (r, c) in zip(drops, starts, strict=False):  # each pixel: the mean drop of the patches that covered it
        total[r : r + patch, c : c + patch] += drop
        count[r : r + patch, c : c + patch] += 1
    return total / np.maximum(count, 1)
