"""Predictions through LiteRT match Keras' for every shipped model, from any number of threads,
and fall back to Keras where LiteRT cannot serve. Every shipped model's committed LiteRT file is fresh
and computes what its Keras model does, features included, without TensorFlow."""

import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from cnn_core.base.errors import ConfigError
from cnn_core.base.store import ModelStore, shipped_store
from cnn_core.data.datasets import load_dataset
from cnn_core.predict import lite
from cnn_core.predict.embedding import feature_names, features
from cnn_core.predict.inference import ensemble_of, load_inference_model, load_predictor
from conftest import REPO, every_shipped_model

SHIPPED = shipped_store().names()


def test_any_batch_size_and_any_thread(data_dir):
    predictor = load_predictor("mnist_fast30")
    x = load_dataset("mnist", data_dir).x_test[:24]
    expected = predictor.predict_samples(x)
    # Single images between batches of other sizes: the interpreter re-plans for each size.
    np.testing.assert_allclose(predictor.predict_samples(x[:1]), expected[:1], atol=1e-6)
    np.testing.assert_allclose(predictor.predict_samples(x[:3]), expected[:3], atol=1e-6)
    results, errors = {}, []

    def visitor(i):
        try:
            for _ in range(20):
                results[i] = predictor.predict_samples(x[i : i + 1 + i % 3])
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, probs in results.items():
        np.testing.assert_allclose(probs, expected[i : i + 1 + i % 3], atol=1e-6)


def test_without_litert_predictions_stay_on_keras(monkeypatch):
    monkeypatch.setattr(lite, "litert_available", lambda: False)
    predictor = load_predictor("mnist_fast30")
    assert predictor.runtime == "keras" and not predictor.runners
    with pytest.raises(ConfigError, match="ai-edge-litert"):
        load_predictor("mnist_fast30", runtime="litert")


def test_a_failed_conversion_falls_back_to_keras(monkeypatch, caplog):
    def broken(model):
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(lite, "committed_lite_model", lambda *args: None)  # as for a run: converted on loading
    monkeypatch.setattr(lite, "to_flatbuffer", broken)
    predictor = load_predictor("mnist_fast30")
    assert predictor.runtime == "keras"
    assert "converter exploded" in caplog.text


def test_bfloat16_and_unknown_runtimes_are_refused():
    with pytest.raises(ConfigError, match="float32"):
        load_predictor("mnist_fast30", precision="bf16", runtime="litert")
    assert load_predictor("mnist_fast30", precision="bf16").runtime == "keras"
    with pytest.raises(ConfigError, match="Unknown runtime"):
        load_predictor("mnist_fast30", runtime="onnx")


def test_ensembles_run_each_member_through_its_runtime(data_dir):
    a, b = load_predictor("mnist_fast30"), load_predictor("mnist_fast", runtime="keras")
    pair = ensemble_of([a, b])
    assert pair.name == "mnist_fast30+mnist_fast" and pair.runtime == "keras+litert"
    x = load_dataset("mnist", data_dir).x_test[:8]
    np.testing.assert_allclose(pair.predict_samples(x), (a.predict_samples(x) + b.predict_samples(x)) / 2, atol=1e-6)


# -- the committed LiteRT files ---------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_has_a_fresh_litert_file(name):
    store = shipped_store()
    entry = store.load_card(name).get("litert")
    assert entry, f"{name} has no LiteRT file: CNN_RUNS_DIR=trained_models python -m cnn_core litert {name}"
    assert entry["file"] == f"{name}.tflite" and store.path(name, ".tflite").is_file()
    assert entry["keras_sha256"] == lite.file_sha256(store.model_path(name)), (
        f"{name}.tflite is stale: CNN_RUNS_DIR=trained_models python -m cnn_core litert {name}"
    )
    assert entry["features"] == feature_names(load_inference_model(store, name))
    assert sorted(entry["output_order"]) == list(range(len(entry["features"])))


# Every output, probabilities and the detector's features alike, within this of Keras' (relative to the
# largest value of that output: pooled activations and logits run to tens).
def _assert_close(lite_out: np.ndarray, keras_out: np.ndarray, what: str):
    scale = max(1.0, float(np.abs(keras_out).max()))
    worst = float(np.abs(lite_out - keras_out).max())
    assert worst <= lite.LITERT_TOLERANCE * scale, f"{what}: differs from Keras by {worst:.2e} (scale {scale:.1f})"


