"""Draw a digit: a canvas (white ink on black), the 28×28 image the network sees,
the predicted digit and all ten probabilities."""

import numpy as np
import streamlit as st

from app_pages._canvas import digit_canvas
from app_pages._common import (
    confidence_note,
    get_served_predictor,
    logged_rerun,
    model_picker,
    ood_explainer,
    prediction_options,
    show_probabilities,
    upscale,
)
from cnn_core.base.errors import ImageError
from cnn_core.data.preprocess import load_image, why_no_digit

st.title("✏️ Draw a digit")
name = model_picker("Model", "mnist", key="draw_model")
if name is None:
    st.stop()
predictor = prediction_options(get_served_predictor(name), "mnist", key="draw")
ood_explainer(predictor)

NO_DIGIT = {
    "filled": "The canvas is filled almost completely, so no digit shape is left to read. "
    "Clear it and draw one digit, large and roughly centred.",
    "blank": "The canvas is empty: draw a digit, large and roughly centred.",
}


def show_digit_prediction(image, from_canvas: bool = False) -> None:
    """The one prediction path for a drawing or a photo of a digit (array or PIL image)."""
    if image is None:
        st.info("Draw a digit on the canvas (or upload a photo of one) to see what the network predicts.")
        return
    sample = predictor.sample_from_image(image)
    problem = why_no_digit(image, sample, from_canvas)
    if problem:
        st.info(NO_DIGIT[problem])
        return
    probs = predictor.predict_samples(sample[None])[0]
    digit = int(np.argmax(probs))
    c1, c2 = st.columns([1, 1])
    c1.metric("Prediction", predictor.info.class_names[digit], f"{probs[digit]:.1%} confident", delta_color="off")
    c2.image(upscale(sample, 140), caption="What the network sees (28×28)", clamp=True)
    confidence_note(predictor, sample, probs)
    show_probabilities(probs, predictor.info.class_names)
    st.session_state["explain_input"] = {"dataset": predictor.info.name, "image": image, "source": "drawing"}
    st.page_link("app_pages/explain.py", label="Look inside the network for this drawing", icon="🔬")


@st.fragment
@logged_rerun("draw")
def canvas_and_prediction() -> bool:
    """A stroke, an upload or Clear reruns only this part of the page, not the model picker. Returns whether
    there was a drawing or picture to answer."""
    left, right = st.columns([1, 1], gap="large")
    with left:
        stroke = st.slider("Stroke width", 6, 40, 18, key="stroke")
        st.session_state.setdefault("canvas_round", 0)
        try:
            drawing = digit_canvas(stroke, key=f"canvas_{st.session_state.canvas_round}")
        except ImageError as err:
            st.error(str(err))
            drawing = None
        if st.button("🧹 Clear canvas", key="clear"):
            st.session_state.canvas_round += 1
            st.rerun(scope="fragment")
        st.caption("Draw one digit with the mouse or a finger. Big and centred works best.")
        upload = st.file_uploader(
            "…or upload a photo of a handwritten digit",
            key="digit_upload",
            help="Dark ink on light paper, or light on dark: both work.",
        )
    with right:
        image = drawing
        if upload is not None:
            try:
                image = load_image(upload.getvalue(), filename=upload.name)
            except ImageError as err:
                st.error(f"{upload.name}: {err}")
                image = None
        show_digit_prediction(image, from_canvas=image is drawing and drawing is not None)
    return image is not None


canvas_and_prediction()
