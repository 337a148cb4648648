"""The app's two patches of Streamlit internals (pages/_streamlit_patches.py). Each relies on a
private name; these tests fail, saying what changed, when a Streamlit upgrade moves it."""

import inspect

import pytest


def _script_runner():
    try:
        from streamlit.runtime.scriptrunner import script_runner
    except ImportError as err:
        pytest.fail(f"streamlit.runtime.scriptrunner.script_runner is gone ({err}): "
                    "pages/_streamlit_patches.keep_keras_state_between_reruns needs a new target")
    return script_runner


def test_streamlit_still_resets_keras_through_clean_problem_modules():
    script_runner = _script_runner()
    original = getattr(script_runner, "_clean_problem_modules", None)
    assert callable(original), ("streamlit's script_runner._clean_problem_modules is gone: "
                                "keep_keras_state_between_reruns now patches nothing; check how Streamlit resets Keras")
    if getattr(original, "keeps_keras", False):  # already replaced in this process: read Streamlit's own source
        source = inspect.getsource(script_runner)
    else:
        source = inspect.getsource(original)
    assert "clear_session" in source, "Streamlit no longer calls keras clear_session there: drop the patch"
    assert 'close("all")' in source, "Streamlit's cleanup no longer closes pyplot figures: update the replacement"
    # Streamlit must look the function up on its module at call time, or replacing it does nothing.
    assert "_clean_problem_modules()" in inspect.getsource(script_runner), (
        "Streamlit no longer calls script_runner._clean_problem_modules() by name: the patch has no effect")


def test_the_replacement_keeps_keras_state_and_closes_figures(monkeypatch):
    import keras
    import matplotlib.pyplot as plt
    from keras.src.backend.common import global_state

    from pages._streamlit_patches import keep_keras_state_between_reruns

    script_runner = _script_runner()
    monkeypatch.setattr(script_runner, "_clean_problem_modules", script_runner._clean_problem_modules)
    keep_keras_state_between_reruns()
    keep_keras_state_between_reruns()  # installing twice is harmless
    global_state.set_global_attribute("cnn_patch_probe", 1)
    plt.figure()
    script_runner._clean_problem_modules()
    assert global_state.get_global_attribute("cnn_patch_probe") == 1 and plt.get_fignums() == []
    keras.backend.clear_session()


def test_streamlit_still_has_the_legacy_pages_folder_switch():
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError as err:
        pytest.fail(f"streamlit.runtime.pages_manager.PagesManager is gone ({err}): "
                    "pages/_streamlit_patches.use_app_navigation needs a new way out of the v1 pages mode")
    assert "uses_pages_directory" in vars(PagesManager), (
        "PagesManager.uses_pages_directory is gone: use_app_navigation no longer leaves the v1 pages mode")
    from streamlit.commands import navigation

    assert "PagesManager.uses_pages_directory = False" in inspect.getsource(navigation), (
        "st.navigation no longer leaves the v1 pages mode by setting PagesManager.uses_pages_directory = False: "
        "use_app_navigation's switch may not mean what it did")
    from streamlit.runtime.scriptrunner import script_runner

    assert "PagesManager.uses_pages_directory" in inspect.getsource(script_runner), (
        "Streamlit's script runner no longer reads PagesManager.uses_pages_directory")


def test_use_app_navigation_leaves_the_legacy_mode_and_reruns(monkeypatch):
    from streamlit.runtime.pages_manager import PagesManager

    import pages._streamlit_patches as patches

    reruns = []
    monkeypatch.setattr(patches.st, "rerun", lambda: reruns.append(1))
    monkeypatch.setattr(PagesManager, "uses_pages_directory", True)
    patches.use_app_navigation()
    assert PagesManager.uses_pages_directory is False and reruns == [1]
    patches.use_app_navigation()  # already left: no second rerun
    assert reruns == [1]
