"""The Draw page's canvas: white ink on black, 280×280, sent the moment a stroke ends.

Our own components-v2 component (assets/digit_canvas.js) rather than streamlit-drawable-canvas:
that one waits a fixed 200 ms after every stroke before it sends (no setting), most of the 0.3 s a
drawing may take to get its prediction (issue "watch it learn"; benchmarks/app_metrics.py)."""

from pathlib import Path

import numpy as np
import streamlit as st

from cnn_core.data.preprocess import load_data_url

SIZE = 280  # pixels; the digit is found, boxed and centred from any size (cnn_core.data.preprocess)
_JS = (Path(__file__).resolve().parent.parent / "assets" / "digit_canvas.js").read_text(encoding="utf-8")
_CSS = """.digit-canvas { display: block; touch-action: none; cursor: crosshair; border-radius: 0.5rem;
                          max-width: 100%; }"""
_mount = st.components.v2.component(
    "cnn_studio.digit_canvas", html='<div class="digit-canvas-root"></div>', css=_CSS, js=_JS
)


def digit_canvas(stroke_width: int, key: str) -> np.ndarray | None:
    """Mount the canvas; the drawing so far as an RGBA array, or None before the first stroke.
    A new `key` is a new, blank canvas (the page's Clear button)."""
    result = _mount(
        key=key,
        data={"strokeWidth": stroke_width, "size": SIZE},
        default={"drawing": None},
        on_drawing_change=lambda: None,
        width="content",
    )
    url = result.get("drawing")
    return None if url is None else load_data_url(url)
