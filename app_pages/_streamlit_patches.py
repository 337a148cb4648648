"""The app's one patch of Streamlit internals, kept apart so an upgrade breaks it in one place.

It relies on one private name; tests/test_streamlit_patches.py fails with a clear message when
a Streamlit release removes or changes it.
"""

from __future__ import annotations

import sys


def keep_keras_state_between_reruns() -> None:
    """Stop Streamlit from calling keras.backend.clear_session() after every script run.

    Streamlit does that for every session's every rerun (a workaround from TF1-era Keras). With
    Keras 3 it runs Python's garbage collector and drops TensorFlow's kernel caches: every rerun
    pays for a full collection and the next prediction for cold kernels, a cost that grows with
    concurrent visitors. The app caches its models across reruns on purpose and builds no models
    in scripts, so it needs no reset.
    Matplotlib's cleanup is kept. Streamlit looks the function up at call time, so replacing it
    on its module is enough; if a future Streamlit renames it, this does nothing (and the test fails)."""
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError:
        return
    if not hasattr(script_runner, "_clean_problem_modules"):
        return
    if getattr(script_runner._clean_problem_modules, "keeps_keras", False):
        return

    def close_pyplot_figures() -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close("all")

    close_pyplot_figures.keeps_keras = True
    script_runner._clean_problem_modules = close_pyplot_figures
