"""Figures (matplotlib/seaborn), each returned as a Figure for the app, the CLI or a notebook.

Colour maps are colour-blind safe (cividis, and blue/orange for good/bad);
every chart labels its axes.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot

import matplotlib.pyplot as plt
import numpy as np

GOOD, BAD = "#0072B2", "#D55E00"  # Okabe-Ito blue / vermillion: distinguishable for colour-blind eyes
TRAIN, VAL = "#0072B2", "#E69F00"


def training_curves(history: list[dict], title: str | None = None):
    """Loss and accuracy per epoch, training vs validation."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    epochs = [h["epoch"] for h in history]
    for ax, key, label in ((ax_loss, "loss", "Loss"), (ax_acc, "accuracy", "Accuracy")):
        ax.plot(epochs, [h[key] for h in history], "o-", color=TRAIN, label="training")
        val = [h.get(f"val_{key}") for h in history]
        if any(v is not None for v in val):
            ax.plot(epochs, [np.nan if v is None else v for v in val], "s--", color=VAL, label="validation")
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
        if epochs:
            ax.set_xticks(epochs if len(epochs) <= 15 else epochs[:: max(1, len(epochs) // 10)])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def image_grid(images, titles=None, correct=None, ncols: int = 8, size: float = 1.3, title: str | None = None):
    """A grid of images; with `correct`, titles are coloured blue (right) or vermillion (wrong)."""
    images = list(images)
    n = max(1, len(images))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.35)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        img = np.asarray(images[i])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        if titles is not None:
            color = "black" if correct is None else (GOOD if correct[i] else BAD)
            ax.set_title(titles[i], fontsize=8, color=color)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def sample_predictions(samples: list[dict], class_names, ncols: int = 6):
    """Test images with 'predicted (confidence)' titles, ✓/✗ for right/wrong."""
    titles = [
        f"{'✓' if s['pred'] == s['true'] else '✗'} {class_names[s['pred']]} {s['confidence']:.0%}"
        + ("" if s["pred"] == s["true"] else f"\ntrue: {class_names[s['true']]}")
        for s in samples
    ]
    return image_grid(
        [s["image"] for s in samples], titles, [s["pred"] == s["true"] for s in samples], ncols=ncols, size=1.6
    )


def augmentation_examples(originals, views_per_original, ncols: int | None = None):
    """Each row: an original image, then its augmented views."""
    rows = [[o, *v] for o, v in zip(originals, views_per_original, strict=False)]
    ncols = ncols or len(rows[0])
    images = [img for row in rows for img in row]
    titles = [("original" if j == 0 else f"view {j}") for row in rows for j in range(len(row))]
    return image_grid(images, titles, ncols=ncols, size=1.3)


def probability_bars(probs, class_names, title: str | None = None):
    """Horizontal bars of every class probability, the top class highlighted."""
    probs = np.asarray(probs)
    fig, ax = plt.subplots(figsize=(5, 0.32 * len(class_names) + 0.8))
    order = np.arange(len(class_names))[::-1]
    colors = [BAD if i == probs.argmax() else GOOD for i in order]
    ax.barh([class_names[i] for i in order], probs[order], color=colors)
    ax.set_xlim(0, 1)
    ax.set_xlabel("Probability")
    ax.set_ylabel("Class")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
