"""Streamlit glue shared by the pages: cached resources and small view helpers.

Everything heavy lives in cnn_core; this module only caches it per server and
draws it.
"""

from __future__ import annotations

import secrets
import time

import numpy as np
import streamlit as st

from cnn_core.errors import CnnError
from cnn_core.ood import is_out_of_distribution
from cnn_core.store import all_stores, find_model, runs_store
from cnn_core.training import display_status

LOW_CONFIDENCE = 0.6  # below this top-class probability the app says the model is unsure


def keep_keras_state_between_reruns() -> None:
    """Stop Streamlit from calling keras.backend.clear_session() after every script run.

    Streamlit does that for every session's every rerun (a workaround from TF1-era Keras). With
    Keras 3 it runs Python's garbage collector and drops TensorFlow's kernel caches: measured
    here at ~200 ms per rerun, and the next prediction then takes ~33 ms instead of ~3 ms. Under
    20 concurrent visitors it was the largest single cost in the server (py-spy). The app caches
    its models across reruns on purpose and builds no models in scripts, so it needs no reset.
    Matplotlib's cleanup is kept. Streamlit looks the function up at call time, so replacing it
    on its module is enough; if a future Streamlit renames it, this does nothing."""
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:
        return
    if getattr(script_runner._clean_problem_modules, "keeps_keras", False):
        return

    def close_pyplot_figures() -> None:
        import sys

        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close("all")

    close_pyplot_figures.keeps_keras = True
    if hasattr(script_runner, "_clean_problem_modules"):
        script_runner._clean_problem_modules = close_pyplot_figures


