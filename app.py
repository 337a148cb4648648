"""CNN Studio: `streamlit run app.py`. Declares the pages; each page is a thin view over cnn_core.

Streamlit imports this file once as the server (`app`, an st.App with the app's middleware) and then runs it
as the script of every visit (`__main__`), which lays out the navigation.
"""

import streamlit as st

from app_pages._server import stop_runs_at_shutdown, studio_middleware
from app_pages._streamlit_patches import keep_keras_state_between_reruns
from cnn_core.base.runtime import tensorflow_available, tensorflow_missing_message

# (file, title, icon, whether it needs TensorFlow). Where TensorFlow is not installed (no wheel for the newest
# Python), the pages that need it say so in one sentence; the others predict from the models' LiteRT files.
PAGES = [
    ("app_pages/home.py", "Home", "🏠", False),
    ("app_pages/train.py", "Train", "🏋️", True),
    ("app_pages/results.py", "Results", "📊", True),
    ("app_pages/draw.py", "Draw a digit", "✏️", False),
    ("app_pages/photo.py", "Classify a photo", "📷", False),
    ("app_pages/teach.py", "Teach your own classes", "🎓", True),
    ("app_pages/explain.py", "Inside the CNN", "🔬", True),
    ("app_pages/probe.py", "Probe the model", "🧪", True),
    ("app_pages/calibration.py", "Calibration", "🎯", True),
    ("app_pages/labels.py", "Suspicious labels", "🏷️", True),
    ("app_pages/compare.py", "Compare runs", "⚖️", True),
]


def run_visit() -> None:
    """One script run: the navigation, then the page the visitor is on."""
    keep_keras_state_between_reruns()
    st.set_page_config(page_title="CNN Studio", page_icon="🧠", layout="wide")
    pages = [st.Page(path, title=title, icon=icon, default=path.endswith("home.py")) for path, title, icon, _ in PAGES]
    selected = st.navigation(pages)
    if not tensorflow_available() and any(title == selected.title and needs for _, title, _, needs in PAGES):
        st.error(tensorflow_missing_message())  # before the page's own imports, which would fail
    else:
        selected.run()


if __name__ == "__main__":
    run_visit()
else:
    app = st.App(__file__, middleware=studio_middleware(), lifespan=stop_runs_at_shutdown)
