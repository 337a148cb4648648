"""Weights set from the data or by design before training starts (airbench's two inits).

- Patch whitening: the first conv's kernel becomes the whitening transform of the training
  images' 2×2 patches (their covariance's eigenvectors scaled by 1/√eigenvalue, each also
  negated), so the network starts from decorrelated, unit-variance edges and colours. That
  kernel is never trained (cnn_core.train.optimizer gives it a zero learning rate).
- Partial identity ("dirac"): each 3×3 conv starts as the identity on its first `in`
  channels plus its random init, so a fresh deep net passes its input through.
"""

from __future__ import annotations

import numpy as np

from cnn_core.nets.models import WHITEN_LAYER, Spec, architecture_spec, switched_spec

WHITEN_IMAGES = 5000  # training images whose patches set the whitening kernel (airbench's count)
WHITEN_EPS = 5e-4  # added to every eigenvalue: caps the gain of near-constant directions


def patch_whitening_kernel(inputs: np.ndarray, kernel_size: int, filters: int, eps: float = WHITEN_EPS) -> np.ndarray:
    """A (k, k, C, filters) kernel whitening the k×k patches of `inputs` (N, H, W, C):
    the top filters/2 eigen-directions of the patch covariance, scaled by 1/√(λ+eps), then
    the same negated (so a ReLU-like activation keeps both signs)."""
    _n, h, w, c = inputs.shape
    k = kernel_size
    if filters % 2 or filters // 2 > k * k * c:
        raise ValueError(f"A {k}×{k}×{c} whitening stem has at most {2 * k * k * c} filters, in pairs (got {filters}).")
    # Patches laid out as the kernel is, (row, column, channel), so an eigenvector is a kernel slice.
    patches = (
        np.concatenate(
            [inputs[:, i : h - k + 1 + i, j : w - k + 1 + j, :] for i in range(k) for j in range(k)], axis=-1
        )
        .reshape(-1, k * k * c)
        .astype(np.float64)
    )
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    order = np.argsort(eigenvalues)[::-1][: filters // 2]
    scaled = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + eps)
    kernel = scaled.reshape(k, k, c, filters // 2)
    return np.concatenate([kernel, -kernel], axis=-1).astype(np.float32)


def dirac_identity(kernel: np.ndarray) -> np.ndarray:
    """`kernel` (kh, kw, in, out) with output channel i < in also passing input channel i
    straight through (a 1 at the kernel's centre), as PyTorch's dirac_ init on the first
    `in` outputs, added to the random init."""
    kh, kw, cin, cout = kernel.shape
    out = kernel.copy()
    for i in range(min(cin, cout)):
        out[:, :, i, i] = 0.0
        out[kh // 2, kw // 2, i, i] = 1.0
    return out


def _conv_steps(spec: Spec) -> list[dict]:
    """The options of every conv step in the order the builder makes them (residual blocks opened)."""
    steps = []
    for kind, options in spec:
        if kind == "residual":
            steps += _conv_steps(options["steps"])
        elif kind.startswith("conv_"):
            steps.append(options)
    return steps


def initialise_from_data(
    model, arch: str, dataset: str, x_train: np.ndarray, residual: bool = False, separable: bool = False
) -> None:
    """Apply the inits the architecture's spec (with its switches) asks for: the whitening stem from
    the first WHITEN_IMAGES training images (uint8), dirac on the plain convs marked `dirac` (a
    separable conv has no one kernel to make an identity of)."""
    import keras

    spec = switched_spec(architecture_spec(arch, dataset), residual, separable)
    for number, options in enumerate(_conv_steps(spec), start=1):
        if options.get("dirac") and not options.get("separable"):
            layer = model.get_layer(f"conv{number}")  # the builder names its convs conv1, conv2, ... in spec order
            kernel, *rest = layer.get_weights()
            layer.set_weights([dirac_identity(kernel), *rest])
    if any(kind == "whiten_stem" for kind, _ in spec):
        stem = model.get_layer(WHITEN_LAYER)
        sample = np.asarray(x_train[:WHITEN_IMAGES])
        if sample.ndim == 3:
            sample = sample[..., None]
        # The stem sees what the model's rescaling layer gives it, so whiten that.
        rescaled = keras.ops.convert_to_numpy(model.get_layer("rescale1")(sample.astype(np.float32)))
        kernel = patch_whitening_kernel(rescaled, stem.kernel_size[0], stem.filters)
        stem.set_weights([kernel, np.zeros(stem.filters, np.float32)])
