"""Teach your own classes: the picture set and its hostile-input checks, a real lesson on Fashion-MNIST classes
the CIFAR-10 backbone never saw, the CLI and the page (AppTest; training in the page is test_browser's)."""

import ast
import io
import json
import re
import runpy
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from cnn_core.base.errors import ImageError
from cnn_core.teach.pictures import MAX_CLASSES, PictureSet, read_folder, read_pictures, read_zip
from conftest import REPO

LESSON = {1: "trouser", 5: "sandal", 8: "bag"}  # Fashion-MNIST classes; CIFAR-10 has nothing like them


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def zip_of(entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def fashion_lesson(data, per_class: int, seed: int = 0) -> PictureSet:
    rng = np.random.default_rng(seed)
    pictures = PictureSet()
    for label, name in LESSON.items():
        pictures.add_class(name)
        for i in rng.choice(np.flatnonzero(data.y_train == label), per_class, replace=False):
            pictures.add(name, f"{i}.png", png(data.x_train[i]))
    return pictures


DOT = png(np.full((8, 8), 200))


# -- the picture set --------------------------------------------------------------------------------


def test_a_picture_set_goes_to_a_zip_and_comes_back_the_same():
    pictures = PictureSet()
    for name in ("cat", "Dog toy", "empty"):
        pictures.add_class(name)
    for i in range(3):
        pictures.add("cat", "image.png", png(np.full((9, 9), 10 * i)))  # one name for all: webcam shots do that
    pictures.add("Dog toy", "dog.png", DOT)
    again = read_zip(pictures.to_zip())
    assert again.class_names == ["cat", "Dog toy", "empty"]
    assert [p.name for p in again.classes["cat"]] == ["image.png", "image (2).png", "image (3).png"]
    assert again.fingerprint() == pictures.fingerprint()


def test_a_zip_with_an_enclosing_folder_and_mac_litter_imports_its_classes(tmp_path):
    archive = zip_of(
        {
            "lesson/a/1.png": DOT,
            "lesson/b/2.png": DOT,
            "__MACOSX/lesson/a/._1.png": b"junk",
            "lesson/.DS_Store": b"junk",
        }
    )
    assert read_zip(archive).counts() == {"a": 1, "b": 1}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(DOT)
    (tmp_path / "pack.zip").write_bytes(archive)
    assert read_folder(tmp_path).counts() == {"a": 1}
    assert read_pictures(tmp_path / "pack.zip").counts() == {"a": 1, "b": 1}


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ({"a/1.png": DOT, "a/notes.txt": b"hello"}, "'a/notes.txt' is not a picture"),
        ({"a/1.png": DOT, "a/fake.png": b"this is text, not a png"}, "fake.png: This file is not an image"),
        ({"loose.png": DOT, "a/1.png": DOT}, "'loose.png' is not inside a class folder"),
        ({"Cat/1.png": DOT, "cat/2.png": DOT}, "already a class named 'cat'"),
        ({}, "The zip holds no pictures"),
    ],
)
def test_a_bad_zip_is_refused_with_one_sentence_naming_the_problem(entries, words):
    with pytest.raises(ImageError, match=words):
        read_zip(zip_of(entries))


def test_a_zip_bomb_is_refused_before_it_is_unpacked():
    bomb = zip_of({"a/huge.png": b"\0" * (8 * 2**20)}, zipfile.ZIP_DEFLATED)  # 8 MB of zeros packs to ~8 KB
    assert len(bomb) < 100_000
    with pytest.raises(ImageError, match="decompression bomb"):
        read_zip(bomb)
    with pytest.raises(ImageError, match="not a zip archive"):
        read_zip(b"PK\x03\x04 but nothing after")


