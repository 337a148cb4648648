"""Compare runs: curves on one chart, accuracy, size, time, time to a chosen accuracy and
per-class differences — what each recipe buys."""

import pandas as pd
import streamlit as st

from app_pages._common import URL, catalogue
from app_pages._measured_view import recipe_switches, tta_and_ensembles
from cnn_core.studio.compare import curve_points, default_target, per_class_differences, summary

st.title("⚖️ Compare runs")
cards = [c for c in catalogue() if c.get("history")]
if len(cards) < 1:
    st.info("No saved models with a training history yet. Train one on the Train page.")
    st.stop()
by_name = {c["name"]: c for c in cards}
datasets = sorted({c["dataset"] for c in cards})
dataset = st.selectbox("Dataset", datasets, key="cmp_dataset", bind=URL)
names = [c["name"] for c in cards if c["dataset"] == dataset]
chosen = st.multiselect("Models", names, default=names[:4], key=f"cmp_models_{dataset}", bind=URL)
if not chosen:
    st.info("Pick at least one model.")
    st.stop()
selected = [by_name[n] for n in chosen]
target = st.slider(
    "Target accuracy for 'time to accuracy'",
    0.50,
    0.999,
    default_target(dataset),
    step=0.001,
    format="%.3f",
    key="cmp_target",
    bind=URL,
)

st.dataframe(pd.DataFrame(summary(selected, target)).set_index("model"), width="stretch")
st.caption(
    "Time to accuracy uses the validation curve when the run had a validation set, otherwise the "
    "training curve (runs trained on the full training set with a fixed schedule)."
)

x_axis = st.radio("Curves against", ["epoch", "training minutes"], horizontal=True, key="cmp_x", bind=URL)
frame = pd.DataFrame(curve_points(selected))
left, right = st.columns(2)
left.line_chart(frame, x=x_axis, y="accuracy", color="model", x_label=x_axis.capitalize(), y_label="Accuracy")
right.line_chart(frame, x=x_axis, y="loss", color="model", x_label=x_axis.capitalize(), y_label="Loss")

diffs = per_class_differences(selected)
if diffs:
    st.subheader(f"Per-class test accuracy compared with {selected[0]['name']}")
    table = pd.DataFrame(diffs)
    st.bar_chart(table, x_label="Class", y_label="Accuracy difference (points of 1.0)", stack=False)
    st.dataframe(
        pd.DataFrame(
            {c["name"]: c["per_class_accuracy"] for c in selected if c.get("per_class_accuracy")}
        ).style.format("{:.2%}"),
        width="stretch",
    )

tta_and_ensembles(dataset)
recipe_switches(dataset)
