"""CNN Studio: `streamlit run app.py`. Declares the pages; each page is a thin view over cnn_core."""

import streamlit as st

from app_pages._streamlit_patches import keep_keras_state_between_reruns

keep_keras_state_between_reruns()
st.set_page_config(page_title="CNN Studio", page_icon="🧠", layout="wide")

all_pages = [
    st.Page("app_pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("app_pages/train.py", title="Train", icon="🏋️"),
    st.Page("app_pages/results.py", title="Results", icon="📊"),
    st.Page("app_pages/draw.py", title="Draw a digit", icon="✏️"),
    st.Page("app_pages/photo.py", title="Classify a photo", icon="📷"),
    st.Page("app_pages/explain.py", title="Inside the CNN", icon="🔬"),
    st.Page("app_pages/probe.py", title="Probe the model", icon="🧪"),
    st.Page("app_pages/calibration.py", title="Calibration", icon="🎯"),
    st.Page("app_pages/labels.py", title="Suspicious labels", icon="🏷️"),
    st.Page("app_pages/compare.py", title="Compare runs", icon="⚖️"),
]
st.navigation(all_pages).run()
