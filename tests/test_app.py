"""Every page through Streamlit's AppTest, with the shipped models and real data."""

import io

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import APP_RESOURCE_CACHES, KEPT_RESOURCE_CACHES, REPO, clear_server_state, wait_for_job

SAMPLES = REPO / "assets" / "samples"
PAGES = [
    "app_pages/home.py",
    "app_pages/train.py",
    "app_pages/results.py",
    "app_pages/draw.py",
    "app_pages/photo.py",
    "app_pages/teach.py",
    "app_pages/explain.py",
    "app_pages/probe.py",
    "app_pages/calibration.py",
    "app_pages/labels.py",
    "app_pages/compare.py",
]


@pytest.fixture(autouse=True)
def fresh_server_state(data_dir, monkeypatch):
    """Each test is a fresh 'server': no jobs, cards or figures carried over (models stay loaded:
    conftest.clear_server_state says why)."""
    monkeypatch.setenv("CNN_DATA_DIR", str(data_dir))
    clear_server_state()
    yield
    clear_server_state()


def test_the_fresh_server_state_clears_every_cache_of_the_app_but_the_models():
    """conftest.APP_RESOURCE_CACHES must name every st.cache_resource function in app_pages/, so a new
    cache cannot carry one test's state into the next unnoticed."""
    import ast

    found = {}
    for path in sorted((REPO / "app_pages").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                "cache_resource" in ast.unparse(d) for d in node.decorator_list
            ):
                found.setdefault(f"app_pages.{path.stem}", []).append(node.name)
    expected = {}
    for table in (APP_RESOURCE_CACHES, KEPT_RESOURCE_CACHES):
        for module, names in table.items():
            expected.setdefault(module, []).extend(names)
    assert {m: sorted(n) for m, n in found.items()} == {m: sorted(n) for m, n in expected.items()}


def open_page(page: str, timeout: float = 120) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=timeout)
    at.run()
    at.switch_page(page)
    at.run()
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.info] + [m.value for m in at.warning]
    parts += [m.value for m in at.error] + [m.value for m in at.success] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_without_exception(page):
    at = open_page(page)
    assert not at.exception, at.exception
    assert at.title and at.title[0].value


