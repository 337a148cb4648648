"""Train: choose a dataset, recipe and hyperparameters; start, watch live curves, stop.

The run trains in a worker thread of the server (cnn_core.jobs), so this page only
starts it and draws its progress; a refresh reconnects to it.
"""

import time

import pandas as pd
import streamlit as st

from cnn_core.datasets import DATASETS, dataset_available
from cnn_core.errors import CnnError
from cnn_core.jobs import ServerCaps
from cnn_core.models import ARCHITECTURES
from cnn_core.precision import PRECISIONS, precision_choice_help
from cnn_core.recipes import RECIPES, SEED_AUGMENT, resolve_config
from cnn_core.store import runs_store
from pages._common import get_jobs, owner_token, runs_are_ephemeral

st.title("🏋️ Train a model")
# Caps for public deployments (see README → Deploy); the server's jobs refuse runs beyond them too.
try:
    caps = ServerCaps.from_env()
except CnnError as err:
    st.error(str(err))
    st.stop()
MAX_EPOCHS, MAX_SUBSET, MAX_BATCH = caps.max_epochs, caps.max_subset, caps.max_batch_size
jobs = get_jobs()
owner = owner_token()


def progress_view():
    snap = jobs.snapshot()
    if snap is None:
        return
    if snap.active:
        st.subheader(f"Training `{snap.name or '…'}`")
        batch = snap.last_batch
        if batch is None:
            st.progress(0.0, text="Preparing data and building the model…")
        else:
            done = ((batch["epoch"] - 1) * batch["steps"] + batch["step"]) / (batch["epochs"] * batch["steps"])
            st.progress(min(done, 1.0), text=(
                f"Epoch {batch['epoch']}/{batch['epochs']} · batch {batch['step']}/{batch['steps']} · "
                f"loss {batch['loss']:.4f} · accuracy {batch['accuracy']:.2%} · {batch['images_per_sec']:.0f} img/s · "
                f"ETA {batch['eta']:.0f} s"))
        if jobs.is_owner(snap.job_id, owner):
            if snap.state == "stopping":
                st.info("Stopping at the next batch; the best model so far is kept.")
            elif st.button("⏹ Stop", key="stop", help="Stop at the next batch and keep the best model"):
                jobs.stop(snap.job_id, owner)
                st.rerun()
        else:
            st.caption("This run was started from another browser tab; only that tab can stop it.")
    else:
        if snap.state == "failed":
            st.error(snap.error)
        elif snap.result_status == "stopped_before_first_epoch":
            st.warning(snap.message)
        elif snap.message:
            st.success(snap.message)
            st.page_link("pages/results.py", label=f"See `{snap.name}` on the Results page", icon="📊")
            if runs_are_ephemeral():
                _downloads(snap.name)
    if snap.epochs:
        frame = pd.DataFrame(snap.epochs).set_index("epoch")
        left, right = st.columns(2)
        loss_cols = [c for c in ("loss", "val_loss") if frame[c].notna().any()]
        acc_cols = [c for c in ("accuracy", "val_accuracy") if frame[c].notna().any()]
        left.line_chart(frame[loss_cols].rename(columns={"loss": "training", "val_loss": "validation"}),
                        x_label="Epoch", y_label="Loss")
        right.line_chart(frame[acc_cols].rename(columns={"accuracy": "training", "val_accuracy": "validation"}),
                         x_label="Epoch", y_label="Accuracy")
    elif snap.active:
        st.caption("Curves appear after the first epoch.")


def _downloads(name: str):
    store = runs_store()
    st.warning("This server keeps runs in a temporary folder: they are lost when it restarts. Download them:")
    for label, path in (("model (.keras)", store.model_path(name)), ("card (.json)", store.card_path(name)),
                        ("evaluation (.json)", store.eval_path(name))):
        if path.is_file():
            st.download_button(f"Download {label}", path.read_bytes(), file_name=path.name, key=f"dl_{path.name}")


snap = jobs.snapshot()
active = bool(snap and snap.active)


@st.fragment(run_every=1.0 if active else None)
def live():
    progress_view()
    now = jobs.snapshot()
    if active and now is not None and not now.active:
        st.rerun()  # the run ended: redraw the whole page (form enabled again)


live()

st.divider()
st.subheader("New run")
c1, c2 = st.columns(2)
dataset = c1.selectbox("Dataset", list(DATASETS), format_func=lambda d: DATASETS[d].title, key="dataset")
arch = c2.selectbox("Architecture and recipe", list(ARCHITECTURES), key="arch",
                    format_func=lambda a: f"{a} — {ARCHITECTURES[a].description}")
