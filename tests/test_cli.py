"""The CLI as a user runs it: real subprocesses, real MNIST, real files."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from conftest import REPO, SMALL_TEST

# One epoch of the seed recipe on 6,000 MNIST images: the floor sits a few points below what such a
# run reaches (TensorFlow's CPU kernels are not bit-for-bit repeatable, so no exact figure).
MNIST_SUBSET_FLOOR = 0.85


def run_cli(*args, env_extra=None, timeout=600):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "cnn_core", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli_in_process(args, capsys, with_stdout=False):
    """`python -m cnn_core ARGS` run in this process: its exit code and what it wrote to stderr
    (and to stdout, with `with_stdout`)."""
    from cnn_core.cli import main

    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return (code, captured.out, captured.err) if with_stdout else (code, captured.err)


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--epochs", "-1"], "Epochs must be a whole number ≥ 1 (got -1)"),
        (["train", "--epochs", "many"], "'many' is not a whole number"),
        (["train", "--batch-size", "0"], "Batch size must be a whole number ≥ 1 (got 0)"),
        (["train", "--lr", "0"], "Learning rate must be greater than 0"),
        (["train", "--lr", "-0.1"], "Learning rate must be greater than 0"),
        (["train", "--lr", "50"], "far too large"),
        (["train", "--subset", "5"], "Subset must be at least 10 images"),
        (["train", "--val-size", "-3"], "Validation size must be a whole number ≥ 0"),
        (["train", "--seed", "-1"], "Seed must be a whole number ≥ 0"),
        (["train", "--rotation", "270"], "Rotation must be between 0 and 180 degrees"),
        (["train", "--shift", "1.5"], "Shift must be a fraction between 0 and 1"),
        (["train", "--resume", "ghost", "--epochs", "0"], "Epochs must be a whole number ≥ 1"),
        (["predict", "--model", "x", "--top", "0", "a.png"], "must be at least 1 (got 0)"),
        (["calibrate", "--model", "x", "--pass-rate", "1.5"], "must be between 0 and 1"),
        (["train", "--dataset", "imagenet"], "invalid choice: 'imagenet'"),
        (["train", "--arch", "vgg99"], "invalid choice: 'vgg99'"),
        (["fly"], "invalid choice: 'fly'"),
        (["evaluate"], "the following arguments are required: --model"),
        (["predict", "--model", "x"], "the following arguments are required: FILE"),
    ],
)
def test_wrong_arguments_give_one_line_and_exit_2(args, words, capsys):
    # In process (cli.main, as `python -m cnn_core` calls it): a subprocess each would only add
    # interpreter start-ups. test_recipe_values_are_checked_before_tensorflow_loads runs the real
    # entry point in a fresh process, where TensorFlow must not have loaded.
    code, err = cli_in_process(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in err


def test_recipe_values_are_checked_before_tensorflow_loads():
    # recipes.validate_config is the one check of recipe values; the CLI runs it right after
    # parsing, so a typo costs no TensorFlow start-up.
    probe = (
        "import sys; from cnn_core.cli import main; "
        "rc = main(['train', '--epochs', '0']); print(rc, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.stdout.split() == ["2", "False"], out.stdout + out.stderr
    assert "Epochs must be a whole number ≥ 1 (got 0)" in out.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["evaluate", "--model", "no_such_model"], "No saved model named 'no_such_model'"),
        (["predict", "--model", "../../etc/passwd", "x.png"], "Invalid model name"),
        (["train", "--resume", "ghost"], "no interrupted run named 'ghost'"),
    ],
)
def test_library_errors_give_one_line_and_exit_2(args, words, capsys):
    code, err = cli_in_process(args, capsys)
    assert code == 2, (args, err)
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)


@pytest.mark.slow  # the real entry point in a fresh process, TensorFlow included
def test_missing_data_without_internet_is_one_line_and_exit_2(tmp_path):
    # A fresh process: keras.datasets must try (and fail) to download into an empty KERAS_HOME,
    # through proxies that refuse, as on a machine without internet.
    out = run_cli(
        "train",
        "--data-dir",
        str(tmp_path),
        "--epochs",
        "1",
        env_extra={
            "CNN_DATA_DIR": str(tmp_path),
            "KERAS_HOME": str(tmp_path / "k"),
            "http_proxy": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
        },
    )
    assert out.returncode == 2, out.stderr
    assert "mnist.npz" in out.stderr and "Traceback" not in out.stderr, out.stderr


@pytest.mark.slow  # trains a model
def test_train_evaluate_predict_round_trip_on_real_mnist(small_data_dir, isolated_runs, tmp_path, capsys, monkeypatch):
    # Training runs the real entry point in its own process; evaluate, list and predict then run
    # in this one (the same main(), without a TensorFlow start-up each).
    env = {"CNN_DATA_DIR": str(small_data_dir)}
    out = run_cli(
        "train",
        "--dataset",
        "mnist",
        "--epochs",
        "1",
        "--subset",
        "6000",
        "--name",
        "cli_mnist",
        "--seed",
        "0",
        env_extra=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Epoch 1/1" in out.stdout and "test accuracy" in out.stdout

    card = json.loads((isolated_runs / "cli_mnist.json").read_text())
    assert card["test_size"] == SMALL_TEST and card["train_size"] == 6000
    assert card["test_accuracy"] >= MNIST_SUBSET_FLOOR, card["test_accuracy"]
    from cnn_core.data.datasets import file_sha256

    assert card["dataset_sha256"] == file_sha256(small_data_dir / "mnist.npz")
    assert card["command"].startswith("python -m cnn_core train --dataset mnist --epochs 1 --subset 6000")
    assert card["status"] == "finished" and card["epochs_run"] == 1

    monkeypatch.setenv("CNN_DATA_DIR", str(small_data_dir))
    code, stdout, stderr = cli_in_process(["evaluate", "--model", "cli_mnist"], capsys, with_stdout=True)
    assert code == 0, stderr
    assert f"test accuracy {card['test_accuracy']:.2%}" in stdout
    assert all(f"{d:>14}" in stdout for d in "0123456789")

    code, stdout, _ = cli_in_process(["list"], capsys, with_stdout=True)
    assert "cli_mnist" in stdout and f"{card['test_accuracy']:.2%}" in stdout

    # Real test digits written as files, plus one unreadable file.
    from cnn_core.data.datasets import load_dataset

    data = load_dataset("mnist", small_data_dir)
    files = []
    for i in range(3):
        path = tmp_path / f"digit{i}_label{data.y_test[i]}.png"
        Image.fromarray(data.x_test[i]).save(path)
        files.append(path)
    code, stdout, stderr = cli_in_process(["predict", "--model", "cli_mnist", *map(str, files)], capsys, True)
    assert code == 0, stderr
    lines = stdout.strip().splitlines()
    assert len(lines) == 3
    hits = sum(line.split(": ")[1].startswith(str(data.y_test[i])) for i, line in enumerate(lines))
    assert hits >= 2
    assert all(len(line.split(": ")[1].split(", ")) == 3 for line in lines)

    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    code, stdout, stderr = cli_in_process(["predict", "--model", "cli_mnist", str(bad), str(files[0])], capsys, True)
    assert code == 2 and "not an image" in stderr and "Traceback" not in stderr
    assert str(files[0]) in stdout  # the good file after the bad one is still classified


def test_list_shows_shipped_models_and_a_damaged_run_card_without_failing(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "broken.json").write_text("{ not json")
    (runs / "broken.keras").write_bytes(b"")
    out = run_cli("list", env_extra={"CNN_RUNS_DIR": str(runs)})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["name", "store", "dataset", "arch", "test", "acc", "params", "train", "time", "status"]
    shipped = json.loads((REPO / "trained_models" / "mnist_fast30.json").read_text())
    assert any(
        line.startswith("mnist_fast30 ") and "shipped" in line and f"{shipped['test_accuracy']:.2%}" in line
        for line in lines
    ), lines
    broken = next(line for line in lines if line.startswith("broken "))
    assert "runs" in broken and "damaged card" in broken