def test_home_lists_the_shipped_models():
    at = open_page("app_pages/home.py")
    values = [m.value for m in at.metric]
    assert len(values) >= 2 and all(v.endswith("%") for v in values)


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def chart_frame(at: AppTest, index: int = 0):
    """The data of the page's index-th Vega-Lite chart (st.vega_lite_chart, st.bar_chart, st.line_chart) as a
    DataFrame: a named dataset (the Altair-built charts) or the chart's own data (a plain spec)."""
    import pyarrow as pa

    chart = (at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"))[index].proto
    return pa.ipc.open_stream(chart.datasets[0].data.data if chart.datasets else chart.data.data).read_pandas()


def test_draw_page_prompts_on_empty_and_predicts_a_digit_photo(data_dir):
    from cnn_core.data.datasets import load_dataset

    at = open_page("app_pages/draw.py")
    assert "Draw a digit on the canvas" in texts(at)
    data = load_dataset("mnist", data_dir)
    i = int(np.flatnonzero(data.y_test == 7)[0])
    # A large dark-on-light "photo" of a real test 7: the page must invert, crop, centre it.
    photo = 255 - np.asarray(Image.fromarray(data.x_test[i]).resize((280, 280), Image.Resampling.BILINEAR))
    at.file_uploader(key="digit_upload").set_value(("seven.png", _png(photo), "image/png"))
    at.run()
    assert not at.exception
    assert at.metric[0].value == "7"
    bars = chart_frame(at)  # all ten probabilities, highest first, agreeing with the metric
    assert sorted(bars["class"]) == [str(d) for d in range(10)] and bars["class"][0] == "7"
    assert abs(bars["probability"].sum() - 1) < 1e-3 and bars["probability"].is_monotonic_decreasing
    assert at.metric[0].delta == f"{bars['probability'][0]:.1%} confident"


def test_draw_page_tta_averages_shifts_of_the_digit_never_its_mirror_image(data_dir):
    from cnn_core.data.datasets import load_dataset
    from cnn_core.studio.catalog import list_models, rank_for_choice

    at = open_page("app_pages/draw.py")
    data = load_dataset("mnist", data_dir)
    seven = 255 - np.asarray(Image.fromarray(data.x_test[0]).resize((280, 280), Image.Resampling.BILINEAR))
    at.file_uploader(key="digit_upload").set_value(("seven.png", _png(seven), "image/png")).run()
    card_level = chart_frame(at).set_index("class")["probability"]
    default = rank_for_choice(list_models("mnist"))[0]
    tta = at.radio(key=f"draw_tta_{default['name']}")
    assert tta.options == ["off", "1-px shifts", "1-px shifts and diagonals"] and "mirrored 2" in tta.help
    tta.set_value(2 if tta.value != 2 else 0).run()
    assert not at.exception and at.metric[0].value == "7"
    shifted = chart_frame(at).set_index("class")["probability"]
    assert len(shifted) == 10 and not np.allclose(shifted[card_level.index], card_level)  # other views, other numbers


def test_draw_page_blank_upload_is_a_prompt_not_a_prediction():
    at = open_page("app_pages/draw.py")
    at.file_uploader(key="digit_upload").set_value(("blank.png", _png(np.zeros((200, 200), np.uint8)), "image/png"))
    at.run()
    assert not at.exception and not at.metric
    assert "canvas is empty" in texts(at)


def test_photo_page_classifies_an_upload_and_survives_a_corrupt_one():
    at = open_page("app_pages/photo.py")
    car = next((SAMPLES / "cifar10").glob("automobile_*.png"))
    uploader = at.file_uploader(key="photo_upload")
    uploader.set_value(
        [
            ("broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg"),
            ("car.png", car.read_bytes(), "image/png"),
        ]
    )
    at.run()
    assert not at.exception
    assert any("broken.jpg" in e.value and "not an image" in e.value for e in at.error)
    top3 = [p.proto.text for p in at.get("progress")]
    assert len(top3) == 3 and any("automobile" in t for t in top3), top3


def test_photo_page_names_unsupported_formats():
    at = open_page("app_pages/photo.py")
    at.file_uploader(key="photo_upload").set_value(("phone.heic", b"\x00\x00\x00\x18ftypheic", "image/heic"))
    at.run()
    assert any("HEIC files are not supported" in e.value for e in at.error)


def test_photo_page_bundled_samples_need_no_upload():
    at = open_page("app_pages/photo.py")
    at.get("button_group")[-1].set_value(["automobile_cifar10_test_6"]).run()
    assert not at.exception
    assert len(at.get("progress")) == 3


def _wait_for_job(at: AppTest, until, timeout=300):
    from app_pages._common import get_jobs

    return wait_for_job(get_jobs(), until, timeout)


def test_train_page_offers_the_quick_recipe_first_labelled_with_its_measured_time():
    from cnn_core.base.runtime import machine_info
    from cnn_core.service.jobs import LARGEST_TRAINING_SPLIT
    from cnn_core.studio.benchmark_figures import recipe_time_label, recipe_times

    at = open_page("app_pages/train.py")
    box = at.selectbox(key="arch")
    assert box.value == "quick"
    # Every recipe measured by benchmarks/time_to_accuracy.py (on this CPU or the most alike one)
    # carries its figures in the list, whichever CPU this is.
    times = recipe_times("mnist", machine_info())
    assert times is not None and times["recipes"]
    for recipe in times["recipes"]:
        assert f"{recipe} · {recipe_time_label(recipe, times)}" in box.options
    # The form starts on the recipe's own schedule and the whole training set, as measured.
    assert at.number_input(key="epochs_mnist_quick").value == 1
    assert at.slider(key="subset_mnist_quick").value == LARGEST_TRAINING_SPLIT  # every MNIST training image
    at.selectbox(key="dataset").set_value("cifar10").run()
    assert not at.exception and at.selectbox(key="arch").value == "quick"
    assert at.number_input(key="epochs_cifar10_quick").value == 3


def _configure_small_run(at: AppTest, epochs: int, subset: int, name: str):
    at.selectbox(key="arch").set_value("seed").run()
    at.number_input(key="epochs_mnist_seed").set_value(epochs)
    at.slider(key="subset_mnist_seed").set_value(subset)
    at.text_input(key="run_name").set_value(name)
    at.run()


@pytest.mark.slow  # trains a model
def test_train_page_runs_saves_and_shows_on_results(isolated_runs, small_data_env):
    at = open_page("app_pages/train.py")
    _configure_small_run(at, epochs=1, subset=1000, name="apptest_run")
    precision = at.radio(key="precision_mnist_seed")
    assert precision.value == "fp32" and set(precision.options) == {"auto", "bf16", "fp32"}  # the recipe's
    precision.set_value("bf16")
    at.button(key="start").click().run()
    assert not at.exception and not at.error
    snap = _wait_for_job(at, lambda s: not s.active)
    assert snap.state == "done" and snap.result_status == "finished", snap
    assert (isolated_runs / "apptest_run.keras").is_file() and (isolated_runs / "apptest_run.json").is_file()
    import json

    card = json.loads((isolated_runs / "apptest_run.json").read_text())
    assert card["precision"] == "bf16" and card["hyperparameters"]["precision"] == "bf16"
    at.run()
    assert any("apptest_run" in s.value for s in at.success)

    results = open_page("app_pages/results.py")
    box = results.selectbox(key="results_model")
    assert any(option.startswith("apptest_run · runs") for option in box.options), box.options
    box.set_value("apptest_run").run()
    assert not results.exception
    assert results.metric[0].value.endswith("%")


@pytest.mark.slow  # trains a model
def test_train_page_stop_keeps_the_best_model_and_refuses_a_second_start(isolated_runs, small_data_env):
    from cnn_core.base.store import runs_store

    at = open_page("app_pages/train.py")
    _configure_small_run(at, epochs=20, subset=2000, name="apptest_stop")
    at.button(key="start").click().run()
    _wait_for_job(at, lambda s: len(s.epochs) >= 1)

    other_tab = open_page("app_pages/train.py")  # a second visitor sees the run but cannot stop or start one
    assert "another browser tab" in texts(other_tab)
    assert other_tab.button(key="start").disabled
    # ... and its live curves: loss and accuracy per batch with a smoothing control, and the lr
    assert len(other_tab.get("vega_lite_chart")) >= 3 and other_tab.slider(key="curve_smoothing")

    at.run()
    at.button(key="stop").click().run()
    snap = _wait_for_job(at, lambda s: not s.active)
    assert snap.result_status == "stopped"
    card = runs_store().load_card("apptest_stop")
    assert card["status"] == "stopped" and 1 <= card["epochs_run"] < 20
    assert runs_store().load_model("apptest_stop").count_params() == card["params"]


@pytest.mark.slow  # trains a model
def test_second_start_while_running_gets_a_clear_message(isolated_runs):
    from app_pages._common import get_jobs
    from cnn_core.base.errors import TrainingBusyError
    from cnn_core.train.recipes import resolve_config

    jobs = get_jobs()
    jobs.start(resolve_config("mnist", "seed", epochs=2, subset=1000), "busy_one", owner="a")
    try:
        with pytest.raises(TrainingBusyError, match="already in progress"):
            jobs.start(resolve_config("mnist", "seed", epochs=1, subset=500), "busy_two", owner="b")
        assert not jobs.stop(jobs.snapshot().job_id, owner="b")  # not the owner
    finally:
        jobs.stop(jobs.snapshot().job_id, owner="a")
        jobs.wait(120)


def test_explain_page_shows_gradcam_feature_maps_and_layers_for_a_test_image():
    at = open_page("app_pages/explain.py")
    assert not at.exception, at.exception
    headers = [h.value for h in at.subheader]
    assert any("Grad-CAM" in h for h in headers) and any("Feature maps" in h for h in headers)
    from app_pages._common import get_predictor
    from cnn_core.analysis.explain import conv_layer_names

    model = get_predictor(at.selectbox(key="explain_model").value).model
    layers = at.selectbox(key="fm_layer").options  # one entry per conv layer, named after it
    assert [option.split(" — ")[0] for option in layers] == conv_layer_names(model)
    table = at.dataframe[0].value  # the layer table: every layer of the model, parameters adding up
    assert list(table["layer"]) == [layer.name for layer in model.layers]
    assert table["parameters"].sum() == model.count_params()


def test_draw_page_carries_its_input_to_the_explain_page(data_dir):
    from cnn_core.data.datasets import load_dataset

    at = open_page("app_pages/draw.py")
    data = load_dataset("mnist", data_dir)
    i = int(np.flatnonzero(data.y_test == 3)[0])
    photo = np.asarray(Image.fromarray(data.x_test[i]).resize((200, 200)))
    at.file_uploader(key="digit_upload").set_value(("three.png", _png(photo), "image/png"))
    at.run()
    assert at.session_state["explain_input"]["source"] == "drawing"
    at.switch_page("app_pages/explain.py")
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key="explain_source").value == "Your drawing"
    captions = [c for image in at.image for c in image.captions]
    assert "Cropped to the ink" in captions and "Centred by mass in 28×28" in captions


