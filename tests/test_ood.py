"""The out-of-distribution detector: its statistics, its calibration on the validation split, how
it is saved and loaded, the CLI, and — with real data and the shipped models — that it tells the
model's own kind of picture from others (the full measurement is benchmarks/ood.py)."""

from pathlib import Path

import numpy as np
import pytest

from cnn_core import cli
from cnn_core.base.errors import ConfigError
from cnn_core.base.store import runs_store, shipped_store
from cnn_core.predict.inference import load_inference_model, load_predictor
from cnn_core.predict.ood import (
    DEFAULT_PASS_RATE,
    SCORE,
    auroc,
    calibrate,
    gaussians_detector,
    load_detector,
    save_detector,
    through_preprocessing,
    typicality,
)
from cnn_core.train.recipes import resolve_config
from cnn_core.train.training import train
from conftest import synthetic_dataset

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"


def _with_probabilities(layers):
    """Synthetic features as cnn_core.predict.embedding gives them: the layers (the last one the logits), then
    the probabilities."""
    logits = layers[-1] - layers[-1].max(axis=1, keepdims=True)
    return [*layers, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)]


def _gaussian_detector(rng, dims=(4, 3)):
    """A detector on two synthetic feature layers (the second as the logits of three classes), each
    class a Gaussian blob."""
    centres = [rng.normal(0, 5, size=(3, d)) for d in dims]
    labels = rng.integers(0, 3, 3000)
    fit = [c[labels] + rng.normal(size=(3000, c.shape[1])) for c in centres]
    val_labels = rng.integers(0, 3, 1000)
    val = _with_probabilities([c[val_labels] + rng.normal(size=(1000, c.shape[1])) for c in centres])
    detector = gaussians_detector(["a", "logits"], fit, labels)
    detector.set_reference(detector.distances(val), DEFAULT_PASS_RATE)
    return detector, centres


def test_pictures_far_from_every_class_at_any_layer_score_lower():
    rng = np.random.default_rng(0)
    detector, centres = _gaussian_detector(rng)
    labels = rng.integers(0, 3, 500)
    typical = _with_probabilities([c[labels] + rng.normal(size=(500, c.shape[1])) for c in centres])
    # Strange at the first layer only: still caught, since Fisher's method sums every layer's evidence.
    strange = _with_probabilities([typical[0] + 10.0, typical[1]])
    assert auroc(detector.scores(typical), detector.scores(strange)) > 0.99
    flagged = np.mean(detector.scores(typical) < detector.threshold)
    assert flagged <= 0.03  # the threshold lets 99% of validation pictures pass; new typical ones behave alike
    assert np.mean(detector.scores(strange) < detector.threshold) > 0.9
    # The distance is to the *nearest* class mean: a picture at any fitted class mean is at distance 0.
    at_centres = _with_probabilities([np.repeat(m, 2, axis=0) for m in detector.means])
    assert np.all(detector.distances(at_centres)[:, :2] < 1e-6)


def test_detector_survives_saving_and_loading(tmp_path):
    from cnn_core.base.store import ModelStore

    detector, centres = _gaussian_detector(np.random.default_rng(1))
    store = ModelStore(tmp_path, "runs", writable=True)
    save_detector(store, "m", detector)
    card = {"ood": {"score": SCORE, "threshold": detector.threshold}}
    loaded = load_detector(store, "m", card)
    probe = _with_probabilities([c + 0.5 for c in centres])
    assert loaded.layers == ["a", "logits"] and loaded.threshold == detector.threshold
    np.testing.assert_allclose(loaded.scores(probe), detector.scores(probe), rtol=1e-5)
    assert load_detector(store, "m", {"ood": {"score": "max_softmax", "threshold": 0.7}}) is None  # an old card
    assert load_detector(store, "other", card) is None


def _tiny_run(name, val_size):
    data = synthetic_dataset("mnist", n_train=600, n_test=100)
    config = resolve_config("mnist", "fast", epochs=2, batch_size=32, val_size=val_size, seed=3)
    train(config, name, data=data, command="test")
    return data, runs_store().load_card(name)


@pytest.mark.slow  # trains a model
def test_training_with_a_validation_split_fits_a_detector_and_the_split_is_rebuilt_exactly():
    data, card = _tiny_run("with_val", val_size=200)
    ood = card["ood"]
    assert ood["score"] == SCORE and ood["pass_rate"] == DEFAULT_PASS_RATE
    assert "200 training images" in ood["calibrated_on"] and ood["fitted_on"] == "400 training images"
    assert ood["val_flagged"] <= 0.02 and ood["threshold"] < 0
    predictor = load_predictor("with_val", store=runs_store())
    assert predictor.detector is not None and predictor.detector.layers == ood["layers"][:-2]
    # Every stage, the head, and the output's two scores.
    assert ood["layers"][-4:] == ["last_hidden", "logits", "energy", "top_probability"] and len(ood["layers"]) > 4
    # Calibrating the saved model again (what `python -m cnn_core calibrate` does) rebuilds the same
    # validation split and training images from the card, so it lands on the same threshold.
    again, _ = calibrate(load_inference_model(runs_store(), "with_val"), card, data)
    assert again.threshold == pytest.approx(ood["threshold"], rel=1e-4)