@pytest.mark.parametrize("name", every_shipped_model())
def test_a_committed_litert_file_computes_what_keras_does_on_a_thousand_test_images(name, data_dir):
    served = load_predictor(name, keras=False)
    assert served.model is None and served.runtime == "litert" and served.runners[0].has_features
    model = load_inference_model(shipped_store(), name)
    samples = load_dataset(served.info.name, data_dir).x_test[:1000]
    ours, theirs = (
        features(served.runners[0], samples, served.info),
        features(model, samples, served.info),
    )
    for what, a, b in zip(feature_names(model), ours, theirs, strict=True):
        _assert_close(a, b, f"{name} {what}")
    # What the pages show: probabilities at every TTA level (the same answers), and the detector's verdicts.
    keras_served = load_predictor(name, runtime="keras")
    for tta in (0, 1, 2):
        ours, theirs = (ensemble_of([p], tta).predict_samples(samples[:100]) for p in (served, keras_served))
        np.testing.assert_array_equal(ours.argmax(axis=1), theirs.argmax(axis=1))
        _assert_close(ours, theirs, f"{name} at TTA level {tta}")
    if served.detector is not None:
        assert (served.looks_foreign(samples[:200]) == keras_served.looks_foreign(samples[:200])).all()


def test_the_cli_writes_a_runs_litert_file_and_a_changed_model_makes_it_stale(tmp_path, monkeypatch, caplog):
    from cnn_core.cli import main

    monkeypatch.setenv("CNN_RUNS_DIR", str(tmp_path))
    for suffix in (".keras", ".json", ".detector.npz"):  # a run: no LiteRT file yet
        shutil.copy(shipped_store().path("mnist_fast", suffix), tmp_path / f"mine{suffix}")
    card = json.loads((tmp_path / "mine.json").read_text())
    card.pop("litert", None)
    (tmp_path / "mine.json").write_text(json.dumps({**card, "name": "mine"}))
    runs = ModelStore(tmp_path, "runs", writable=True)
    assert load_predictor("mine", store=runs, keras=False).model is not None  # nothing committed: Keras loads
    assert main(["litert", "mine"]) == 0
    assert runs.load_card("mine")["litert"]["file"] == "mine.tflite" and (tmp_path / "mine.tflite").is_file()
    served = load_predictor("mine", store=runs, keras=False)
    assert served.model is None and served.runtime == "litert"
    # A model file that changes (a retrained run of the same name) makes its LiteRT file stale.
    shutil.copy(shipped_store().model_path("mnist_fast30"), tmp_path / "mine.keras")
    assert load_predictor("mine", store=runs, keras=False).model is not None
    assert "mine.tflite is stale" in caplog.text
    assert main(["litert", "nobody"]) == 2


_WITHOUT_TENSORFLOW = r"""
import json, sys
from streamlit.testing.v1 import AppTest
from cnn_core.cli import main

photo, digit = sys.argv[1], sys.argv[2]
at = AppTest.from_file("app.py", default_timeout=120)
at.run()
at.switch_page("app_pages/draw.py").run()
at.file_uploader(key="digit_upload").set_value(("seven.png", open(digit, "rb").read(), "image/png")).run()
drawn = at.metric[0].value if at.metric else None
at.switch_page("app_pages/photo.py").run()
at.file_uploader(key="photo_upload").set_value([("photo.png", open(photo, "rb").read(), "image/png")]).run()
main(["predict", "--model", "cifar10_airbench12_s1", "--json", photo])
print(json.dumps({"drawn": drawn, "errors": [e.value for e in at.error] + [e.value for e in at.exception],
                  "tensorflow": "tensorflow" in sys.modules, "keras": "keras" in sys.modules}))
"""


@pytest.mark.slow  # a fresh process (one that never imports TensorFlow)
def test_the_draw_and_photo_pages_and_predict_run_without_tensorflow(tmp_path):
    from tests.test_bad_input import _canvas, _png, _seven

    digit = tmp_path / "seven.png"
    digit.write_bytes(_png(_canvas(_seven)))
    photo = min((REPO / "assets" / "samples" / "cifar10").glob("*.png"))
    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TENSORFLOW, str(photo), str(digit)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    result, predicted = json.loads(lines[-1]), json.loads(lines[-2])
    assert result["drawn"] == "7" and not result["errors"], result
    assert predicted["runtime"] == "litert" and predicted["out_of_distribution"] is not None
    assert not result["tensorflow"] and not result["keras"], "serving a prediction imported TensorFlow"