defaults = resolve_config(dataset, arch)
k = f"{dataset}_{arch}"  # widget keys per choice, so defaults follow the recipe

c1, c2, c3, c4 = st.columns(4)
epochs = c1.number_input("Epochs", 1, MAX_EPOCHS, min(3, MAX_EPOCHS), key=f"epochs_{k}",
                         help=f"Recipe default {defaults['epochs']}; this server allows up to {MAX_EPOCHS}.")
batch_offered = {32, 64, 128, 256, 512, defaults["batch_size"]} | ({MAX_BATCH} if MAX_BATCH else set())
batch_choices = sorted(b for b in batch_offered if not MAX_BATCH or b <= MAX_BATCH)
batch_default = min(defaults["batch_size"], MAX_BATCH or defaults["batch_size"])
batch_size = c2.selectbox("Batch size", batch_choices, index=batch_choices.index(batch_default), key=f"bs_{k}",
                          help=f"Recipe default {defaults['batch_size']}"
                          + (f"; this server allows up to {MAX_BATCH}." if MAX_BATCH else "."))
lr = c3.number_input("Learning rate" + (" (peak)" if RECIPES[arch]["schedule"] == "onecycle" else ""),
                     min_value=1e-5, max_value=5.0, value=float(defaults["lr"]), format="%.4f", key=f"lr_{k}")
seed = c4.number_input("Seed", 0, 2**31 - 1, 0, key=f"seed_{k}")
precision = st.radio("Number format", PRECISIONS, index=PRECISIONS.index(defaults["precision"]), horizontal=True,
                     key=f"precision_{k}", help=precision_choice_help())

subset_cap = MAX_SUBSET or 60000
subset = st.slider("Training images (a subset trains faster)", 500, subset_cap, min(6000, subset_cap), step=500,
                   key=f"subset_{k}", help="Class-balanced subset of the training split. " + (
                       f"This server allows up to {MAX_SUBSET:,} images per run." if MAX_SUBSET
                       else "Use the maximum for all."))

st.markdown("**Augmentation**")
aug_defaults = defaults["augment"]
ref = SEED_AUGMENT[dataset]  # the value a transform gets when switched on
a1, a2, a3, a4 = st.columns(4)
augment = {
    "rotation": (aug_defaults["rotation"] or ref["rotation"]) if a1.checkbox(
        f"Rotation ±{aug_defaults['rotation'] or ref['rotation']:.0f}°", bool(aug_defaults["rotation"]),
        key=f"rot_{k}") else 0.0,
    "shift": (aug_defaults["shift"] or ref["shift"]) if a2.checkbox(
        f"Shift ±{(aug_defaults['shift'] or ref['shift']):.0%}", bool(aug_defaults["shift"]), key=f"shift_{k}") else 0.0,
    "zoom": (aug_defaults["zoom"] or ref["zoom"]) if a3.checkbox(
        f"Zoom ±{(aug_defaults['zoom'] or ref['zoom']):.0%}", bool(aug_defaults["zoom"]), key=f"zoom_{k}") else 0.0,
    "flip": a4.checkbox("Horizontal flip", bool(aug_defaults["flip"]), key=f"flip_{k}",
                        help="Mirror images left/right. Off for digits: a mirrored 2 is not a 2."),
}
name = st.text_input("Run name (optional)", key="run_name", placeholder=f"{dataset}_{arch}_<date-time>",
                     help="Letters, digits, '_' and '-'.").strip() or None

if not dataset_available(dataset):
    st.info(f"The {DATASETS[dataset].title} data is not on this server. When you press Start it is downloaded "
            f"through `keras.datasets` (needs internet). Offline, put `{dataset}.npz` in a folder and start the app "
            "with `CNN_DATA_DIR=that/folder`.")
if runs_are_ephemeral():
    st.caption("Runs are saved in a temporary folder on this server and are lost when it restarts; "
               "download buttons appear when a run ends.")

if active:
    st.caption("A run is in progress on this server (one at a time); Start is available again when it ends.")
if st.button("▶ Start training", type="primary", disabled=active, key="start"):
    try:
        config = resolve_config(dataset, arch, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
                                seed=int(seed), subset=None if subset >= subset_cap and not MAX_SUBSET else int(subset),
                                augment=augment, precision=precision)
        jobs.start(config, name, owner)
    except CnnError as err:
        st.error(str(err))
    else:
        time.sleep(0.3)  # let the worker publish its first state before the redraw
        st.rerun()
