"""The Train page's learning-rate control (for the tab that started the run) and the learning rate's
curve with each change marked. The rules (the control file, what a change does) are cnn_core.train.lr_control's."""

import streamlit as st

from cnn_core.base.errors import CnnError
from cnn_core.service.curves import lr_rows
from cnn_core.train.lr_control import describe_change

ASKS = (("× 0.5", "lr_half", {"multiply": 0.5}), ("× 2", "lr_double", {"multiply": 2.0}))


def lr_controls(snap, jobs, owner: str) -> None:
    """Buttons that halve or double the learning rate, or set it, from the run's next batch."""
    cols = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
    value = cols[0].number_input(
        "Learning rate from the next batch",
        min_value=1e-8,
        max_value=10.0,
        value=float(snap.config["lr"]),
        format="%.2e",
        key="lr_value",
        help="A schedule keeps its shape, scaled from there on; Muon's step follows.",
    )
    asked = [ask for col, (label, key, ask) in zip(cols[1:], ASKS, strict=False) if col.button(label, key=key)]
    if cols[3].button("Set", key="lr_set"):
        asked.append({"set_to": float(value)})
    for ask in asked:
        try:
            jobs.change_lr(snap.job_id, owner, **ask)
        except CnnError as err:
            st.error(str(err))
        else:
            st.toast("Learning rate: applies from the next batch.")
    if snap.warnings:
        st.warning(snap.warnings[-1])


def lr_chart(snap) -> None:
    """The learning rate per batch (each epoch's, at its end, for a run picked up without its batches),
    a dashed rule where a change was applied, and the list. One spec whatever the data, the data as a
    frame: a refresh then only swaps the chart's data, where data written into the spec would make the
    browser build the chart anew every second (see _job_view._metric_spec)."""
    import pandas as pd

    rows = lr_rows(snap.batches) if snap.batches else [{"x": e["epoch"], "lr": e["lr"]} for e in snap.epochs]
    steps = (snap.start_event or {}).get("steps")
    changes = [
        {"x": c["epoch"] - 1 + c["batch"] / steps, "change": describe_change(c)}
        for c in (snap.lr_changes if steps else [])
    ]
    frame = pd.DataFrame(
        [{**r, "kind": "lr"} for r in rows] + [{**c, "kind": "change"} for c in changes],
        columns=["x", "lr", "change", "kind"],
    )
    line = {"type": "line", "point": not snap.batches}
    st.vega_lite_chart(
        frame,
        {
            "layer": [
                {
                    "transform": [{"filter": "datum.kind == 'lr'"}],
                    "mark": line,
                    "encoding": {
                        "x": {"field": "x", "type": "quantitative", "title": "Epoch"},
                        "y": {"field": "lr", "type": "quantitative", "title": "Learning rate"},
                    },
                },
                {
                    "transform": [{"filter": "datum.kind == 'change'"}],
                    "mark": {"type": "rule", "color": "red", "strokeDash": [4, 3]},
                    "encoding": {
                        "x": {"field": "x", "type": "quantitative"},
                        "tooltip": {"field": "change", "type": "nominal"},
                    },
                },
            ]
        },
        width="stretch",
    )
    if snap.lr_changes:
        st.caption("Learning-rate changes: " + "; ".join(describe_change(c) for c in snap.lr_changes))