def _use_app_navigation() -> None:
    """Streamlit treats an app with a `pages/` folder as an old-style (v1) multipage app until
    app.py's st.navigation has run once. A deep link (say /draw) opened first on a fresh server
    would then run the page alone, under an auto-generated sidebar. Leave that mode and rerun:
    app.py then runs, declares the pages and opens the same page (same URL path)."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a future Streamlit without the v1 mode
        return
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


@st.cache_resource(show_spinner="Warming up: loading TensorFlow and the model…")
def _load_predictor(name: str, version: float):
    from cnn_core.inference import load_predictor

    return load_predictor(name)


def get_predictor(name: str):
    """A loaded model, once per server; reloaded when its files change."""
    store = find_model(name)
    return _load_predictor(name, store.model_path(name).stat().st_mtime)


def get_ensemble(names: list[str], tta: bool):
    """Cached models combined: one Predictor averaging `names`, with TTA on or off."""
    from cnn_core.inference import ensemble_of

    return ensemble_of([get_predictor(n) for n in names], tta)


def prediction_options(predictor, dataset: str, key: str):
    """Expander with flip TTA and ensemble choices; returns the Predictor to use."""
    others = [c["name"] for c in catalogue(dataset) if c["name"] != predictor.name and c.get("test_accuracy")]
    with st.expander("Options: test-time augmentation and ensembles"):
        tta = st.toggle("Flip test-time augmentation (average the image and its mirror)", value=predictor.tta,
                        key=f"{key}_tta", help="Recommended for models trained with flips; the card says which.")
        extra = st.multiselect("Average with other models (ensemble)", others, key=f"{key}_ensemble") if others \
            else []
        if not others:
            st.caption("Train another model for this dataset to build an ensemble.")
    if tta == predictor.tta and not extra:
        return predictor
    return get_ensemble([predictor.name, *extra], tta)


@st.cache_resource
def get_jobs():
    from cnn_core.jobs import ServerCaps, TrainingJobs

    return TrainingJobs(caps=ServerCaps.from_env())


@st.cache_data(max_entries=64, show_spinner=False)
def _store_cards(root: str, kind: str, stamp: tuple, _store) -> list[dict]:
    """The readable cards of one store. Cached per server and keyed on the card files' names and
    modification times, so every rerun of every visitor does not re-read and re-parse them."""
    rows = []
    for name in _store.names():
        try:
            rows.append({**_store.load_card(name), "name": name, "store": kind})
        except CnnError:
            continue
    return rows


def catalogue(dataset: str | None = None) -> list[dict]:
    """Cards of every saved model (shipped first), optionally for one dataset."""
    rows = []
    for store in all_stores():
        try:
            stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(store.root.glob("*.json")))
        except OSError:  # a file vanished while listing: read without the cache
            stamp = (time.time(),)
        for card in _store_cards(str(store.root), store.kind, stamp, store):
            if dataset and card.get("dataset") != dataset:
                continue
            # Outside the cache: a run's process can die without its card changing.
            rows.append({**card, "display_status": display_status(card)})
    return rows


def model_picker(label: str, dataset: str | None, key: str, help: str | None = None) -> str | None:
    """Select box of models for a dataset; the best shipped model first. None (with a message) when there are none."""
    rows = [r for r in catalogue(dataset) if r.get("test_accuracy") is not None or r["store"] == "runs"]
    # The most accurate shipped model is the default; the user's own runs follow in name order.
    rows.sort(key=lambda r: (r["store"] != "shipped", -(r.get("test_accuracy") or 0) if r["store"] == "shipped" else 0))
    if not rows:
        st.warning("No model is available for this page yet. Train one on the **Train** page.")
        return None
    names = [r["name"] for r in rows]
    labels = {r["name"]: f"{r['name']} · {r['store']}" + (f" · {r['test_accuracy']:.2%}" if r.get("test_accuracy")
                                                          else "") for r in rows}
    wanted = st.query_params.get("model")
    index = names.index(wanted) if wanted in names else 0
    return st.selectbox(label, names, index=index, format_func=labels.get, key=key, help=help)


def owner_token() -> str:
    """Identifies this browser tab across refreshes (kept in the URL), so only the tab
    that started a training run can stop it."""
    token = st.session_state.get("owner") or st.query_params.get("tab")
    if not token:
        token = secrets.token_urlsafe(12)
    st.session_state["owner"] = token
    if st.query_params.get("tab") != token:
        st.query_params["tab"] = token
    return token


def show_probabilities(probs: np.ndarray, class_names, top: int | None = None):
    """All class probabilities as a labelled bar chart (highest first)."""
    import pandas as pd

    order = np.argsort(probs)[::-1][:top] if top else np.argsort(probs)[::-1]
    frame = pd.DataFrame({"class": [class_names[i] for i in order], "probability": probs[order]})
    st.bar_chart(frame, x="class", y="probability", horizontal=True, sort=False, x_label="Class",
                 y_label="Probability", height=36 * len(order) + 60)


def confidence_note(probs: np.ndarray, class_names, ood: dict | None = None, what: str = "images"):
    """Say when a prediction should not be trusted: the picture looks like none of the classes
    (the model's calibrated out-of-distribution check), or the model hesitates between two."""
    best = int(np.argmax(probs))
    if is_out_of_distribution(probs, ood):
        st.warning(f"**This picture is unlikely to be any of the {len(class_names)} classes.** Its top probability "
                   f"({probs[best]:.0%}) is below {ood['threshold']:.0%}, which {ood['pass_rate']:.0%} of real "
                   f"{what} the model never trained on exceed. The guess above is probably meaningless.",
                   icon="⚠️")
    elif probs[best] < LOW_CONFIDENCE:
        second = int(np.argsort(probs)[-2])
        st.warning(f"The model is unsure: its best guess **{class_names[best]}** has only {probs[best]:.0%} "
                   f"(next: {class_names[second]}, {probs[second]:.0%}).")


def runs_are_ephemeral() -> bool:
    return runs_store().ephemeral


def upscale(sample: np.ndarray, size: int = 168) -> np.ndarray:
    """Nearest-neighbour enlargement so a 28×28 or 32×32 sample is visible pixel by pixel."""
    factor = max(1, size // sample.shape[0])
    return np.kron(sample, np.ones((factor, factor) + (1,) * (sample.ndim - 2), dtype=sample.dtype))


def show_figure(fig):
    """Render a matplotlib figure and free it (pyplot keeps every open figure otherwise)."""
    import matplotlib.pyplot as plt

    st.pyplot(fig)
    plt.close(fig)


# Last, after every name above is defined: the rerun this may raise aborts the import of this
# module, and a visitor's thread importing it at the same moment must never see it half-built
# (that showed as "cannot import name 'confidence_note'" with 20 visitors on a fresh server).
_use_app_navigation()
