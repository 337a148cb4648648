"""The Train page's recipe choices beyond the numbers: which augmentations, and which of the original
notebook's improvements to switch on. What each does and which recipes it can change are cnn_core's
(cnn_core.train.recipes, cnn_core.train.switches)."""

import streamlit as st

from app_pages._common import URL
from cnn_core.train.recipes import augment_choices
from cnn_core.train.switches import SWITCHES, available_switches, why_not

AUGMENTATIONS = (
    ("rotation", "Rotation ±{:.0f}°", "rot"),
    ("shift", "Shift ±{:.0%}", "shift"),
    ("zoom", "Zoom ±{:.0%}", "zoom"),
)


def augmentation(dataset: str, defaults: dict, k: str) -> dict:
    """A checkbox per transform, each on as the recipe has it; returns the recipe's `augment` dict."""
    st.markdown("**Augmentation**")
    on, strength = defaults["augment"], augment_choices(dataset)  # the value each transform takes when on
    cols, augment = st.columns(4), {}
    for col, (key, label, widget) in zip(cols, AUGMENTATIONS, strict=False):
        value = on[key] or strength[key]
        augment[key] = value if col.checkbox(label.format(value), bool(on[key]), key=f"{widget}_{k}", bind=URL) else 0.0
    augment["flip"] = cols[3].checkbox(
        "Horizontal flip",
        bool(on["flip"]),
        key=f"flip_{k}",
        bind=URL,
        help="Mirror images left/right. Off for digits: a mirrored 2 is not a 2.",
    )
    return augment


def improvements(defaults: dict, k: str) -> list[str]:
    """The original notebook's "improvements to try" this recipe can take, as a multiselect."""
    offered = available_switches(defaults)
    left_out = [f"{SWITCHES[name].title}: {why_not(defaults, name)}" for name in SWITCHES if name not in offered]
    chosen = st.multiselect(
        "Improvements to try (the original notebook's list)",
        offered,
        key=f"switches_{k}",
        bind=URL,
        format_func=lambda name: SWITCHES[name].title,
        placeholder="None: the recipe as it is",
        help="\n\n".join(
            [f"**{SWITCHES[name].title}**: {SWITCHES[name].description}" for name in offered]
            + [f"Not offered here. {line}" for line in left_out]
        ),
    )
    st.caption("Their measured effect on the original recipe is on the Compare page.")
    return chosen
