"""Predictions through LiteRT match Keras' for every shipped model, from any number of threads,
and fall back to Keras where LiteRT cannot serve."""

import threading

import numpy as np
import pytest

from cnn_core.base.errors import ConfigError
from cnn_core.base.store import shipped_store
from cnn_core.data.datasets import load_dataset
from cnn_core.predict import lite
from cnn_core.predict.inference import ensemble_of, load_predictor
from conftest import every_shipped_model

SHIPPED = shipped_store().names()


@pytest.mark.parametrize("name", every_shipped_model())
def test_litert_predictions_match_keras(name, data_dir):
    fast = load_predictor(name)
    assert fast.runtime == "litert" and fast.precision == "fp32"
    keras_run = load_predictor(name, runtime="keras")
    assert keras_run.runtime == "keras" and not keras_run.runners
    samples = load_dataset(fast.info.name, data_dir).x_test[:40]
    for tta in (False, True):
        a = ensemble_of([fast], tta).predict_samples(samples)
        b = ensemble_of([keras_run], tta).predict_samples(samples)
        np.testing.assert_array_equal(a.argmax(axis=1), b.argmax(axis=1))
        np.testing.assert_allclose(a, b, atol=1e-5)


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
