"""The Results page's tabs drawn from a model's card and its evaluation: sample predictions, training
curves and augmentation examples; the figures are cnn_core's (cnn_core.analysis.figures), cached per
model version."""

import streamlit as st

from app_pages._common import URL, show_cached_figure
from cnn_core.analysis import figures
from cnn_core.analysis.evaluation import decode_png
from cnn_core.data.augment import augmented_views


def sample_predictions(evaluation: dict, classes: list[str], name: str, version: float) -> None:
    """The evaluation's random test images with the model's answers."""
    show_cached_figure(
        ("samples", name, version),
        lambda: figures.sample_predictions(
            [{**s, "image": decode_png(s["image"])} for s in evaluation["samples"]], classes
        ),
    )
    st.caption("Random test images: ✓ correct (blue), ✗ wrong (vermillion), with the model's confidence.")


def training_curves(card: dict, name: str, version: float) -> None:
    """Accuracy and loss per epoch from the card's history, or why there are none."""
    history = card.get("history") or []
    if not history:
        st.info("No training history recorded.")
    else:
        show_cached_figure(("curves", name, version), lambda: figures.training_curves(history))
    if history and all(h.get("val_accuracy") is None for h in history):
        st.caption("This run trained on the full training set with a fixed schedule, so there is no validation curve.")


def augmentation_examples(card: dict, evaluation: dict | None, name: str, version: float) -> None:
    """The augmentation the run used, and a few test images as it would have seen them."""
    aug = {k: v for k, v in (card.get("augmentation") or {}).items() if v}
    st.markdown(
        "Augmentation used in training: " + ", ".join(f"{k} {v}" for k, v in aug.items())
        if aug
        else "No augmentation was used."
    )
    if aug and evaluation and evaluation.get("augment_sources"):
        originals = [decode_png(s) for s in evaluation["augment_sources"]]
        seed = int(st.number_input("Random seed", 0, 10_000, 0, key="aug_seed", bind=URL))
        show_cached_figure(
            ("augment", name, version, seed),
            lambda: figures.augmentation_examples(
                originals,
                [
                    augmented_views(o, card["dataset"], card["augmentation"], n=6, seed=seed + i)
                    for i, o in enumerate(originals)
                ],
            ),
        )
