"""Streamlit glue shared by the pages: cached resources and small view helpers.

Every rule lives in cnn_core; this module only caches it per server and draws it.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import time

import numpy as np
import streamlit as st

from cnn_core.base.store import find_model, runs_store
from cnn_core.predict.inference import is_unsure, load_ensemble, top_k, tta_level, tta_levels, tta_passes
from cnn_core.predict.ood import WHAT_IT_IS_NOT
from cnn_core.studio import catalog
from cnn_core.studio.benchmark_figures import best_ensemble, ood_figures

# Widgets bound to the address (Streamlit's `bind`, the widget's key is the parameter's name): a copied
# link restores the view, the Train page's settings included. The owner's token is not among them.
URL = "query-params"


@st.cache_resource(show_spinner="Warming up: loading TensorFlow and the model…")
def _load_predictor(name: str, version: float, keras: bool):
    from cnn_core.predict.inference import load_predictor

    return load_predictor(name, calibrated=True, keras=keras)  # probabilities with the card's temperature scaling


def get_predictor(name: str, keras: bool = True):
    """A loaded model, once per server; reloaded when its files change. `keras` False: for pages that only
    predict (Draw, Photo), which then run from the model's committed LiteRT file without TensorFlow."""
    return _load_predictor(name, find_model(name).model_path(name).stat().st_mtime, keras)


def get_served_predictor(name: str):
    """A loaded model for predictions alone (see get_predictor)."""
    return get_predictor(name, keras=False)


def best_ensemble_toggle(dataset: str, key: str):
    """A switch to the most accurate measured ensemble of shipped models (None when off or none)."""
    shipped = {r["name"] for r in catalogue(dataset) if r["store"] == "shipped"}
    best = best_ensemble(dataset, shipped)
    if best is None:
        return None
    level = tta_level(best["tta"])
    passes = len(best["models"]) * tta_passes(level, dataset)
    if not st.toggle(
        f"Most accurate: {' + '.join(best['models'])} ({best['accuracy']:.2%} on the test set)",
        key=f"{key}_best_ensemble",
        help=f"Averages these shipped models, each with test-time augmentation {tta_levels(dataset)[level]}: "
        f"{passes} passes per image instead of one, so slower "
        "(measured by benchmarks.tta_ensembles).",
    ):
        return None
    return load_ensemble(best["models"], level, load=get_served_predictor)


TTA_HELP = (
    "Average the prediction over the image and its mirror image (flip, 2 passes), and also over both "
    "shifted by one pixel (6 passes). Recommended for models trained with flips and shifts."
)
SHIFT_TTA_HELP = (
    "Average the prediction over the drawing and its four one-pixel shifts (5 passes), or all nine "
    "positions around it (9 passes). Never mirrored: a mirrored 2 is no digit."
)


def prediction_options(predictor, dataset: str, key: str):
    """The switch to the best measured ensemble, then an expander with the TTA level and ensemble
    choices; returns the Predictor to use."""
    best = best_ensemble_toggle(dataset, key)
    if best is not None:
        return best
    others = catalog.ensemble_partners(catalogue(dataset), predictor.name)
    with st.expander("Options: test-time augmentation and ensembles"):
        levels = tta_levels(predictor.info)
        tta = st.radio(
            "Test-time augmentation",
            list(levels),
            index=predictor.tta,
            format_func=levels.get,
            key=f"{key}_tta_{predictor.name}",
            horizontal=True,  # each model starts at its card's
            help=(TTA_HELP if predictor.info.mirrorable else SHIFT_TTA_HELP)
            + " The model's card gives the level it was measured with.",
        )
        extra = st.multiselect("Average with other models (ensemble)", others, key=f"{key}_ensemble") if others else []
        if not others:
            st.caption("Train another model for this dataset to build an ensemble.")
    if tta == predictor.tta and not extra:
        return predictor
    return load_ensemble([predictor.name, *extra], tta, load=get_served_predictor)  # each member cached on its own


@st.cache_resource
def get_jobs():
    from cnn_core.service.jobs import ServerCaps, TrainingJobs, train_in_a_process

    return TrainingJobs(caps=ServerCaps.from_env(), isolate=train_in_a_process())


def catalogue(dataset: str | None = None) -> list[dict]:
    """cnn_core.studio.catalog.list_models, each store's cards read once per version of its card files."""
    return catalog.list_models(dataset, read_store=catalog.cached_store_cards)


