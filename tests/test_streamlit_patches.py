"""The app's patch of Streamlit internals (app_pages/_streamlit_patches.py). It relies on a
private name; these tests fail, saying what changed, when a Streamlit upgrade moves it."""

import inspect

import pytest


def _script_runner():
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError as err:
        pytest.fail(
            f"streamlit.runtime.scriptrunner.script_runner is gone ({err}): "
            "app_pages/_streamlit_patches.keep_keras_state_between_reruns needs a new target"
        )
    return script_runner


def test_streamlit_still_resets_keras_through_clean_problem_modules():
    script_runner = _script_runner()
    original = getattr(script_runner, "_clean_problem_modules", None)
    assert callable(original), (
        "streamlit's script_runner._clean_problem_modules is gone: "
        "keep_keras_state_between_reruns now patches nothing; check how Streamlit resets Keras"
    )
    if getattr(original, "keeps_keras", False):  # already replaced in this process: read Streamlit's own source
        source = inspect.getsource(script_runner)
    else:
        source = inspect.getsource(original)
    assert "clear_session" in source, "Streamlit no longer calls keras clear_session there: drop the patch"
    assert 'close("all")' in source, "Streamlit's cleanup no longer closes pyplot figures: update the replacement"
    # Streamlit must look the function up on its module at call time, or replacing it does nothing.
    assert "_clean_problem_modules()" in inspect.getsource(script_runner), (
        "Streamlit no longer calls script_runner._clean_problem_modules() by name: the patch has no effect"
    )


def test_the_replacement_keeps_keras_state_and_closes_figures(monkeypatch):
    import keras
    import matplotlib.pyplot as plt
    from keras.src.backend.common import global_state

    from app_pages._streamlit_patches import keep_keras_state_between_reruns

    script_runner = _script_runner()
    monkeypatch.setattr(script_runner, "_clean_problem_modules", script_runner._clean_problem_modules)
    keep_keras_state_between_reruns()
    keep_keras_state_between_reruns()  # installing twice is harmless
    global_state.set_global_attribute("cnn_patch_probe", 1)
    plt.figure()
    script_runner._clean_problem_modules()
    assert global_state.get_global_attribute("cnn_patch_probe") == 1 and plt.get_fignums() == []
    keras.backend.clear_session()