def test_compare_page_puts_models_side_by_side():
    at = open_page("app_pages/compare.py")
    assert not at.exception, at.exception
    at.selectbox(key="cmp_dataset").set_value("mnist").run()
    table = at.dataframe[0].value
    assert "mnist_fast" in table.index and "test accuracy" in table.columns
    from cnn_core.studio.benchmark_figures import ensemble_figures

    measured = at.dataframe[-1].value  # what TTA and ensembles buy, from beside the shipped models
    assert "TTA" in measured.columns and len(measured) == len(ensemble_figures("mnist")["rows"])


def test_photo_page_tta_option_changes_the_prediction_path():
    at = open_page("app_pages/photo.py")
    at.get("button_group")[-1].set_value(["automobile_cifar10_test_6"]).run()
    with_tta = [p.proto.text for p in at.get("progress")]
    from cnn_core.predict.inference import tta_level
    from cnn_core.studio.catalog import list_models, rank_for_choice

    default = rank_for_choice(list_models("cifar10"))[0]
    assert default["store"] == "shipped" and tta_level(default["tta"]) > 0
    tta = at.radio(key=f"photo_tta_{default['name']}")
    assert tta.value == tta_level(default["tta"])  # as the default model's card says
    tta.set_value(0).run()
    assert not at.exception
    without = [p.proto.text for p in at.get("progress")]
    assert len(without) == 3 and without != with_tta  # averaging with the mirror image changes the numbers


