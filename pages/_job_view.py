"""How a training job looks on the Train page: progress, Stop and the learning-rate control while it
runs, its outcome when it has ended, and its curves. Pure display of a cnn_core.jobs.JobSnapshot."""

import pandas as pd
import streamlit as st

from cnn_core.cards import STATUS_NOTHING_SAVED
from cnn_core.store import runs_store
from pages._common import download_buttons, runs_are_ephemeral
from pages._lr_view import lr_chart, lr_controls


def show_job(snap, jobs, owner: str) -> None:
    """One job's state; `owner` is this tab's token (only the tab that started a run may stop it)."""
    if snap.active:
        _running(snap, jobs, owner)
    else:
        _ended(snap)
    if snap.epochs:
        _curves(snap)
    elif snap.active:
        st.caption("Curves appear after the first epoch.")


def _running(snap, jobs, owner):
    st.subheader(f"Training `{snap.name or '…'}`")
    b = snap.last_batch
    st.progress(snap.progress or 0.0, text="Preparing data and building the model…" if b is None else (
        f"Epoch {b['epoch']}/{b['epochs']} · batch {b['step']}/{b['steps']} · loss {b['loss']:.4f} · accuracy "
        f"{b['accuracy']:.2%} · lr {b['lr']:.2e} · {b['images_per_sec']:.0f} img/s · ETA {b['eta']:.0f} s"))
    if not jobs.is_owner(snap.job_id, owner):
        st.caption("This run was started from another browser tab; only that tab can stop it or change its "
                   "learning rate.")
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
        st.page_link("pages/results.py", label=f"See `{snap.name}` on the Results page", icon="📊")
        if runs_are_ephemeral():
            st.warning("This server keeps runs in a temporary folder: they are lost when it restarts. Download them:")
            download_buttons(runs_store(), snap.name)


def _curves(snap):
    frame = pd.DataFrame(snap.epochs).set_index("epoch").rename(columns={"loss": "training", "val_loss": "validation"})
    left, right = st.columns(2)
    left.line_chart(frame[[c for c in ("training", "validation") if frame[c].notna().any()]], x_label="Epoch",
                    y_label="Loss")
    acc = frame[["accuracy", "val_accuracy"]].rename(columns={"accuracy": "training", "val_accuracy": "validation"})
    right.line_chart(acc[[c for c in acc if acc[c].notna().any()]], x_label="Epoch", y_label="Accuracy")
    lr_chart(snap)
