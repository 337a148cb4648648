"""Calibration: temperature scaling, reliability and ECE (cnn_core.predict.calibration), the app's calibrated
probabilities, and the Calibration page."""

import numpy as np
import pytest
from test_app import open_page

from cnn_core.base.store import shipped_store
from cnn_core.predict.calibration import class_confidence_gaps, fit_temperature, reliability, with_temperature
from cnn_core.predict.inference import ensemble_of, load_predictor


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _overconfident(n=20_000, sharpen=2.0, seed=0):
    """Labels drawn from softmax(z); the "model" says softmax(sharpen·z): over-confident by `sharpen`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, 10))
    truth = _softmax(z)
    labels = np.array([rng.choice(10, p=p) for p in truth])
    return _softmax(sharpen * z), labels


def test_temperature_keeps_the_answer_and_spreads_or_sharpens_the_confidence():
    probs = _softmax(np.random.default_rng(1).normal(size=(50, 10)) * 3)
    np.testing.assert_allclose(with_temperature(probs, 1.0), probs, rtol=1e-6)
    softer, sharper = with_temperature(probs, 2.0), with_temperature(probs, 0.5)
    assert np.array_equal(softer.argmax(1), probs.argmax(1)) and np.array_equal(sharper.argmax(1), probs.argmax(1))
    assert np.all(softer.max(1) < probs.max(1)) and np.all(sharper.max(1) > probs.max(1))
    np.testing.assert_allclose(softer.sum(1), 1.0)


def test_fitted_temperature_undoes_overconfidence_and_lowers_the_ece():
    probs, labels = _overconfident()
    t = fit_temperature(probs[:10_000], labels[:10_000])
    assert t == pytest.approx(2.0, rel=0.1)
    before = reliability(probs[10_000:], labels[10_000:])
    after = reliability(with_temperature(probs[10_000:], t), labels[10_000:])
    assert before["ece"] > 0.05 and after["ece"] < 0.02
    assert sum(b["count"] for b in after["bins"]) == 10_000
    assert all(b["confidence"] > b["accuracy"] for b in before["bins"] if b["count"] > 200 and b["low"] >= 0.5)
    gaps = class_confidence_gaps(probs, labels, [str(c) for c in range(10)])
    assert len(gaps) == 10 and all(g["gap"] > 0 for g in gaps)  # over-confident about every class


def test_the_app_and_predict_use_the_cards_temperature_and_benchmarks_do_not(data_dir):
    from cnn_core.data.datasets import load_dataset

    name = "fashion_mnist_fast"
    scaling = shipped_store().load_card(name)["calibration"]
    x = load_dataset("fashion_mnist", data_dir).x_test[:64]
    raw, shown = load_predictor(name), load_predictor(name, calibrated=True)
    assert raw.temperature is None and shown.temperature == scaling["temperature"]
    np.testing.assert_allclose(
        shown.predict_samples(x), with_temperature(raw.predict_samples(x), scaling["temperature"]), atol=1e-5
    )
    # An ensemble averages its members' probabilities as measured, without one member's temperature.
    pair = ensemble_of([shown, load_predictor("fashion_mnist_fast", calibrated=True)])
    np.testing.assert_allclose(pair.predict_samples(x), raw.predict_samples(x), atol=1e-5)


def test_every_shipped_model_with_a_validation_split_is_calibrated_and_better_for_it():
    for name in shipped_store().names():
        card = shipped_store().load_card(name)
        if not card["hyperparameters"].get("val_size"):
            continue
        scaling = card.get("calibration")
        assert scaling, f"{name}: run python -m cnn_core calibrate --model {name}"
        assert 0.05 < scaling["temperature"] < 20 and scaling["after"]["ece"] <= scaling["before"]["ece"] + 0.005, name


def test_calibration_page_shows_the_diagram_and_the_ece_before_and_after():
    at = open_page("app_pages/calibration.py")
    at.selectbox(key="calibration_model").set_value("cifar10_airbench12_s1").run()
    assert not at.exception, at.exception
    card = shipped_store().load_card("cifar10_airbench12_s1")["calibration"]
    shown = {m.label: m.value for m in at.metric}
    assert shown["ECE as trained"] == f"{card['before']['ece']:.2%}"
    assert shown["ECE with temperature scaling"] == f"{card['after']['ece']:.2%}"
    assert len(at.get("vega_lite_chart")) == 2
    at.selectbox(key="calibration_model").set_value("cifar10_fast").run()  # trained without a validation split
    assert "without a validation split" in at.info[0].value