def test_photo_page_switches_to_the_most_accurate_measured_ensemble():
    from cnn_core.base.store import shipped_store
    from cnn_core.data.preprocess import load_image
    from cnn_core.predict.inference import load_ensemble, top_k
    from cnn_core.studio.benchmark_figures import best_ensemble

    best = best_ensemble("cifar10", set(shipped_store().names()))
    assert best is not None, "rerun benchmarks/tta_ensembles.py: no shipped CIFAR-10 ensemble beats its members"
    at = open_page("app_pages/photo.py")
    at.get("button_group")[-1].set_value(["automobile_cifar10_test_6"]).run()
    single = [p.proto.text for p in at.get("progress")]
    toggle = at.toggle(key="photo_best_ensemble")
    assert " + ".join(best["models"]) in toggle.label and f"{best['accuracy']:.2%}" in toggle.label
    toggle.set_value(True).run()
    assert not at.exception and not [
        r for r in at.radio if r.key.startswith("photo_tta")
    ]  # the ensemble sets its own TTA
    shown = [p.proto.text for p in at.get("progress")]
    # What the page shows is the ensemble's own prediction for the sample.
    sample = next((SAMPLES / "cifar10").glob("automobile_cifar10_test_6.*"))
    probs = load_ensemble(best["models"], best["tta"]).predict_image(load_image(sample.read_bytes()))[1]
    classes = shipped_store().load_card(best["models"][0])["class_names"]
    expected = [f"{rank}. **{c}** — {p:.1%}" for rank, (c, p) in enumerate(top_k(probs, classes, 3), 1)]
    assert shown == expected and shown != single


def test_photo_page_warns_when_a_picture_is_none_of_the_classes(data_dir):
    """A handwritten digit shown to the clothes model is flagged; a real clothes photo is not.
    Which digit gets flagged is decided by the model's detector itself, through the page's own path."""
    from cnn_core.data.datasets import load_dataset
    from cnn_core.predict.inference import load_predictor

    predictor = load_predictor("fashion_mnist_fast")
    assert predictor.detector is not None, "the shipped Fashion-MNIST model should carry its detector"

    def looks_foreign(data) -> bool:
        return bool(predictor.looks_foreign(predictor.predict_file(data)[0][None])[0])

    digits = load_dataset("mnist", data_dir).x_test[:40]
    uploads = [_png(np.asarray(Image.fromarray(d).resize((112, 112)))) for d in digits]
    flagged = next(b for b in uploads if looks_foreign(b))
    sample = next(p for p in sorted((SAMPLES / "fashion_mnist").glob("*.png")) if not looks_foreign(str(p)))

    at = open_page("app_pages/photo.py")
    at.button_group(key="photo_dataset").set_value("fashion_mnist").run()
    assert any("not one of these classes" in e.label for e in at.expander)
    measured = at.table[0].value  # the benchmark's figures for this model's detector
    assert "AUROC" in measured.columns and "mnist test images" in set(measured["pictures"])
    at.file_uploader(key="photo_upload").set_value(("digit.png", flagged, "image/png")).run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("does not look like any of the 10 Fashion-MNIST clothing items" in w for w in warnings), warnings

    at.file_uploader(key="photo_upload").set_value(("item.png", sample.read_bytes(), "image/png")).run()
    assert not any("does not look like" in w.value for w in at.warning)


