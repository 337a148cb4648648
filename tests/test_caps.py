"""Server caps for public deployments: CNN_MAX_EPOCHS / CNN_MAX_SUBSET / CNN_MAX_BATCH_SIZE bound what a visitor's
run may ask for, on the Train page's widgets and again in the server's job runner, with a
message naming the cap. (One run per server is tested in test_app.py and test_faults.py.)"""

from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

from cnn_core.base.errors import ConfigError
from cnn_core.service.jobs import (
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_EPOCHS,
    DEFAULT_MAX_SUBSET,
    ServerCaps,
    TrainingJobs,
)
from cnn_core.train.recipes import resolve_config
from conftest import REPO


def test_caps_come_from_the_environment_with_documented_defaults():
    assert ServerCaps.from_env({}) == ServerCaps(DEFAULT_MAX_EPOCHS, DEFAULT_MAX_SUBSET, DEFAULT_MAX_BATCH_SIZE)
    assert ServerCaps.from_env(
        {"CNN_MAX_EPOCHS": "5", "CNN_MAX_SUBSET": "2000", "CNN_MAX_BATCH_SIZE": "64"}
    ) == ServerCaps(5, 2000, 64)
    assert ServerCaps.from_env({"CNN_MAX_EPOCHS": " 7 ", "CNN_MAX_SUBSET": ""}).max_epochs == 7
    lifted = ServerCaps.from_env({"CNN_MAX_SUBSET": "all", "CNN_MAX_BATCH_SIZE": "ALL"})
    assert lifted.max_subset is None and lifted.max_batch_size is None
    # No recipe's own batch size is beyond the default cap, so every recipe runs as designed, except
    # airbench's method (a capped server runs it at 256, its lr in proportion: the test below).
    from cnn_core.data.datasets import DATASETS
    from cnn_core.nets.models import ARCHITECTURES

    beyond = {
        (d, a) for d in DATASETS for a in ARCHITECTURES if resolve_config(d, a)["batch_size"] > DEFAULT_MAX_BATCH_SIZE
    }
    assert beyond == {(d, a) for d in ("fashion_mnist", "cifar10") for a in ("airbench", "quick")} | {
        ("mnist", "quick")
    }


@pytest.mark.parametrize(
    "name, value",
    [
        ("CNN_MAX_EPOCHS", "lots"),
        ("CNN_MAX_EPOCHS", "0"),
        ("CNN_MAX_EPOCHS", "all"),
        ("CNN_MAX_SUBSET", "-5"),
        ("CNN_MAX_BATCH_SIZE", "1.5"),
    ],
)
def test_an_invalid_cap_is_an_error_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        ServerCaps.from_env({name: value})


def _instant_train(config, name, listener=None, stop_event=None, **kwargs):
    return SimpleNamespace(name=name, status="finished", message="done")


def test_the_job_runner_refuses_runs_beyond_the_caps_with_a_clear_message():
    jobs = TrainingJobs(train_fn=_instant_train, caps=ServerCaps(max_epochs=5, max_subset=2000, max_batch_size=128))
    with pytest.raises(ConfigError, match=r"at most 5 epochs per run \(CNN_MAX_EPOCHS\); 6 were asked for"):
        jobs.start(resolve_config("mnist", "seed", epochs=6, subset=1000), "too_long", owner="a")
    with pytest.raises(ConfigError, match=r"at most 2,000 training images per run \(CNN_MAX_SUBSET\); 2,500"):
        jobs.start(resolve_config("mnist", "seed", epochs=5, subset=2500), "too_big", owner="a")
    with pytest.raises(ConfigError, match="the whole training set were asked for"):
        jobs.start(resolve_config("mnist", "seed", epochs=1), "everything", owner="a")
    with pytest.raises(ConfigError, match=r"batches of at most 128 images \(CNN_MAX_BATCH_SIZE\); 256 were"):
        jobs.start(resolve_config("mnist", "fast", epochs=1, subset=1000, batch_size=256), "wide_batch", owner="a")
    assert jobs.snapshot() is None  # nothing was started

    jobs.start(resolve_config("mnist", "seed", epochs=5, subset=2000, batch_size=128), "at_the_caps", owner="a")
    assert jobs.wait(10) and jobs.snapshot().state == "done"


def test_without_caps_the_library_trains_whatever_it_is_given():
    jobs = TrainingJobs(train_fn=_instant_train)  # the CLI and tests: no server caps
    jobs.start(resolve_config("mnist", "seed", epochs=500), "long", owner="a")
    assert jobs.wait(10) and jobs.snapshot().state == "done"