@pytest.mark.slow  # trains a model
def test_training_without_a_validation_split_has_no_detector():
    data, card = _tiny_run("no_val", val_size=0)
    assert card["ood"] is None
    predictor = load_predictor("no_val", store=runs_store())
    assert predictor.detector is None and predictor.looks_foreign(data.x_test[:3]) is None
    with pytest.raises(ConfigError, match="without a validation split"):
        calibrate(predictor.model, card, data)


@pytest.mark.slow  # trains a model
def test_cli_calibrate_writes_the_card_and_the_detector_and_refuses_shipped_models(data_dir, capsys):
    _tiny_run("mnist_tiny", val_size=200)
    card = runs_store().load_card("mnist_tiny")
    card["ood"] = None
    runs_store().save_json("mnist_tiny", ".json", card)
    runs_store().path("mnist_tiny", ".detector.npz").unlink()
    # The run was trained on synthetic images; calibrating on real MNIST is what a user would do.
    assert cli.main(["calibrate", "--model", "mnist_tiny", "--pass-rate", "0.9", "--data-dir", str(data_dir)]) == 0
    ood = runs_store().load_card("mnist_tiny")["ood"]
    assert ood["pass_rate"] == 0.9 and "calibrate --model mnist_tiny" in ood["command"]
    assert runs_store().path("mnist_tiny", ".detector.npz").is_file()
    assert "flagged as not mnist images" in capsys.readouterr().out

    shipped = shipped_store().names()[0]
    assert cli.main(["calibrate", "--model", shipped]) == 2
    assert "read-only" in capsys.readouterr().err


def test_other_datasets_go_through_the_upload_path(data_dir):
    from cnn_core.data.datasets import load_dataset

    digits = load_dataset("mnist", data_dir).x_test[:5]
    as_photos = through_preprocessing(digits, "cifar10")
    assert as_photos.shape == (5, 32, 32, 3) and as_photos.dtype == np.uint8
    assert np.all(as_photos[..., 0] == as_photos[..., 1])  # grey stays grey in colour
    photos = load_dataset("cifar10", data_dir).x_test[:5]
    assert through_preprocessing(photos, "fashion_mnist").shape == (5, 28, 28)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist_fast30", "fashion_mnist_fast", "cifar10_airbench12_s1"])
def test_a_shipped_model_tells_its_own_pictures_from_other_kinds(data_dir, name):
    from cnn_core.data.datasets import load_dataset

    predictor = load_predictor(name, store=shipped_store())
    assert predictor.detector is not None, f"{name} ships without its detector (python -m cnn_core calibrate)"
    dataset = predictor.info.name
    own = load_dataset(dataset, data_dir).x_test[:500]
    own_scores = typicality(predictor.model, predictor.detector, own, predictor.info)
    assert np.mean(own_scores < predictor.detector.threshold) < 0.04  # 1% of the validation split is flagged
    for other in {"mnist", "fashion_mnist", "cifar10"} - {dataset}:
        x = through_preprocessing(load_dataset(other, data_dir).x_test[:500], dataset)
        other_scores = typicality(predictor.model, predictor.detector, x, predictor.info)
        assert auroc(own_scores, other_scores) > 0.9, (name, other)


def test_cli_predict_warns_that_a_photo_is_not_a_digit(tmp_path, capsys):
    """The issue's own example: a photo of a car given to the digit model."""
    from PIL import Image

    from cnn_core.data.datasets import load_dataset

    car = next((SAMPLES / "cifar10").glob("automobile_*"))
    digit = tmp_path / "seven.png"
    Image.fromarray(load_dataset("mnist").x_test[0]).resize((112, 112)).save(digit)  # test digit 0 is a 7
    assert cli.main(["predict", "--model", "mnist_fast30", str(car), str(digit)]) == 0
    car_line, digit_line = capsys.readouterr().out.strip().splitlines()
    assert "warning: This does not look like a handwritten digit" in car_line
    assert digit_line.startswith(f"{digit}: 7 ") and "warning" not in digit_line
    assert cli.main(["predict", "--model", "mnist_fast30", "--json", str(car)]) == 0
    assert '"out_of_distribution": true' in capsys.readouterr().out