def test_an_oversized_picture_and_too_many_pixels_are_refused():
    pictures = PictureSet({"a": []})
    with pytest.raises(ImageError, match="larger than the 10 MB limit"):
        read_zip(zip_of({"a/big.png": bytes(11 * 2**20)}))
    wide = io.BytesIO()
    Image.new("L", (9000, 5000)).save(wide, "PNG")  # 45 megapixels of nothing: a few KB
    with pytest.raises(ImageError, match="45000000|megapixels"):
        pictures.add("a", "wide.png", wide.getvalue())


def test_a_lesson_needs_two_classes_of_three_pictures_and_distinct_names():
    pictures = PictureSet()
    pictures.add_class("cat")
    with pytest.raises(ImageError, match="at least 2 classes"):
        pictures.check_trainable()
    pictures.add_class("dog")
    with pytest.raises(ImageError, match="already a class named"):
        pictures.add_class(" DOG ")
    with pytest.raises(ImageError, match="needs a name"):
        pictures.add_class("   ")
    for _ in range(3):
        pictures.add("cat", "c.png", DOT)
    pictures.add("dog", "d.png", DOT)
    with pytest.raises(ImageError, match=r"at least 3 pictures; add more to 'dog' \(1\)"):
        pictures.check_trainable()
    for n in range(MAX_CLASSES - 2):
        pictures.add_class(f"c{n}")
    with pytest.raises(ImageError, match="at most 10 classes"):
        pictures.add_class("one too many")


# -- a real lesson ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lesson(small_data_dir):
    """Eight Fashion-MNIST pictures each of trousers, sandals and bags taught to the Photo page's network, and
    the small folder's test images of those classes as the backbone sees them."""
    import os

    from cnn_core.data.datasets import load_dataset
    from cnn_core.predict.ood import through_preprocessing
    from cnn_core.teach.learner import teach

    old = os.environ.get("CNN_DATA_DIR")
    os.environ["CNN_DATA_DIR"] = str(small_data_dir)  # its CIFAR-10 test photos are what the warning is tried on
    try:
        data = load_dataset("fashion_mnist", small_data_dir)
        events, pictures = [], fashion_lesson(data, 8)
        taught = teach(pictures, listener=events.append)
    finally:
        os.environ.pop("CNN_DATA_DIR") if old is None else os.environ.__setitem__("CNN_DATA_DIR", old)
    keep = np.isin(data.y_test, list(LESSON))
    x_test = through_preprocessing(data.x_test[keep], taught.backbone.info.name)
    y_test = np.searchsorted(list(LESSON), data.y_test[keep])
    return taught, events, x_test, y_test, pictures


@pytest.mark.slow  # loads the backbone and trains six heads: about 15 s
def test_a_lesson_on_classes_the_backbone_never_saw_recognises_new_pictures_of_them(lesson):
    taught, events, x_test, y_test, _ = lesson
    card = taught.card
    assert card["class_names"] == list(LESSON.values()) and card["pictures"] == dict.fromkeys(LESSON.values(), 8)
    assert card["backbone"] == "cifar10_airbench18_s2"  # the Photo page's network
    # Eight pictures a class: five folds, every picture predicted once by a head that never saw it.
    assert card["estimate"]["method"] == "5-fold cross-validation" and card["estimate"]["pictures"] == 24
    assert card["estimate"]["accuracy"] >= 0.75, card["estimate"]
    probs, foreign = taught.classify(x_test)
    accuracy = float(np.mean(probs.argmax(axis=1) == y_test))
    assert accuracy >= 0.85, accuracy
    # The estimate is honest: within a few pictures' worth of the accuracy on new ones.
    assert abs(card["estimate"]["accuracy"] - accuracy) < 0.2, (card["estimate"], accuracy)
    # The warning: CIFAR-10 photos (none of these classes) flagged far more often than new pictures of them.
    warning = card["none_of_these"]
    assert warning["foreign_photos"] == 500 and warning["auroc"] > 0.95, warning
    assert warning["foreign_flagged"] > 0.8 and float(np.mean(foreign)) < 0.3, (warning, float(np.mean(foreign)))
    # The live curves: each fold's passes, then the final model's.
    phases = [e["phase"] for e in events if e["type"] == "phase"]
    assert phases[1:] == [f"fold {k} of 5" for k in range(1, 6)] + ["the final model, on every picture"], phases
    final = [e for e in events if e["type"] == "epoch" and e["phase"] == "final"]
    assert len(final) == card["recipe"]["epochs"] and final[-1]["accuracy"] > final[0]["accuracy"] - 0.01
    assert all("held_out_accuracy" in e for e in events if e["type"] == "epoch" and e["phase"].startswith("fold"))


