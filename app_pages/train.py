"""Train: choose a dataset, recipe and hyperparameters; start, watch live per-batch curves, stop. The run
trains in its own lower-priority process (cnn_core.service.jobs); a refresh or a second tab reconnects to it."""

import time

import streamlit as st

from app_pages._common import URL, from_link, get_jobs, into_link, owner_token, runs_are_ephemeral
from app_pages._history_view import probe_choice
from app_pages._job_view import show_job
from app_pages._recipe_view import augmentation, improvements
from cnn_core.base.errors import CnnError
from cnn_core.base.runtime import machine_info
from cnn_core.data.datasets import DATASETS, dataset_available
from cnn_core.nets.models import ARCHITECTURES
from cnn_core.nets.precision import PRECISIONS, precision_choice_help
from cnn_core.service.jobs import ServerCaps
from cnn_core.studio.benchmark_figures import recipe_time_label, recipe_times
from cnn_core.train.recipes import FIRST_RECIPE, default_config, lr_for_batch, lr_is_peak, recipe_names, resolve_config

st.title("🏋️ Train a model")
try:  # caps and the training process's setting (README → Deploy); the server's jobs refuse runs beyond the caps too
    caps, jobs = ServerCaps.from_env(), get_jobs()
except CnnError as err:
    st.error(str(err))
    st.stop()
owner, snap = owner_token(), jobs.snapshot()
active = bool(snap and snap.active)


@st.fragment(run_every=1.0 if active else None)
def live():
    now = jobs.snapshot()
    if now is not None:
        show_job(now, jobs, owner)
    if active and now is not None and not now.active:
        st.rerun()  # the run ended: redraw the whole page (form enabled again)


live()
st.divider()
st.subheader("New run")
c1, c2 = st.columns(2)
dataset = c1.selectbox("Dataset", list(DATASETS), format_func=lambda d: DATASETS[d].title, key="dataset", bind=URL)
times = recipe_times(dataset, machine_info())  # measured on this CPU, or on the most alike one
arch = into_link(
    "recipe",
    c2.selectbox(
        "Architecture and recipe",
        recipe_names(),
        index=from_link("recipe", recipe_names(), recipe_names().index(FIRST_RECIPE)),
        key="arch",
        format_func=lambda a: " · ".join(filter(None, (a, recipe_time_label(a, times)))),
    ),
)
st.caption(ARCHITECTURES[arch].description)
defaults, k = default_config(dataset, arch), f"{dataset}_{arch}"  # keys per choice: defaults follow the recipe
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
augment, switches = augmentation(dataset, defaults, k), improvements(defaults, k)
name = (
    st.text_input(
        "Run name (optional)",
        key="run_name",
        placeholder=f"{dataset}_{arch}_<date-time>",
        help="Letters, digits, '_' and '-'.",
    ).strip()
    or None
)
probe = probe_choice(dataset)
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
if st.button("▶ Start training", type="primary", disabled=active, key="start"):
    try:
        jobs.start(
            resolve_config(
                dataset,
                arch,
                epochs=int(epochs),
                batch_size=int(batch_size),
                lr=float(lr),
                seed=int(seed),
                subset=caps.subset_for(subset),
                augment=augment,
                precision=precision,
                switches=switches,
            ),
            name,
            owner,
            probe=probe,
        )
    except CnnError as err:
        st.error(str(err))
    else:
        time.sleep(0.3)  # let the worker publish its first state before the redraw
        st.rerun()
