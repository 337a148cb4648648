"""The Results page's confusion matrix explorer: pick a (true, predicted) cell, see those mistakes."""

import numpy as np
import streamlit as st

from cnn_core import figures
from cnn_core.evaluation import mistakes_for_cell, most_confused_cell
from pages._common import URL, show_figure


def confusion_explorer(evaluation: dict, classes: list[str], name: str) -> None:
    """The matrix (counts or row-normalised) beside two class pickers, opened on the most confused
    cell, and the mistakes of the picked cell below (most confident first)."""
    cm = np.asarray(evaluation["confusion_matrix"])
    worst_true, worst_pred = most_confused_cell(cm)
    left, right = st.columns([3, 2])
    with right:
        normalize = st.toggle("Row-normalised", value=False, key="cm_norm", bind=URL,
                              help="Each row as a fraction of its true class")
        st.markdown("**Pick a cell** (true → predicted) to see exactly those mistakes:")
        true_idx = st.selectbox("True class", range(len(classes)), index=worst_true,
                                format_func=lambda i: classes[i], key=f"cm_true_{name}", bind=URL)
        pred_idx = st.selectbox("Predicted class", range(len(classes)), index=worst_pred,
                                format_func=lambda i: classes[i], key=f"cm_pred_{name}", bind=URL)
    with left:
        show_figure(figures.confusion_heatmap(cm, classes, normalize, highlight=(true_idx, pred_idx)))
    if true_idx == pred_idx:
        st.info(f"{int(cm[true_idx, true_idx]):,} test images of **{classes[true_idx]}** were classified "
                "correctly. Pick two different classes to see mistakes.")
    else:
        items = mistakes_for_cell(evaluation, true_idx, pred_idx)
        st.markdown(f"**{len(items)}** test image(s) of **{classes[true_idx]}** predicted as "
                    f"**{classes[pred_idx]}** (most confident first)")
        shown = [it for it in items if it["image"] is not None]
        if shown:
            show_figure(figures.image_grid([it["image"] for it in shown], [
                f"#{it['index']} · {it['confidence']:.0%}" for it in shown], ncols=min(8, max(4, len(shown)))))
        if 0 < len(shown) < len(items):
            st.caption(f"The saved evaluation keeps images for the {len(shown)} most confident of these.")
