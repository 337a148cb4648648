"""The Photo page's answer for one picture: the picture, the 32×32 (or 28×28) the network sees, the top 3
classes, the confidence note and the way into the network."""

import streamlit as st

from app_pages._common import confidence_note, upscale
from cnn_core.base.errors import ImageError
from cnn_core.data.preprocess import load_image, preview
from cnn_core.predict.inference import top_k


def classified_picture(predictor, label: str, data: bytes, position: int = 0) -> None:
    """One picture through the shared path: decode → 32×32 → probabilities; a clear message for a file that
    is no picture. `position` tells apart two pictures with one name."""
    try:
        img = load_image(data, filename=label)
    except ImageError as err:
        st.error(f"**{label}**: {err}")
        return
    sample, probs = predictor.predict_image(img)
    with st.container(border=True):
        c1, c2, c3 = st.columns([2, 1, 3])
        c1.image(preview(img), caption=f"{label} ({img.width}×{img.height})", width="stretch")
        side = "×".join(map(str, predictor.info.input_shape[:2]))
        c2.image(upscale(sample, 128), caption=f"What the network sees ({side})")
        with c3:
            for rank, (cls, p) in enumerate(top_k(probs, predictor.info.class_names, 3), 1):
                st.progress(float(p), text=f"{rank}. **{cls}** — {p:.1%}")
            confidence_note(predictor, sample, probs)
            if st.button("🔬 Look inside the network for this photo", key=f"explain_{position}_{label}"):
                st.session_state["explain_input"] = {"dataset": predictor.info.name, "image": img, "source": "photo"}
                st.switch_page("app_pages/explain.py")
