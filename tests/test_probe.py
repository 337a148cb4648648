"""Probing the model: what-if edits and the occlusion map (cnn_core.analysis.whatif), adversarial examples
(cnn_core.analysis.adversarial), nearest training images (cnn_core.analysis.neighbours), and the Probe page on every dataset."""

import numpy as np
import pytest
from test_app import open_page, texts

from cnn_core.analysis.adversarial import MAX_EPSILON, attack, fgsm, smallest_flip
from cnn_core.analysis.neighbours import cached_index, index_path
from cnn_core.analysis.whatif import GREY, Edit, apply_edit, occlusion_map
from cnn_core.base.errors import ConfigError
from cnn_core.base.store import ModelStore
from cnn_core.data.datasets import load_dataset
from cnn_core.predict.inference import load_predictor
from conftest import SMALL_TRAIN

# cifar10_seed for photos: the nearest-neighbour index runs every training image through it, and its
# network is a third of the arithmetic of the airbench ones, with no test-time augmentation.
MODELS = {"mnist": "mnist_fast30", "fashion_mnist": "fashion_mnist_fast", "cifar10": "cifar10_seed"}


def test_edits_do_what_they_say():
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255  # a vertical bar
    assert np.array_equal(apply_edit(digit, Edit()), digit)  # no edit: the same picture
    right = apply_edit(digit, Edit(shift_x=3))
    assert np.array_equal(right[:, 15:19], digit[:, 12:16]) and right[:, :15].max() == 0
    turned = apply_edit(digit, Edit(rotate=90))  # a vertical bar turned a quarter is horizontal
    rows, cols = np.nonzero(turned > 127)
    assert np.ptp(cols) > 3 * np.ptp(rows)
    assert apply_edit(digit, Edit(scale=2)).astype(bool).sum() > 3 * digit.astype(bool).sum()
    blurred = apply_edit(digit, Edit(blur=1.5))
    assert blurred.max() < 255 and blurred.astype(bool).sum() > digit.astype(bool).sum()
    covered = apply_edit(digit, Edit(occlude=(0, 0, 10)))
    assert np.all(covered[:10, :10] == GREY) and np.array_equal(covered[10:], digit[10:])
    photo = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert apply_edit(photo, Edit(rotate=15, blur=1)).shape == (32, 32, 3)
    with pytest.raises(ConfigError, match="scale"):
        Edit(scale=10)


def test_the_occlusion_map_finds_the_pixels_a_decision_rests_on():
    def predict(batch):  # "class 1" exactly as bright as the top-left 6×6 corner
        corner = batch[:, :6, :6].astype(float).mean(axis=(1, 2)) / 255
        return np.stack([1 - corner, corner], axis=1)

    picture = np.zeros((28, 28), np.uint8)
    picture[:6, :6] = 255
    drop = occlusion_map(predict, picture, 1, patch=4, stride=2)
    assert drop.shape == (28, 28) and drop[:6, :6].min() > 0.1 and np.abs(drop[12:, 12:]).max() == 0


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(MODELS))
def test_attacks_change_answers_and_stay_within_epsilon(data_dir, dataset):
    predictor = load_predictor(MODELS[dataset])
    data = load_dataset(dataset, data_dir)
    sample = data.x_test[0]
    answer = int(predictor.predict_samples(sample[None])[0].argmax())
    nudged = fgsm(predictor.model, sample, 0.03, answer)
    assert np.abs(nudged - sample.astype(np.float32)).max() <= 0.03 * 255 + 1e-3 and nudged.min() >= 0
    weaker = attack(predictor, sample, 0.03, "fgsm").probs[answer]
    assert weaker < predictor.predict_samples(sample[None])[0][answer]  # pushed away from its answer
    found = smallest_flip(predictor, sample, "fgsm")
    assert found is not None and found.answer != answer and 0 < found.epsilon <= MAX_EPSILON
    just_below = attack(predictor, sample, max(0.0, found.epsilon - 0.004), "fgsm")
    assert just_below.answer == answer  # the bisection's ε is (to its tolerance) the smallest
    pgd = attack(predictor, sample, found.epsilon, "pgd")
    assert pgd.probs[answer] <= found.probs[answer] + 0.05  # PGD does at least about as well at that ε


@pytest.mark.slow
def test_nearest_training_images_of_a_training_image_include_itself(tmp_path, small_data_dir):
    predictor = load_predictor("mnist_fast30")
    data = load_dataset("mnist", small_data_dir)
    cache = ModelStore(tmp_path, "runs", writable=True)
    told = []
    index = cached_index(cache, "mnist_fast30", predictor.model, data, 1, progress=told.append)
    assert told[-1] == 1.0 and index.points.shape == (SMALL_TRAIN, 64) and index.points.dtype == np.float16
    assert index_path(cache, "mnist_fast30").stat().st_size < 10 * 2**20
    found = index.nearest(predictor.model, data.x_train[123], data.info, k=5)
    assert found[0]["index"] == 123 and found[0]["distance"] < 0.5  # itself (float16 rounding apart)
    assert [f["distance"] for f in found] == sorted(f["distance"] for f in found)
    assert sum(f["label"] == data.y_train[123] for f in found) >= 4
    # Cached: the same version of the model is read back without running the network again.
    calls = len(told)
    again = cached_index(cache, "mnist_fast30", predictor.model, data, 1, progress=told.append)
    assert len(told) == calls and np.array_equal(again.points, index.points)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(MODELS))
def test_probe_page_on_every_dataset(dataset, small_data_env):
    at = open_page("app_pages/probe.py")
    at.selectbox(key="probe_model").set_value(MODELS[dataset]).run()
    assert not at.exception, at.exception
    assert at.radio(key="probe_source").value == "A test image"
    assert any("Edited:" in c for image in at.image for c in image.captions)
    at.slider(key="wi_rotate").set_value(45).run()
    at.toggle(key="wi_occlusion").set_value(True).run()
    captions = [c for image in at.image for c in image.captions]
    assert any(c.startswith("Occlusion") for c in captions) and any(c.startswith("Grad-CAM") for c in captions)
    at.slider(key="adv_eps").set_value(0.1).run()
    at.button(key="adv_find").click().run()
    assert not at.exception, at.exception
    assert "turns the answer into" in texts(at) or "does not change the answer" in texts(at)
    at.button(key="nn_build").click().run(timeout=900)  # runs the whole training set through the network once
    assert not at.exception, at.exception
    assert "training images nearest to the input" in texts(at)