def model_picker(label: str, dataset: str | None, key: str, help: str | None = None, prefer=None) -> str | None:
    """Select box of models for a dataset; the best shipped model first. None (with a message) when there are none.
    `prefer` (name -> bool): the page opens on the first model it accepts, where there is one."""
    rows = catalog.rank_for_choice(catalogue(dataset))
    if not rows:
        st.warning("No model is available for this page yet. Train one on the **Train** page.")
        return None
    names = [r["name"] for r in rows]
    labels = {r["name"]: catalog.choice_label(r) for r in rows}
    default = next((i for i, name in enumerate(names) if prefer(name)), 0) if prefer else 0
    chosen = st.selectbox(
        label, names, index=from_link("model", names, default), format_func=labels.get, key=key, help=help
    )
    return into_link("model", chosen)


def from_link(param: str, options: list[str], default: int) -> int:
    """The index of the option the address names (`?param=option`), else `default`. For choices whose labels
    carry measurements (a model's accuracy, a recipe's time on this CPU), which `bind` would put in the
    address and which differ from machine to machine; the address holds the plain name instead."""
    wanted = st.query_params.get(param)
    return options.index(wanted) if wanted in options else default


def into_link(param: str, value: str) -> str:
    """Write the choice into the address (see from_link); returns it."""
    if st.query_params.get(param) != value:
        st.query_params[param] = value
    return value


OWNER_COOKIE = "cnn_studio_owner"


def owner_token() -> str:
    """Identifies this browser across refreshes, so only the browser that started a training run can
    stop it or change its learning rate. Kept in a cookie, never in the address: a copied link (the
    address carries every setting, Streamlit's `bind`) must not hand the run over."""
    token = st.session_state.get("owner") or st.context.cookies.get(OWNER_COOKIE)
    if not token:
        token = secrets.token_urlsafe(12)
    if st.context.cookies.get(OWNER_COOKIE) != token and not st.session_state.get("owner_cookie_sent"):
        # The server reads cookies when a session connects: the next visit (a refresh) sends it back.
        st.html(
            f"<script>document.cookie = '{OWNER_COOKIE}={token}; path=/; max-age=604800; SameSite=Strict';</script>",
            unsafe_allow_javascript=True,
            width=1,
        )
        st.session_state["owner_cookie_sent"] = True
    st.session_state["owner"] = token
    return token


RERUN_LOG_ENV = "CNN_RERUN_LOG"


def logged_rerun(page: str):
    """Decorator: time the rerun a drawing or an upload starts, by the server's clock. Where CNN_RERUN_LOG names
    a file, each call appends one JSON line there (page, whether it had an input: the function's result, wall
    and this thread's CPU seconds, when it ended). For an operator watching a busy server, and for
    benchmarks/load.py."""

    def decorate(function):
        @functools.wraps(function)
        def timed():
            path = os.environ.get(RERUN_LOG_ENV)
            if not path:
                return function()
            wall, cpu, had_input = time.perf_counter(), time.thread_time(), None
            try:
                had_input = function()
                return had_input
            finally:  # also when the page moves on (st.rerun, st.switch_page raise)
                row = {
                    "page": page,
                    "input": bool(had_input),
                    "seconds": round(time.perf_counter() - wall, 4),
                    "cpu_seconds": round(time.thread_time() - cpu, 4),
                    "ended": time.time(),
                }
                with open(path, "a", encoding="utf-8") as log:  # one short append per line: never interleaved
                    log.write(json.dumps(row) + "\n")

        return timed

    return decorate


def show_probabilities(probs: np.ndarray, class_names, top: int | None = None):
    """All class probabilities as a labelled bar chart (highest first). A plain Vega-Lite spec: st.bar_chart
    builds and validates an Altair chart on every rerun, ten times the server time of sending the spec."""
    ranked = top_k(probs, class_names, top or len(probs))
    st.vega_lite_chart(
        [{"class": name, "probability": float(p)} for name, p in ranked],
        {
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {
                "y": {"field": "class", "type": "nominal", "sort": None, "title": "Class"},
                "x": {
                    "field": "probability",
                    "type": "quantitative",
                    "title": "Probability",
                    "scale": {"domain": [0, 1]},
                    "axis": {"format": ".0%"},
                },
            },
        },
        height=36 * len(ranked) + 60,
        width="stretch",
    )


def confidence_note(predictor, sample: np.ndarray, probs: np.ndarray):
    """Say when a prediction should not be trusted: the picture looks like none of the classes
    (the model's out-of-distribution detector, cnn_core.predict.ood), or the model hesitates between two."""
    (best, p_best), (second, p_second) = top_k(probs, predictor.info.class_names, 2)
    foreign = predictor.looks_foreign(sample[None])
    if foreign is not None and foreign[0]:
        st.warning(
            f"**{WHAT_IT_IS_NOT[predictor.info.name]}** What the network's layers make of it lies further "
            f"from everything it learnt than for {predictor.card['ood']['pass_rate']:.0%} of real "
            f"{predictor.info.title} it never trained on, so its guess (**{best}**, {p_best:.0%}) is "
            "probably meaningless.",
            icon="⚠️",
        )
    elif is_unsure(probs):
        st.warning(
            f"The model is unsure: its best guess **{best}** has only {p_best:.0%} (next: {second}, {p_second:.0%})."
        )


