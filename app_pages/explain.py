"""Inside the CNN: for a drawing, a photo or a test image — the preprocessing step by step,
Grad-CAM heat maps, every convolution's feature maps, the first layer's filters and a
layer table that says what each layer does."""

import numpy as np
import pandas as pd
import streamlit as st

from app_pages._common import get_predictor, model_picker, show_figure, upscale
from app_pages._input_view import choose_input
from cnn_core.analysis import explain, figures
from cnn_core.base.store import find_model
from cnn_core.data.preprocess import preparation_steps

STEP_CAPTIONS = {
    "ink": "Raw input (ink in white)",
    "cropped": "Cropped to the ink",
    "boxed": "Longer side scaled to 20 px",
    "final": "Centred by mass in 28×28",
}

st.title("🔬 Inside the CNN")
st.caption(
    "See what the network sees: how the input is prepared, which pixels drove the decision, "
    "and what every convolution layer responds to."
)

carried = st.session_state.get("explain_input")  # set by the Draw and Photo pages
name = model_picker("Model", carried["dataset"] if carried else None, key="explain_model")
if name is None:
    st.stop()
predictor = get_predictor(name)
info = predictor.info
evaluation = find_model(name).load_eval(name)

image = choose_input(predictor, evaluation, key="explain")  # what the user gave (PIL or array)
if image is None:
    st.info("Choose an input to look inside the network.")
    st.stop()

sample, probs = predictor.predict_image(image)
predicted = int(np.argmax(probs))

st.subheader("1 · What the network sees")
steps = preparation_steps(image, info.name)
if steps:
    for col, (key, caption) in zip(st.columns(4), STEP_CAPTIONS.items(), strict=False):
        col.image(upscale(steps[key], 140) if steps[key].shape[0] <= 40 else steps[key], caption=caption, width=140)
else:
    st.image(upscale(sample, 160), caption=f"The {'×'.join(map(str, info.input_shape[:2]))} input", width=160)

st.subheader("2 · Which pixels drove the decision (Grad-CAM)")
c1, c2, c3 = st.columns(3)
c1.image(
    upscale(explain.grad_cam_picture(predictor.model, sample, info, predicted), 196),
    caption=f"Predicted: {info.class_names[predicted]} ({probs[predicted]:.0%})",
)
other = c2.selectbox(
    "Explain another class",
    range(info.num_classes),
    index=int(np.argsort(probs)[-2]),
    format_func=lambda i: f"{info.class_names[i]} ({probs[i]:.1%})",
    key="cam_class",
)
c2.image(
    upscale(explain.grad_cam_picture(predictor.model, sample, info, int(other)), 196),
    caption=f"Evidence for: {info.class_names[other]}",
)
c3.markdown(
    "Bright areas are where the last convolution layer's features pushed the score of that class "
    "up. Grad-CAM weights each feature map by how much the class score changes with it, sums the "
    "maps and keeps the positive part."
)

st.subheader("3 · Feature maps of every convolution layer")
maps = explain.feature_maps(predictor.model, sample, info)
layer = st.selectbox(
    "Layer",
    list(maps),
    format_func=lambda n: f"{n} — {maps[n].shape[0]}×{maps[n].shape[1]}, {maps[n].shape[2]} maps",
    key="fm_layer",
)
chosen = maps[layer]
strongest = explain.strongest_feature_maps(chosen, count=32)
show_figure(figures.image_grid([tile for _, tile in strongest], [f"map {c}" for c, _ in strongest], ncols=8, size=1.1))
st.caption(
    f"The {len(strongest)} most active of {chosen.shape[-1]} maps (bright = strong response). Early layers "
    "react to edges and strokes; deeper ones to larger parts, at lower resolution."
)

st.subheader("4 · The first layer's learned filters")
show_figure(figures.image_grid(explain.first_layer_filter_tiles(predictor.model), None, ncols=16, size=0.6))
st.caption("Each 3×3 kernel of the first convolution, scaled to grey (or colour for RGB input).")

st.subheader("5 · The layers")
st.dataframe(pd.DataFrame(explain.layer_table(predictor.model)), hide_index=True, width="stretch")
