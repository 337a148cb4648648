"""Classify a photo: uploads (or bundled samples) → the 32×32 the network sees → top 3 classes."""

from pathlib import Path

import streamlit as st

from app_pages._common import get_served_predictor, logged_rerun, model_picker, ood_explainer, prediction_options
from app_pages._photo_view import classified_picture
from cnn_core.data.preprocess import MAX_PIXELS, MAX_UPLOAD_BYTES
from cnn_core.predict.inference import tta_label

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
KINDS = {"cifar10": "Objects and animals (CIFAR-10)", "fashion_mnist": "Clothes (Fashion-MNIST)"}

st.title("📷 Classify a photo")
dataset = (
    st.segmented_control("Recognise", list(KINDS), format_func=KINDS.get, default="cifar10", key="photo_dataset")
    or "cifar10"
)
name = model_picker("Model", dataset, key=f"photo_model_{dataset}")
if name is None:
    st.stop()
predictor = prediction_options(get_served_predictor(name), dataset, key="photo")
classes = predictor.info.class_names
tta_note = f" Predictions average the photo over test-time augmentation ({tta_label(predictor.tta, predictor.info)})."
st.caption(f"The network knows 10 classes: {', '.join(classes)}.{tta_note if predictor.tta else ''}")

ood_explainer(predictor)
if dataset == "fashion_mnist":
    st.caption(
        "Fashion-MNIST items are centred, light on a black background; photos on a light background "
        "are inverted to match."
    )
sample_files = sorted(p for p in (SAMPLES / dataset).glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


@st.fragment
@logged_rerun("photo")
def pictures_and_predictions() -> bool:
    """An upload or a sample picked reruns only this part of the page, not the model picker above it. Returns
    whether there was a picture to answer."""
    uploads = st.file_uploader(
        f"Upload JPEG, PNG, WebP, BMP, GIF or TIFF images (up to {MAX_UPLOAD_BYTES // 2**20} MB and "
        f"{MAX_PIXELS // 10**6} megapixels each)",
        accept_multiple_files=True,
        key="photo_upload",
    )
    chosen = (
        st.pills(
            "…or try a bundled sample",
            [p.stem for p in sample_files],
            selection_mode="multi",
            key=f"samples_{dataset}",
        )
        or []
    )
    items = [(f.name, f.getvalue()) for f in uploads or []]
    items += [(p.name, p.read_bytes()) for p in sample_files if p.stem in chosen]
    if st.toggle(
        "📸 Take a photo with the webcam", key="photo_webcam", help="Your browser asks before it opens the camera."
    ):
        shot = st.camera_input("Hold an object up to the camera", key="photo_camera")
        items += [("webcam shot.jpg", shot.getvalue())] if shot is not None else []
    if not items:
        st.info("Upload a photo or pick a sample (or take one with the webcam) to see the top 3 classes.")
    for position, (label, data) in enumerate(items):  # two uploads may share a file name
        classified_picture(predictor, label, data, position)
    return bool(items)


pictures_and_predictions()
st.caption("Sample images: see assets/samples/CREDITS.md.")
