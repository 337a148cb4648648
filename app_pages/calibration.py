"""Calibration: is the model's "90% sure" right 90% of the time? The reliability diagram, the expected
calibration error (ECE) and each class's over- or under-confidence on the test set, before and after
temperature scaling fitted on the validation split (the probabilities the app shows use it)."""

import streamlit as st

from app_pages._calibration_view import class_gaps, reliability_diagram
from app_pages._common import model_picker
from cnn_core.base.store import find_model

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

st.subheader("Reliability diagram")
reliability_diagram(result)

st.subheader("Over- and under-confidence per class")
class_gaps(result, card["class_names"])
