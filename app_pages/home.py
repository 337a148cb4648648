"""Home: what this is, the shipped models, where to go next."""

import streamlit as st

from app_pages._common import catalogue
from cnn_core.predict.inference import tta_label

st.title("🧠 CNN Studio")
st.markdown(
    "Train, inspect and use two convolutional neural networks built from scratch: a **handwritten-digit "
    "recogniser** (MNIST, 28×28 grey) and an **object recogniser** (CIFAR-10, 32×32 colour, 10 classes). "
    "Start a training run and watch its curves grow, study the confusion matrix and the mistakes, draw a digit, "
    "or upload a photo."
)

shipped = [c for c in catalogue() if c["store"] == "shipped"]
st.subheader("Shipped models")
if not shipped:
    st.info("No shipped models found in `trained_models/`. Train one on the Train page.")
else:
    cols = st.columns(len(shipped))
    for col, card in zip(cols, shipped, strict=False):
        with col, st.container(border=True):
            st.markdown(f"**{card['dataset_title']}** · `{card['name']}`")
            acc = card.get("test_accuracy")
            st.metric(
                "Test accuracy" + (f" ({tta_label(card.get('tta'), card['dataset'])} TTA)" if card.get("tta") else ""),
                f"{acc:.2%}" if acc is not None else "–",
            )
            st.caption(
                f"{card['architecture']} architecture · {card['params']:,} parameters · "
                f"{card['epochs_run']} epochs in {card['train_seconds'] / 60:.1f} min on "
                f"{card['machine']['cores']} CPU core(s) ({card['machine']['cpu']})"
            )

st.subheader("Where next")
c1, c2, c3, c4 = st.columns(4)
with c1:
    st.page_link("app_pages/draw.py", label="Draw a digit", icon="✏️")
    st.caption("Draw with the mouse or a finger; see the 28×28 image the network sees and its probabilities.")
with c2:
    st.page_link("app_pages/photo.py", label="Classify a photo", icon="📷")
    st.caption("Upload your own pictures or try the bundled samples.")
with c3:
    st.page_link("app_pages/train.py", label="Train a model", icon="🏋️")
    st.caption("Pick a dataset and recipe, press Start, watch live loss and accuracy curves.")
with c4:
    st.page_link("app_pages/results.py", label="Study the results", icon="📊")
    st.caption("Confusion matrices, mistakes by (true, predicted) pair, sample predictions, curves.")
