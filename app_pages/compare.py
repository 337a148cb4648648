"""Compare runs: curves on one chart, accuracy, size, time, time to a chosen accuracy and
per-class differences — what each recipe buys."""

import pandas as pd
import streamlit as st

from app_pages._common import URL, catalogue
from cnn_core.predict.inference import tta_label
from cnn_core.studio.benchmark_figures import ensemble_figures, switch_figures, switch_table
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

measured = ensemble_figures(dataset)  # written beside the shipped models by benchmarks.tta_ensembles
if measured and measured["rows"]:
    st.subheader("What test-time augmentation and ensembles buy")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "models": " + ".join(r["models"]),
                    "TTA": tta_label(r["tta"], dataset),
                    "test accuracy": r["accuracy"],
                    "test loss": r["loss"],
                }
                for r in measured["rows"]
            ]
        ).style.format({"test accuracy": "{:.2%}", "test loss": "{:.4f}"}),
        hide_index=True,
        width="stretch",
    )
    st.caption(
        f"Measured on the full test set by `{measured['command']}` (commit {measured['git_commit']}). "
        "Use these options on the Classify a photo page."
    )

switches = switch_figures(dataset)  # written beside the shipped models by benchmarks.recipe_switches
if switches:
    plan = switches["schedule"]
    st.subheader("What the original's improvements buy, one switch at a time")
    st.dataframe(
        pd.DataFrame(switch_table(switches)).style.format(
            {
                "test accuracy (mean)": "{:.2%}",
                "± sd": "{:.2%}",
                "lowest": "{:.2%}",
                "highest": "{:.2%}",
                "change (points)": "{:+.2f}",
                "training s": "{:.0f}",
                "parameters": "{:,}",
            }
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption(
        f"The seed recipe, {plan['epochs']} epochs on {plan['subset']:,} training images, with each switch on "
        f"alone; test accuracy on the whole test set over {len(switches['rows'][0]['seeds'])} seeds. Measured by "
        f"`{switches['command']}` (commit {switches['git_commit']}) on {switches['machine']}; "
        '"beyond seed noise" means its range and the base\'s do not overlap. Try them on the Train page.'
    )