@pytest.fixture
def capped_server(monkeypatch, data_dir):
    """A fresh 'server' (no cached job runner) started with caps in its environment."""
    import streamlit as st

    monkeypatch.setenv("CNN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CNN_MAX_EPOCHS", "4")
    monkeypatch.setenv("CNN_MAX_SUBSET", "1500")
    monkeypatch.setenv("CNN_MAX_BATCH_SIZE", "100")
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def _train_page(recipe: str | None = "seed") -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/train.py")
    at.run()
    if recipe:  # the original recipe by default (the page offers `quick` first)
        at.selectbox(key="arch").set_value(recipe).run()
    return at


def test_train_page_bounds_its_widgets_by_the_caps_and_refuses_forged_values(capped_server):
    from app_pages._common import get_jobs

    at = _train_page()
    assert not at.exception, at.exception
    epochs, subset = at.number_input(key="epochs_mnist_seed"), at.slider(key="subset_mnist_seed")
    assert epochs.max == 4 and "allows up to 4" in epochs.help
    assert subset.max == 1500 and "allows up to 1,500 images" in subset.help
    batch = at.selectbox(key="bs_mnist_seed")
    assert max(batch.options, key=int) == "100" and batch.value == 100 and "allows up to 100" in batch.help

    # A value beyond a widget's bound (a forged request) does not get through: Streamlit puts the
    # widget back to its default, and the server's runner would refuse it anyway (tested above).
    jobs = get_jobs()
    assert jobs._caps == ServerCaps(4, 1500, 100)
    jobs._train = _instant_train  # only the config that reaches the runner matters here
    at.number_input(key="epochs_mnist_seed").set_value(9)
    at.slider(key="subset_mnist_seed").set_value(60000)
    at.run()
    at.button(key="start").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert jobs.wait(10)
    started = jobs.snapshot().config
    assert started["epochs"] <= 4 and started["subset"] is not None and started["subset"] <= 1500, started
    assert started["batch_size"] <= 100, started


def test_train_page_scales_the_recipes_lr_to_a_capped_batch(capped_server):
    at = _train_page("quick")
    assert not at.exception, at.exception
    recipe = resolve_config("mnist", "quick")
    assert recipe["batch_size"] > 100 and at.selectbox(key="bs_mnist_quick").value == 100
    lr = at.number_input(key="lr_mnist_quick_100")
    assert lr.value == pytest.approx(recipe["lr"] * 100 / recipe["batch_size"])
    assert f"for batches of {recipe['batch_size']}, in proportion" in lr.help
    at.selectbox(key="bs_mnist_quick").set_value(64).run()
    assert at.number_input(key="lr_mnist_quick_64").value == pytest.approx(recipe["lr"] * 64 / recipe["batch_size"])


def test_train_page_names_an_invalid_cap_instead_of_failing(capped_server, monkeypatch):
    monkeypatch.setenv("CNN_MAX_SUBSET", "plenty")
    at = _train_page(recipe=None)  # the page stops before its form
    assert not at.exception, at.exception
    assert any("CNN_MAX_SUBSET must be a whole number" in e.value for e in at.error)
    assert not at.button  # no Start button under a misconfigured server


def test_runs_train_in_their_own_process_only_where_the_memory_holds_a_second_runtime():
    from cnn_core.service.jobs import PROCESS_MIN_MEMORY_MB, train_in_a_process

    assert train_in_a_process({}, memory_mb=24_000) is True  # a workstation
    assert train_in_a_process({}, memory_mb=2_700) is False  # Community Cloud's 2.7 GB: a thread of the server
    assert train_in_a_process({}, memory_mb=PROCESS_MIN_MEMORY_MB) is True
    assert train_in_a_process({"CNN_TRAINING_PROCESS": "on"}, memory_mb=1_000) is True
    assert train_in_a_process({"CNN_TRAINING_PROCESS": "OFF"}, memory_mb=64_000) is False
    with pytest.raises(ConfigError, match="CNN_TRAINING_PROCESS must be on, off or auto"):
        train_in_a_process({"CNN_TRAINING_PROCESS": "sometimes"})


def test_the_train_page_names_a_bad_training_process_setting(monkeypatch):
    import streamlit as st

    monkeypatch.setenv("CNN_TRAINING_PROCESS", "sometimes")
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
        at.run()
        at.switch_page("app_pages/train.py").run()
        assert not at.exception and any("CNN_TRAINING_PROCESS" in e.value for e in at.error)
    finally:
        st.cache_resource.clear()
