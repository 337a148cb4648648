"""Confusion matrices drawn as Vega-Lite heatmaps: the Results page's clickable one (a click on a cell
lists that cell's test images) and the epoch replay's (cnn_core.train.snapshots). Plain specs, no Altair
schema check: the Train page redraws the replay's every second while a run trains."""

import numpy as np
import streamlit as st

from app_pages._common import URL, into_link, show_cached_figure
from cnn_core.analysis import figures
from cnn_core.analysis.evaluation import cell_items, most_confused_cell
from cnn_core.data.datasets import dataset_available, load_dataset

SHOWN = 32
ROW_PX = 30  # each row's height in the matrix
LABELS_PX = 110  # the predicted classes' names below it  # images listed for one cell; the rest are counted


def confusion_spec(cm: np.ndarray, classes: list[str], normalize: bool = True, clickable: bool = False) -> dict:
    """The matrix as a heatmap, rows true and columns predicted, coloured by each row's share (or by count),
    counts written in the cells; `clickable` adds the point selection `cell` that a click sets."""
    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True).clip(min=1)
    values = [
        {"true": classes[t], "predicted": classes[p], "share": float(cm[t, p] / rows[t, 0]), "count": int(cm[t, p])}
        for t in range(len(classes))
        for p in range(len(classes))
    ]
    colour = "share" if normalize else "count"
    order = list(classes)
    rect = {
        "mark": {"type": "rect", "cursor": "pointer"} if clickable else "rect",
        "encoding": {
            "color": {
                "field": colour,
                "type": "quantitative",
                "legend": None,
                "scale": {"scheme": "blues", **({"domain": [0, 1]} if normalize else {"type": "symlog"})},
            },
            "tooltip": [
                {"field": "true"},
                {"field": "predicted"},
                {"field": "count"},
                {"field": "share", "type": "quantitative", "format": ".1%", "title": "share of its row"},
            ],
        },
    }
    if clickable:
        rect["params"] = [{"name": "cell", "select": {"type": "point", "fields": ["true", "predicted"]}}]
        rect["encoding"]["strokeWidth"] = {"condition": {"param": "cell", "empty": False, "value": 3}, "value": 0}
        rect["encoding"]["stroke"] = {"value": "#d62728"}
    text = {
        "mark": {"type": "text", "fontSize": 10},
        "encoding": {
            "text": {
                "field": "count" if not normalize else "share",
                "type": "quantitative",
                **({} if not normalize else {"format": ".0%"}),
            },
            "color": {
                "condition": {
                    "test": f"datum.{colour} > {0.5 if normalize else float(cm.max()) / 4}",
                    "value": "white",
                },
                "value": "#333",
            },
        },
    }
    # Streamlit fits the whole chart, labels included, into the height: ROW_PX per class plus the labels.
    return {
        "data": {"values": values},
        "height": ROW_PX * len(classes) + LABELS_PX,
        "encoding": {
            "x": {"field": "predicted", "type": "nominal", "sort": order, "title": "Predicted class"},
            "y": {"field": "true", "type": "nominal", "sort": order, "title": "True class"},
        },
        "layer": [rect, text],
    }


def clicked_cell(event, classes: list[str]) -> tuple[int, int] | None:
    """(true, predicted) of the clicked cell, from the chart's selection event; None before any click."""
    picked = (event.selection.get("cell") if event else None) or []
    if not picked or picked[0].get("true") not in classes or picked[0].get("predicted") not in classes:
        return None
    return classes.index(picked[0]["true"]), classes.index(picked[0]["predicted"])


@st.cache_resource(max_entries=2, show_spinner="Reading the test images…")
def _test_images(dataset: str):
    return load_dataset(dataset).x_test


def confusion_explorer(evaluation: dict, classes: list[str], name: str, version: tuple) -> None:
    """The clickable matrix (counts or row-normalised) and, below, the images of the clicked cell
    (the most confused cell until the first click), most confident first. `version`: the model files'
    (app_pages._common.model_version), which the cell's picture is cached by."""
    cm = np.asarray(evaluation["confusion_matrix"])
    normalize = st.toggle(
        "Row-normalised",
        value=False,
        key="cm_norm",
        bind=URL,
        help="Colour each row by its share of the true class (off: by count)",
    )
    event = st.vega_lite_chart(
        confusion_spec(cm, classes, normalize, clickable=True),
        on_select="rerun",
        selection_mode="cell",
        key=f"cm_click_{name}_{normalize}",
        width="stretch",
    )
    chosen = clicked_cell(event, classes)
    if chosen:  # a shared address opens on the same cell
        into_link("cm_cell", f"{classes[chosen[0]]}>{classes[chosen[1]]}")
    else:
        linked = st.query_params.get("cm_cell", "").split(">")
        chosen = tuple(classes.index(c) for c in linked) if all(c in classes for c in linked) else None
    true_idx, pred_idx = chosen or most_confused_cell(cm)
    st.caption(
        "**Click a cell** to see its test images"
        + (
            "."
            if chosen
            else f" (shown now: the most confused cell, **{classes[true_idx]}** taken for **{classes[pred_idx]}**)."
        )
    )
    if true_idx == pred_idx and "predictions" not in evaluation:
        st.info(
            f"{int(cm[true_idx, true_idx]):,} test images of **{classes[true_idx]}** were classified correctly. "
            "This evaluation was saved before evaluations listed every image's prediction; `python -m "
            f"cnn_core evaluate --model {name} --save` writes one that does."
        )
        return
    x_test = _test_images(evaluation["dataset"]) if dataset_available(evaluation["dataset"]) else None
    items = cell_items(evaluation, true_idx, pred_idx, x_test)
    kind = "correctly classified as" if true_idx == pred_idx else "predicted as"
    st.markdown(
        f"**{len(items):,}** test image(s) of **{classes[true_idx]}** {kind} **{classes[pred_idx]}** "
        "(most confident first)"
    )
    shown = [it for it in items if it["image"] is not None][:SHOWN]
    if shown:
        show_cached_figure(
            ("cell", name, version, true_idx, pred_idx, x_test is not None),
            lambda: figures.image_grid(
                [it["image"] for it in shown], [f"#{it['index']} · {it['confidence']:.0%}" for it in shown], ncols=8
            ),
        )
        st.caption(f"Each image: its test-set number · the model's confidence in **{classes[pred_idx]}**.")
    if len(shown) < len(items):
        st.caption(
            f"{len(shown)} of them shown: "
            + (
                "the rest are counted only."
                if x_test is not None
                else "the saved evaluation keeps only the most confident mistakes of each cell; with the dataset at "
                f"hand (`python -m cnn_core download --dataset {evaluation['dataset']}`) all are shown."
            )
        )