def ood_explainer(predictor) -> None:
    """What the "not one of these classes" check is, and how well it did in the committed benchmark."""
    ood = predictor.card.get("ood") or {}
    if predictor.detector is None:
        st.caption(
            "This model has no check for pictures that are none of its classes (it was trained without a "
            "validation split to calibrate one on)."
        )
        return
    row = ood_figures(predictor.name.split("+")[0], ood["threshold"])  # benchmarks.ood's row for this detector
    with st.expander("How the 'not one of these classes' warning works"):
        st.markdown(
            "A network always picks one of its classes, even for a face or a scribble. The warning looks "
            "at what every layer makes of the picture and how far that lies from the training images of "
            f"the nearest class; it fires when the picture is stranger than {ood['pass_rate']:.0%} of "
            f"real {predictor.info.title} the model never trained on (its {ood['calibrated_on']})."
        )
        if row:  # a plain table: a data grid is a heavy component for four rows, on two pages' first paint
            ind = row["in_distribution"]
            st.markdown(
                f"On the {ind['images']:,} test images it fires for **{ind['flagged']:.1%}** of them. How "
                "often it fires on pictures of other kinds, and how well it tells them apart (AUROC, "
                "1 = perfectly):"
            )
            st.table(
                [
                    {"pictures": label, "flagged": f"{b['flagged']:.0%}", "AUROC": round(b["auroc"], 3)}
                    for label, b in row["off_distribution"].items()
                ],
                hide_index=True,
                width="content",
            )
            st.caption(f"Measured by `{row['command']}` (commit {row['git_commit'][:12]}).")


def runs_are_ephemeral() -> bool:
    return runs_store().ephemeral


def download_buttons(store, name: str) -> None:
    """A download button for each of a model's files that exists (model, card, evaluation)."""
    for label, path in (
        ("model (.keras)", store.model_path(name)),
        ("card (.json)", store.card_path(name)),
        ("evaluation (.json)", store.eval_path(name)),
    ):
        if path.is_file():
            st.download_button(f"Download {label}", path.read_bytes(), file_name=path.name, key=f"dl_{path.name}")


def model_version(store, name: str) -> tuple:
    """When a model's files last changed (model, card, evaluation): what a view drawn from them is cached by."""
    return tuple(
        p.stat().st_mtime if p.is_file() else None
        for p in (store.model_path(name), store.card_path(name), store.eval_path(name))
    )


def upscale(sample: np.ndarray, size: int = 168) -> np.ndarray:
    """Nearest-neighbour enlargement so a 28×28 or 32×32 sample is visible pixel by pixel."""
    factor = max(1, size // sample.shape[0])
    return np.kron(sample, np.ones((factor, factor) + (1,) * (sample.ndim - 2), dtype=sample.dtype))


def show_figure(fig):
    """Render a matplotlib figure and free it (pyplot keeps every open figure otherwise)."""
    import matplotlib.pyplot as plt

    st.pyplot(fig)
    plt.close(fig)


# Streamlit scales a wider picture down to this on every rerun (its image_utils.MAXIMUM_CONTENT_WIDTH):
# a cached figure is stored at this width already, so a rerun only sends it.
WIDEST_PX = 1460


@st.cache_data(max_entries=32, show_spinner=False)
def _figure_png(key: tuple, _build) -> bytes:
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    fig = _build()
    try:
        png = io.BytesIO()
        fig.savefig(png, format="png", bbox_inches="tight", dpi=200)  # what st.pyplot does
    finally:
        plt.close(fig)
    picture = Image.open(png)
    if picture.width <= WIDEST_PX:
        return png.getvalue()
    smaller = io.BytesIO()
    picture.resize((WIDEST_PX, round(picture.height * WIDEST_PX / picture.width)), Image.BILINEAR).save(smaller, "PNG")
    return smaller.getvalue()


def show_cached_figure(key: tuple, build) -> None:
    """Show the matplotlib figure `build()` draws, drawn once per server for each `key` (which must name
    everything it depends on: the model and its files' versions, the choices). Matplotlib takes a good part
    of a second per figure; a page that draws several on every visit misses the 2 s first paint."""
    st.image(_figure_png(key, build), width="stretch", output_format="PNG")
