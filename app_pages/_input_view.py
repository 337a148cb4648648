"""The input a page looks at: the visitor's drawing or photo (carried from the Draw and Photo pages), one of
the model's saved test images, or an upload. Shared by the Inside-the-CNN and Probe pages."""

import streamlit as st

from app_pages._common import URL
from cnn_core.analysis.evaluation import decode_png
from cnn_core.base.errors import ImageError
from cnn_core.data.preprocess import load_image


def choose_input(predictor, evaluation: dict | None, key: str):
    """Radio of the available sources and the source's own control; the picture (PIL or array) or None.
    Widget keys start with `key` ("explain", "probe"); the test image's carries the model's name."""
    info, name = predictor.info, predictor.name
    carried = st.session_state.get("explain_input")  # set by the Draw and Photo pages
    sources = [f"Your {carried['source']}"] if carried and carried["dataset"] == info.name else []
    sources += ["A test image"] if evaluation else []
    sources.append("Upload an image")
    source = st.radio("Input", sources, horizontal=True, key=f"{key}_source", bind=URL)
    if source.startswith("Your"):
        return carried["image"]
    if source == "A test image":
        samples = evaluation["samples"]
        idx = st.select_slider(
            "Test image",
            options=list(range(len(samples))),
            format_func=lambda i: f"#{samples[i]['index']} ({info.class_names[samples[i]['true']]})",
            key=f"{key}_sample_{name}",
            bind=URL,
        )
        return decode_png(samples[idx]["image"])
    upload = st.file_uploader("Image", key=f"{key}_upload")
    if upload is None:
        return None
    try:
        return load_image(upload.getvalue(), filename=upload.name)
    except ImageError as err:
        st.error(f"{upload.name}: {err}")
        return None