def test_reruns_keep_keras_state_but_still_close_pyplot_figures():
    """Streamlit would reset Keras (garbage collection, TensorFlow kernel caches) after every
    script run of every visitor; the app turns that off and keeps the pyplot cleanup."""
    import keras
    import matplotlib.pyplot as plt
    from keras.src.backend.common import global_state
    from streamlit.runtime.scriptrunner import script_runner

    open_page("app_pages/home.py")  # app.py installs the replacement
    global_state.set_global_attribute("cnn_probe", 1)
    plt.figure()
    script_runner._clean_problem_modules()
    assert global_state.get_global_attribute("cnn_probe") == 1
    assert plt.get_fignums() == []
    keras.backend.clear_session()  # the real reset still works when someone asks for it
    assert global_state.get_global_attribute("cnn_probe") is None


def test_draw_page_says_a_photo_is_not_a_digit_and_lets_a_digit_pass(data_dir):
    """The issue's example: a photo of a car uploaded on the Draw page."""
    from cnn_core.data.datasets import load_dataset

    car = next((SAMPLES / "cifar10").glob("automobile_*")).read_bytes()
    at = open_page("app_pages/draw.py")
    at.file_uploader(key="digit_upload").set_value(("car.png", car, "image/png")).run()
    assert not at.exception, at.exception
    assert any("This does not look like a handwritten digit." in w.value for w in at.warning)
    digit = np.asarray(Image.fromarray(load_dataset("mnist", data_dir).x_test[0]).resize((140, 140)))
    at.file_uploader(key="digit_upload").set_value(("seven.png", _png(digit), "image/png")).run()
    assert at.metric[0].value == "7" and not any("does not look like" in w.value for w in at.warning)
    assert any("not one of these classes" in e.label for e in at.expander)  # how the warning works, measured


def test_each_results_tab_runs_alone_when_opened():
    """The Results page's tabs are lazy (only the open one runs): each must work when it is the one opened,
    and draw only its own section."""
    at = open_page("app_pages/results.py")
    at.selectbox(key="results_model").set_value("cifar10_fast").run()
    sections = {
        "Confusion matrix & mistakes": lambda: (
            at.get("vega_lite_chart")
            and at.toggle(key="cm_norm")
            and any("predicted as" in m.value for m in at.markdown)
        ),
        "Per-class report": lambda: len(at.dataframe) == 1 and any("Macro F1" in c.value for c in at.caption),
        "Sample predictions": lambda: len(at.image) == 1 and any("Random test images" in c.value for c in at.caption),
        "Training curves": lambda: len(at.image) == 1 and not at.dataframe,
        "Epoch by epoch": lambda: any("nothing to replay" in i.value for i in at.info),  # shipped before snapshots
        "Augmentation": lambda: (
            at.number_input(key="aug_seed")
            and len(at.image) == 1
            and any("Augmentation used in training" in m.value for m in at.markdown)
        ),
        "Model card": lambda: at.code and at.json and len(at.get("download_button")) >= 3 and not at.image,
    }
    for tab, drawn in sections.items():
        at.session_state["results_tab"] = tab
        at.run()
        assert not at.exception, (tab, at.exception)
        assert drawn(), tab


def test_the_confusion_view_over_a_smaller_test_set_than_evaluated_shows_the_evaluations_own_images(small_data_env):
    """A data folder with fewer test images than a shipped model was evaluated on (a trimmed copy): the
    mistakes' indices are the evaluation's, so their pictures come from its gallery, never from that folder."""
    at = open_page("app_pages/results.py")
    at.selectbox(key="results_model").set_value("mnist_fast30").run()
    at.session_state["results_tab"] = "Confusion matrix & mistakes"
    at.run()
    assert not at.exception, at.exception
    assert any("predicted as" in m.value for m in at.markdown) and at.image