@pytest.mark.slow
def test_the_taught_network_is_one_keras_model_that_gives_the_same_answers_and_explains_them(lesson, tmp_path):
    import keras

    import cnn_core.base.layers  # noqa: F401 - registers the backbone's layers for loading
    from cnn_core.analysis.explain import grad_cam
    from cnn_core.export.lesson import lesson_zip

    taught, _, x_test, _, _ = lesson
    probs, _ = taught.classify(x_test[:16])
    with zipfile.ZipFile(io.BytesIO(lesson_zip(taught, "shoes"))) as archive:
        assert sorted(archive.namelist()) == [
            "README.txt",
            "backbone.weights.npz",
            "shoes.detector.npz",
            "shoes.json",
            "shoes.keras",
            "teach_again.py",
        ]
        card = json.loads(archive.read("shoes.json"))
        archive.extract("shoes.keras", tmp_path)
    assert card["estimate"] == taught.card["estimate"] and card["pictures_sha256"] == taught.card["pictures_sha256"]
    loaded = keras.saving.load_model(tmp_path / "shoes.keras")
    np.testing.assert_allclose(loaded.predict(x_test[:16].astype("float32"), verbose=0), probs, atol=1e-4)
    heat, explained = grad_cam(taught.keras_model(), x_test[0], taught.info)
    assert explained == int(probs[0].argmax()) and heat.shape == (32, 32) and heat.max() > 0


@pytest.mark.slow  # teaches the lesson again
def test_the_downloaded_script_teaches_the_classes_again_without_cnn_core(lesson, tmp_path, monkeypatch, capsys):
    import keras

    from cnn_core.export.lesson import lesson_zip

    taught, _, x_test, _, pictures = lesson
    with zipfile.ZipFile(io.BytesIO(lesson_zip(taught, "shoes"))) as archive:
        archive.extractall(tmp_path / "download")
    with zipfile.ZipFile(io.BytesIO(pictures.to_zip())) as archive:
        archive.extractall(tmp_path / "pictures")
    script = (tmp_path / "download" / "teach_again.py").read_text()
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(ast.parse(script))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= {"__future__", "argparse", "os", "types", "warnings", "keras", "numpy", "tensorflow", "PIL"}
    # Run as a script, in this process (TensorFlow is loaded already): what it imports is checked above.
    script_path = tmp_path / "download" / "teach_again.py"
    monkeypatch.setattr(
        sys, "argv", [str(script_path), str(tmp_path / "pictures"), "--output", str(tmp_path / "again.keras")]
    )
    runpy.run_path(str(script_path), run_name="__main__")
    out = capsys.readouterr().out
    said = re.search(r"3 classes \(trouser, sandal, bag\), 24 pictures; right on them: ([\d.]+)%", out)
    assert said and float(said.group(1)) >= 90, out
    again = keras.saving.load_model(tmp_path / "again.keras")  # plain Keras layers only
    ours, _ = taught.classify(x_test)
    theirs = again.predict(x_test.astype("float32"), verbose=0)
    assert np.mean(ours.argmax(axis=1) == theirs.argmax(axis=1)) > 0.9  # the same recipe: nearly the same answers


