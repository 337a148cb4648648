"""Calibration: is the model's "90% sure" right 90% of the time? The reliability diagram, the expected
calibration error (ECE) and each class's over- or under-confidence on the test set, before and after
temperature scaling fitted on the validation split (the probabilities the app shows use it)."""

import streamlit as st

from app_pages._common import model_picker
from cnn_core.base.store import find_model

WHEN = {"before": "as trained", "after": "with temperature scaling"}
COLOUR = {
    "field": "model",
    "type": "nominal",
    "title": None,
    "legend": {"orient": "bottom"},
    "scale": {"domain": list(WHEN.values()), "range": ["#d55e00", "#0072b2"]},
}  # colour-blind safe

st.title("🎯 Calibration")
st.caption("When the model says it is 80% sure, is it right 80% of the time? Points on the diagonal mean yes.")
name = model_picker("Model", None, key="calibration_model")
if name is None:
    st.stop()
card = find_model(name).load_card(name)
result = card.get("calibration")
if not result:
    st.info(
        f"`{name}` has no calibration yet"
        + (
            ": it was trained without a validation split to fit one on."
            if not card["hyperparameters"].get("val_size")
            else f". `python -m cnn_core calibrate --model {name}` fits one (training does it for new runs)."
        )
    )
    st.stop()

c1, c2, c3 = st.columns(3)
c1.metric(
    "Temperature T",
    f"{result['temperature']:.3f}",
    help="The logits are divided by T: above 1 softens over-confident probabilities, below 1 sharpens them",
)
c2.metric(
    "ECE as trained",
    f"{result['before']['ece']:.2%}",
    help="Expected calibration error: the average gap "
    "between confidence and accuracy, weighted by how many images fall in each confidence bin",
)
c3.metric(
    "ECE with temperature scaling",
    f"{result['after']['ece']:.2%}",
    f"{(result['after']['ece'] - result['before']['ece']) * 100:+.2f} points",
    delta_color="inverse",
)
st.caption(
    f"T fitted on the {result['fitted_on']}; measured on the {result['measured_on']}. The predicted class "
    "never changes, so the accuracy is the same; only how sure the model says it is."
)

rows = [{**b, "model": WHEN[when]} for when in WHEN for b in result[when]["bins"]]
st.subheader("Reliability diagram")
st.vega_lite_chart(
    {
        "layer": [
            {
                "data": {"values": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]},
                "mark": {"type": "line", "color": "#999", "strokeDash": [4, 4]},
                "encoding": {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"}},
            },
            *[
                {
                    "data": {"values": rows},
                    "mark": mark,
                    "encoding": {
                        "x": {
                            "field": "confidence",
                            "type": "quantitative",
                            "title": "Confidence (mean of the bin)",
                            "scale": {"domain": [0, 1]},
                        },
                        "y": {
                            "field": "accuracy",
                            "type": "quantitative",
                            "title": "Accuracy in the bin",
                            "scale": {"domain": [0, 1]},
                        },
                        "color": COLOUR,
                        **(
                            {
                                "size": {
                                    "field": "count",
                                    "type": "quantitative",
                                    "legend": None,
                                    "scale": {"range": [15, 400]},
                                }
                            }
                            if mark["type"] == "circle"
                            else {}
                        ),
                        "tooltip": [
                            {"field": "model"},
                            {"field": "confidence", "format": ".1%"},
                            {"field": "accuracy", "format": ".1%"},
                            {"field": "count"},
                        ],
                    },
                }
                for mark in ({"type": "line"}, {"type": "circle", "opacity": 0.8})
            ],
        ]
    },
    width="stretch",
)
st.caption(
    "Each point is one confidence bin (15 of equal width), its size the number of test images in it. "
    "Below the dashed diagonal the model is over-confident, above it under-confident."
)

st.subheader("Over- and under-confidence per class")
gaps = [{**g, "model": WHEN[when]} for when in WHEN for g in result[when]["classes"]]
st.vega_lite_chart(
    {
        "data": {"values": gaps},
        "mark": "bar",
        "encoding": {
            "y": {"field": "class", "type": "nominal", "sort": card["class_names"], "title": None},
            "yOffset": {"field": "model"},
            "x": {
                "field": "gap",
                "type": "quantitative",
                "title": "Mean confidence − accuracy (over images predicted as it)",
                "axis": {"format": "+.0%"},
            },
            "color": COLOUR,
            "tooltip": [
                {"field": "class"},
                {"field": "model"},
                {"field": "gap", "format": "+.1%"},
                {"field": "predicted", "title": "images predicted as it"},
            ],
        },
    },
    width="stretch",
)
st.caption(
    "Right of zero: when the model names this class it is more sure than it is right (over-confident); "
    "left: less sure than it is right."
)
