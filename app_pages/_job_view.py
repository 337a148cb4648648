"""How a training job looks on the Train page: progress, Stop and the learning-rate control while it
runs, its outcome when it has ended, and its curves. Pure display of a cnn_core.service.jobs.JobSnapshot."""

import pandas as pd
import streamlit as st

from app_pages._common import download_buttons, runs_are_ephemeral
from app_pages._history_view import epoch_replay
from app_pages._lr_view import lr_chart, lr_controls
from cnn_core.base.store import runs_store
from cnn_core.data.datasets import dataset_info
from cnn_core.service.curves import DEFAULT_SMOOTHING, curve_rows
from cnn_core.train.cards import STATUS_NOTHING_SAVED


def show_job(snap, jobs, owner: str) -> None:
    """One job's state; `owner` is this tab's token (only the tab that started a run may stop it)."""
    if snap.active:
        _running(snap, jobs, owner)
    else:
        _ended(snap)
    if snap.batches or snap.epochs:
        _curves(snap)
    elif snap.active:
        st.caption("Curves appear with the first batches.")
    if snap.name and (snap.epochs or not snap.active):
        with st.expander("Epoch by epoch: confusion matrix, filters and feature maps", expanded=not snap.active):
            epoch_replay(runs_store(), snap.name, dataset_info(snap.config["dataset"]).class_names, key="train_replay")


def _running(snap, jobs, owner):
    st.subheader(f"Training `{snap.name or '…'}`")
    b = snap.last_batch
    st.progress(
        snap.progress or 0.0,
        text="Starting the training process, preparing data and building the model…"
        if b is None
        else (
            f"Epoch {b['epoch']}/{b['epochs']} · batch {b['step']}/{b['steps']} · loss {b['loss']:.4f} · accuracy "
            f"{b['accuracy']:.2%} · lr {b['lr']:.2e} · {b['images_per_sec']:.0f} img/s · ETA {b['eta']:.0f} s"
        ),
    )
    if not jobs.is_owner(snap.job_id, owner):
        st.caption(
            "This run was started from another browser tab; only that tab can stop it or change its learning rate."
        )
    elif snap.state == "stopping":
        st.info("Stopping at the next batch; the best model so far is kept.")
    elif st.button("⏹ Stop", key="stop", help="Stop at the next batch and keep the best model"):
        jobs.stop(snap.job_id, owner)
        st.rerun()
    else:
        lr_controls(snap, jobs, owner)


def _ended(snap):
    if snap.state == "failed":
        st.error(snap.error)
    elif snap.result_status == STATUS_NOTHING_SAVED:
        st.warning(snap.message)
    elif snap.message:
        st.success(snap.message)
        st.page_link("app_pages/results.py", label=f"See `{snap.name}` on the Results page", icon="📊")
        if runs_are_ephemeral():
            st.warning("This server keeps runs in a temporary folder: they are lost when it restarts. Download them:")
            download_buttons(runs_store(), snap.name)


def _curves(snap):
    """Loss and accuracy per batch (faint), smoothed, and each epoch's validation point, on one x axis in epochs."""
    smoothing = st.session_state.get("curve_smoothing", DEFAULT_SMOOTHING)
    frame = pd.DataFrame(curve_rows(snap.batches, snap.epochs, smoothing=smoothing))
    left, right = st.columns(2)
    for col, metric, title in ((left, "loss", "Loss"), (right, "accuracy", "Accuracy")):
        rows = frame[frame["metric"] == metric] if len(frame) else frame
        if len(rows):
            col.vega_lite_chart(rows, _metric_spec(title), width="stretch")
    st.slider(
        "Smoothing",
        0.0,
        0.99,
        DEFAULT_SMOOTHING,
        0.01,
        key="curve_smoothing",
        help="Weight of the past in the moving average drawn over the per-batch points.",
    )
    lr_chart(snap)


def _metric_spec(title: str) -> dict:
    """Per-batch values faint, the smoothed line over them, validation points: a plain Vega-Lite spec, as
    Altair's would be, without its schema check (≈ 30 ms a chart, three charts every second while a run trains)."""
    encoding = {
        "x": {"field": "x", "type": "quantitative", "title": "Epoch"},
        "y": {"field": "value", "type": "quantitative", "title": title, "scale": {"zero": False}},
        "color": {
            "field": "series",
            "type": "nominal",
            "title": None,
            "scale": {"domain": ["batch", "smoothed", "validation"], "range": ["#9ecae9", "#1f77b4", "#ff7f0e"]},
        },
    }
    marks = {
        "batch": {"type": "line", "opacity": 0.6, "strokeWidth": 1},
        "smoothed": {"type": "line", "strokeWidth": 2},
        "validation": {"type": "line", "point": True},
    }
    return {
        "layer": [
            {"transform": [{"filter": f"datum.series == '{series}'"}], "mark": mark, "encoding": encoding}
            for series, mark in marks.items()
        ]
    }
