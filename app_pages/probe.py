"""Probe the model: change the input and watch the answer. What-if edits (rotate, shift, scale, blur,
cover) with an occlusion-sensitivity map beside Grad-CAM; adversarial examples (FGSM, PGD) and the
smallest change that flips the answer; the training images the network thinks the input resembles."""

import streamlit as st

from app_pages._common import get_predictor, model_picker, upscale
from app_pages._input_view import choose_input
from app_pages._probe_view import adversarial_view, neighbours_view, whatif_view
from cnn_core.base.store import find_model
from cnn_core.data.preprocess import is_blank

st.title("🧪 Probe the model")
st.caption("Poke at the network: edit the input, attack it, or ask which training images it looks like.")

carried = st.session_state.get("explain_input")  # set by the Draw and Photo pages
name = model_picker("Model", carried["dataset"] if carried else None, key="probe_model")
if name is None:
    st.stop()
predictor = get_predictor(name)
image = choose_input(predictor, find_model(name).load_eval(name), key="probe")
if image is None:
    st.info("Choose an input to probe the network with.")
    st.stop()
sample = predictor.sample_from_image(image)
if is_blank(sample):
    st.info("This picture holds (almost) nothing once prepared for the network: draw or pick another one.")
    st.stop()
st.image(upscale(sample, 112), caption="What the network sees")

whatif, adversarial, neighbours = st.tabs(["What if…", "Adversarial examples", "Nearest training images"])
with whatif:
    whatif_view(predictor, sample)
with adversarial:
    adversarial_view(predictor, sample)
with neighbours:
    neighbours_view(predictor, sample)