@pytest.mark.slow  # teaches a lesson
def test_the_cli_teaches_from_a_zip_and_says_a_bad_one_in_one_line(small_data_dir, tmp_path, monkeypatch, capsys):
    from cnn_core import cli
    from cnn_core.data.datasets import load_dataset

    monkeypatch.setenv("CNN_DATA_DIR", str(small_data_dir))
    pack = tmp_path / "lesson.zip"
    pack.write_bytes(fashion_lesson(load_dataset("fashion_mnist", small_data_dir), 4).to_zip())
    assert cli.main(["teach", str(pack), "--output", str(tmp_path / "out.zip")]) == 0
    out = capsys.readouterr().out
    assert "Accuracy on pictures held out of training:" in out and "(4-fold cross-validation)" in out
    card = json.loads(zipfile.ZipFile(tmp_path / "out.zip").read("out.json"))
    assert card["command"].startswith("python -m cnn_core teach ") and card["pictures"]["bag"] == 4
    (tmp_path / "bad.zip").write_bytes(zip_of({"a/1.png": DOT, "b/readme.txt": b"hi"}))
    assert cli.main(["teach", str(tmp_path / "bad.zip"), "--output", str(tmp_path / "x.zip")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'b/readme.txt' is not a picture" in err and not (tmp_path / "x.zip").exists()


# -- the page (AppTest) -----------------------------------------------------------------------------------


def _teach_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("app_pages/teach.py")
    return at.run()


def test_the_page_starts_with_two_empty_classes_and_refuses_to_train_them_with_a_message():
    at = _teach_page()
    assert not at.exception and [t.value for t in at.text_input] == ["Class 1", "Class 2"]
    at.button(key="teach_add_class").click().run()
    assert [t.value for t in at.text_input] == ["Class 1", "Class 2", "Class 3"]
    at.text_input(key=at.text_input[2].key).input("class 1").run()  # a name taken, in other letters
    assert "already a class named 'class 1'" in at.error[0].value
    at.button(key="teach_remove_2").click().run()
    for _ in range(2):
        at.session_state["teach_pictures"].add("Class 1", "dot.png", DOT)
    at.run()
    assert at.button(key="teach_train").label == "🎓 Train on 2 pictures"
    at.button(key="teach_undo_0").click().run()
    assert at.button(key="teach_train").label == "🎓 Train on 1 picture" and at.button(key="teach_undo_1").disabled
    at.button(key="teach_train").click().run()
    assert not at.exception and "Every class needs at least 3 pictures" in at.error[0].value
    assert "teach_taught" not in at.session_state


# -- the benchmark's committed figures ------------------------------------------------------------------


def test_the_committed_teach_benchmark_follows_its_schema_and_its_markdown_is_its_json():
    from benchmarks import _machines, teach

    doc = _machines.load(REPO / "benchmarks" / "results" / "teach.json", "teach")
    teach.validate_results(doc)
    written = (REPO / "benchmarks" / "results" / "teach.md").read_text()
    assert written.startswith(teach.markdown(doc).split(_machines.NOTES_MARKER)[0])
    for _, entry in _machines.entries(doc):
        for task, goal in (("fashion", teach.FASHION_GOAL), ("doodles", teach.DOODLE_GOAL)):
            rows = entry[task]["rows"]
            mean = sum(r["test_accuracy"] for r in rows) / len(rows)
            assert entry[task]["mean_accuracy"] == pytest.approx(mean, abs=1e-4)
            assert entry[task]["goal_met"] == (mean >= goal and (task != "fashion" or entry[task]["max_seconds"] <= 15))


def test_the_doodle_generator_draws_each_shape_differently_every_time():
    from benchmarks.teach import DOODLES, doodle_png, doodle_strokes

    rng = np.random.default_rng(0)
    drawings = {shape: [doodle_png(doodle_strokes(shape, rng)) for _ in range(2)] for shape in DOODLES}
    assert all(a != b for a, b in drawings.values())  # random size, position, rotation, wobble
    ink = np.asarray(Image.open(io.BytesIO(drawings["star"][0])))
    assert ink.shape == (280, 280) and 0.02 < (ink > 127).mean() < 0.3  # a stroke on the canvas, not a blot
