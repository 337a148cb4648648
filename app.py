"""CNN Studio: `streamlit run app.py`. Declares the pages; each page is a thin view over cnn_core."""

import streamlit as st

import pages._common  # noqa: F401  (importing it leaves Streamlit's legacy pages-folder mode)
from pages._streamlit_patches import keep_keras_state_between_reruns

keep_keras_state_between_reruns()
st.set_page_config(page_title="CNN Studio", page_icon="🧠", layout="wide")

all_pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/train.py", title="Train", icon="🏋️"),
    st.Page("pages/results.py", title="Results", icon="📊"),
    st.Page("pages/draw.py", title="Draw a digit", icon="✏️"),
    st.Page("pages/photo.py", title="Classify a photo", icon="📷"),
    st.Page("pages/explain.py", title="Inside the CNN", icon="🔬"),
    st.Page("pages/probe.py", title="Probe the model", icon="🧪"),
    st.Page("pages/calibration.py", title="Calibration", icon="🎯"),
    st.Page("pages/labels.py", title="Suspicious labels", icon="🏷️"),
    st.Page("pages/compare.py", title="Compare runs", icon="⚖️"),
]
st.navigation(all_pages).run()
