"""The Train page's New run form around the recipe choices: the numbers (epochs, batch size, learning rate,
seed, number format, training images) within the server's caps, and the notes shown above Start. The
defaults and the caps are cnn_core's (cnn_core.train.recipes, cnn_core.service.jobs)."""

import streamlit as st

from app_pages._common import URL, runs_are_ephemeral
from cnn_core.data.datasets import DATASETS, dataset_available
from cnn_core.nets.precision import PRECISIONS, precision_choice_help
from cnn_core.train.recipes import lr_for_batch, lr_is_peak


def run_numbers(defaults: dict, k: str, caps) -> tuple:
    """The run's numbers as the widgets hold them: (epochs, batch size, learning rate, seed, number format,
    training images); `k` keys them per dataset and recipe, so their defaults follow the recipe."""
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input(
        "Epochs",
        1,
        caps.max_epochs,
        min(defaults["epochs"], 3, caps.max_epochs),
        key=f"epochs_{k}",
        bind=URL,
        help=f"Recipe default {defaults['epochs']}; this server allows up to {caps.max_epochs}.",
    )
    batches, batch_default = caps.batch_size_choices(defaults["batch_size"])
    batch_size = c2.selectbox(
        "Batch size",
        batches,
        index=batches.index(batch_default),
        key=f"bs_{k}",
        bind=URL,
        help=f"Recipe default {defaults['batch_size']}"
        + (f"; this server allows up to {caps.max_batch_size}." if caps.max_batch_size else "."),
    )
    lr = c3.number_input(
        "Learning rate" + (" (peak)" if lr_is_peak(defaults) else ""),
        min_value=1e-5,
        max_value=5.0,
        value=float(lr_for_batch(defaults, batch_size)),
        format="%.4f",
        key=f"lr_{k}_{batch_size}",
        bind=URL,
        help=f"Recipe default {defaults['lr']:g} for batches of {defaults['batch_size']}"
        + (", in proportion for other batch sizes." if defaults.get("lr_scales_with_batch") else "."),
    )
    seed = c4.number_input("Seed", 0, 2**31 - 1, 0, key=f"seed_{k}", bind=URL)
    precision = st.radio(
        "Number format",
        PRECISIONS,
        index=PRECISIONS.index(defaults["precision"]),
        horizontal=True,
        key=f"precision_{k}",
        bind=URL,
        help=precision_choice_help(),
    )
    subset = st.slider(
        "Training images (a subset trains faster)",
        500,
        caps.subset_limit,
        caps.subset_limit,
        step=500,
        key=f"subset_{k}",
        bind=URL,
        help="Class-balanced subset of the training split. "
        + (
            f"This server allows up to {caps.max_subset:,} images per run."
            if caps.max_subset
            else "Use the maximum for all."
        ),
    )
    return epochs, batch_size, lr, seed, precision, subset


def start_notes(dataset: str, active: bool) -> None:
    """What pressing Start will do here: download the data, keep the run only until a restart, or wait."""
    if not dataset_available(dataset):
        st.info(
            f"The {DATASETS[dataset].title} data is not on this server. When you press Start it is downloaded "
            f"through `keras.datasets` (needs internet). Offline, put `{dataset}.npz` in a folder and start the app "
            "with `CNN_DATA_DIR=that/folder`."
        )
    if runs_are_ephemeral():
        st.caption(
            "Runs are saved in a temporary folder on this server and are lost when it restarts; "
            "download buttons appear when a run ends."
        )
    if active:
        st.caption("A run is in progress on this server (one at a time); Start is available again when it ends.")
