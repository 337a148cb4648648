"""Adversarial examples: the smallest nudges to every pixel that change the network's answer.

FGSM (Goodfellow et al., 2015) moves each pixel by ε (a share of the 0..255 range) in the direction that
raises the loss of the current answer: one gradient, one step. PGD (Madry et al., 2018) takes several
smaller such steps, each time projected back to within ε of the original, and finds changes FGSM misses.
The gradient is the float32 Keras model's; the answer is the Predictor's (with its test-time
augmentation), so "changes the answer" means what the app would show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnn_core.base.errors import ConfigError

MAX_EPSILON = 0.5  # beyond half the pixel range the picture is no longer itself
PGD_STEPS = 10


def loss_gradient(model, x: np.ndarray, label: int) -> np.ndarray:
    """d(cross-entropy of `label`)/d(input) for one float picture in 0..255 (shape of a sample)."""
    import tensorflow as tf

    picture = np.asarray(x, np.float32)
    batch = tf.convert_to_tensor(picture[None] if picture.ndim == 3 else picture[None, ..., None])  # grey: + channel
    with tf.GradientTape() as tape:
        tape.watch(batch)
        probs = model(batch, training=False)
        loss = -tf.math.log(tf.cast(probs[0, label], tf.float32) + 1e-12)
    grad = tape.gradient(loss, batch)[0].numpy()
    return grad if x.ndim == 3 else grad[..., 0]


def _check(epsilon: float) -> None:
    if not 0 <= epsilon <= MAX_EPSILON:
        raise ConfigError(f"ε must be between 0 and {MAX_EPSILON} of the pixel range (got {epsilon}).")


def fgsm(model, sample: np.ndarray, epsilon: float, label: int) -> np.ndarray:
    """The picture moved by ε·255 per pixel against `label` (float32, clipped to 0..255)."""
    _check(epsilon)
    x = np.asarray(sample, np.float32)
    return np.clip(x + epsilon * 255 * np.sign(loss_gradient(model, x, label)), 0, 255)


def pgd(model, sample: np.ndarray, epsilon: float, label: int, steps: int = PGD_STEPS) -> np.ndarray:
    """Projected gradient descent: `steps` steps of 2.5·ε/steps, each kept within ε of the original."""
    _check(epsilon)
    original = np.asarray(sample, np.float32)
    x, bound, step = original.copy(), epsilon * 255, 2.5 * epsilon * 255 / steps
    for _ in range(steps):
        x = x + step * np.sign(loss_gradient(model, x, label))
        x = np.clip(np.clip(x, original - bound, original + bound), 0, 255)
    return x


@dataclass
class Attack:
    epsilon: float
    picture: np.ndarray  # float32 0..255
    probs: np.ndarray

    @property
    def answer(self) -> int:
        return int(np.argmax(self.probs))


def attack(predictor, sample: np.ndarray, epsilon: float, method: str = "fgsm") -> Attack:
    """The perturbed picture and the Predictor's probabilities for it, against its current answer."""
    label = int(np.argmax(predictor.predict_samples(np.asarray(sample)[None])[0]))
    if method not in ("fgsm", "pgd"):
        raise ConfigError(f"Unknown attack '{method}': choose fgsm or pgd.")
    picture = (fgsm if method == "fgsm" else pgd)(predictor.model, sample, epsilon, label)
    return Attack(epsilon, picture, predictor.predict_samples(picture[None])[0])


def smallest_flip(predictor, sample: np.ndarray, method: str = "fgsm", tolerance: float = 0.002) -> Attack | None:
    """The smallest ε (to `tolerance`) at which the attack changes the Predictor's answer, found by
    bisection; None when even MAX_EPSILON does not."""
    first = int(np.argmax(predictor.predict_samples(np.asarray(sample)[None])[0]))
    worst = attack(predictor, sample, MAX_EPSILON, method)
    if worst.answer == first:
        return None
    low, high, found = 0.0, MAX_EPSILON, worst
    while high - low > tolerance:
        middle = (low + high) / 2
        trial = attack(predictor, sample, middle, method)
        if trial.answer != first:
            high, found = middle, trial
        else:
            low = middle
    return found
