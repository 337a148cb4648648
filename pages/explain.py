"""Inside the CNN: for a drawing, a photo or a test image — the preprocessing step by step,
Grad-CAM heat maps, every convolution's feature maps, the first layer's filters and a
layer table that says what each layer does."""

import numpy as np
import pandas as pd
import streamlit as st

from cnn_core import explain, figures
from cnn_core.errors import ImageError
from cnn_core.evaluation import decode_png
from cnn_core.preprocess import array_to_image, digit_steps, load_image
from cnn_core.store import find_model
from pages._common import get_predictor, model_picker, show_figure, upscale

st.title("🔬 Inside the CNN")
st.caption("See what the network sees: how the input is prepared, which pixels drove the decision, "
           "and what every convolution layer responds to.")

carried = st.session_state.get("explain_input")  # set by the Draw and Photo pages
dataset_filter = carried["dataset"] if carried else None
name = model_picker("Model", dataset_filter, key="explain_model")
if name is None:
    st.stop()
predictor = get_predictor(name)
info = predictor.info
store = find_model(name)
evaluation = store.load_eval(name)

sources = []
if carried and carried["dataset"] == info.name:
    sources.append(f"Your {carried['source']}")
if evaluation:
    sources.append("A test image")
sources.append("Upload an image")
source = st.radio("Input", sources, horizontal=True, key="explain_source")

image = None  # what the user gave (PIL or array), before preprocessing
if source.startswith("Your"):
    image = carried["image"]
elif source == "A test image":
    samples = evaluation["samples"]
    idx = st.select_slider("Test image", options=list(range(len(samples))),
                           format_func=lambda i: f"#{samples[i]['index']} ({info.class_names[samples[i]['true']]})",
                           key=f"explain_sample_{name}")
    image = decode_png(samples[idx]["image"])
else:
    upload = st.file_uploader("Image", key="explain_upload")
    if upload is not None:
        try:
            image = load_image(upload.getvalue(), filename=upload.name)
        except ImageError as err:
            st.error(f"{upload.name}: {err}")
if image is None:
    st.info("Choose an input to look inside the network.")
    st.stop()

sample, probs = predictor.predict_image(image)
predicted = int(np.argmax(probs))

st.subheader("1 · What the network sees")
if info.name == "mnist" and not (isinstance(image, np.ndarray) and image.shape == (28, 28)):
    steps = digit_steps(array_to_image(image) if isinstance(image, np.ndarray) else image)
    cols = st.columns(4)
    captions = ["Raw input (ink in white)", "Cropped to the ink", "Longer side scaled to 20 px",
                "Centred by mass in 28×28"]
    for col, key, caption in zip(cols, ("ink", "cropped", "boxed", "final"), captions):
        col.image(upscale(steps[key], 140) if steps[key].shape[0] <= 40 else steps[key], caption=caption,
                  width=140)
else:
    st.image(upscale(sample, 160), caption=f"The {'×'.join(map(str, info.input_shape[:2]))} input", width=160)

st.subheader("2 · Which pixels drove the decision (Grad-CAM)")
c1, c2, c3 = st.columns(3)
heat, _ = explain.grad_cam(predictor.model, sample, info, predicted)
c1.image(upscale((explain.overlay(sample, heat) * 255).astype(np.uint8), 196),
         caption=f"Predicted: {info.class_names[predicted]} ({probs[predicted]:.0%})")
other = c2.selectbox("Explain another class", range(info.num_classes), index=int(np.argsort(probs)[-2]),
                     format_func=lambda i: f"{info.class_names[i]} ({probs[i]:.1%})", key="cam_class")
heat_other, _ = explain.grad_cam(predictor.model, sample, info, int(other))
c2.image(upscale((explain.overlay(sample, heat_other) * 255).astype(np.uint8), 196),
         caption=f"Evidence for: {info.class_names[other]}")
c3.markdown("Bright areas are where the last convolution layer's features pushed the score of that class "
            "up. Grad-CAM weights each feature map by how much the class score changes with it, sums the "
            "maps and keeps the positive part.")

st.subheader("3 · Feature maps of every convolution layer")
maps = explain.feature_maps(predictor.model, sample, info)
layer = st.selectbox("Layer", list(maps), format_func=lambda n: f"{n} — {maps[n].shape[0]}×{maps[n].shape[1]}, "
                                                                f"{maps[n].shape[2]} maps", key="fm_layer")
chosen = maps[layer]
n_show = min(32, chosen.shape[-1])
strongest = np.argsort(chosen.reshape(-1, chosen.shape[-1]).mean(axis=0))[::-1][:n_show]
tiles = []
for c in strongest:
    m = chosen[..., c]
    tiles.append(((m - m.min()) / max(float(m.max() - m.min()), 1e-8) * 255).astype(np.uint8))
show_figure(figures.image_grid(tiles, [f"map {c}" for c in strongest], ncols=8, size=1.1))
st.caption(f"The {n_show} most active of {chosen.shape[-1]} maps (bright = strong response). Early layers react "
           "to edges and strokes; deeper ones to larger parts, at lower resolution.")

st.subheader("4 · The first layer's learned filters")
filters = explain.first_layer_filters(predictor.model)
tiles = [(f[..., 0] if f.shape[-1] == 1 else f) * 255 for f in filters]
show_figure(figures.image_grid([t.astype(np.uint8) for t in tiles], None, ncols=16, size=0.6))
st.caption("Each 3×3 kernel of the first convolution, scaled to grey (or colour for RGB input).")

st.subheader("5 · The layers")
st.dataframe(pd.DataFrame(explain.layer_table(predictor.model)), hide_index=True, width="stretch")
