"""Export (issue #14 item 9): a saved model as a zip with a standalone Keras script that rebuilds the
same network and trains it with the same recipe. The scripts are RUN here, for one short epoch on
a real-data subset, in a fresh Python that has no cnn_core on its path."""

import ast
import io
import json
import math
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from cnn_core.base.store import shipped_store
from cnn_core.cli import main as cli_main
from cnn_core.export import export
from cnn_core.nets.initialisers import initialise_from_data, patch_whitening_kernel
from cnn_core.nets.models import ARCHITECTURES, WHITEN_LAYER, architecture_switches, build_model
from cnn_core.train.recipes import resolve_config
from conftest import REPO

ALLOWED_IMPORTS = {"keras", "numpy", "tensorflow"}


def shipped_card(name: str) -> dict:
    return {**shipped_store().load_card(name), "name": name}


def script_namespace(text: str) -> dict:
    """The script's definitions, without running its main()."""
    namespace = {"__name__": "exported_script"}
    exec(compile(text, "exported_script.py", "exec"), namespace)  # noqa: S102 - the script under test, made here
    return namespace


def layer_table(model) -> list:
    """Each layer's name, kind, configuration (less its initialisers) and weight shapes."""
    rows = []
    for layer in model.layers:
        config = {k: v for k, v in layer.get_config().items() if not k.endswith("initializer")}
        kind = "BatchNormalization" if isinstance(layer, keras.layers.BatchNormalization) else type(layer).__name__
        rows.append(
            (layer.name, kind, json.dumps(config, sort_keys=True, default=str), [tuple(w.shape) for w in layer.weights])
        )
    return rows


def weight_shapes(model) -> list:
    """Each layer's kind and weight shapes, in order."""
    kinds = {"FusedBatchNorm": "BatchNormalization"}
    return [(kinds.get(type(l).__name__, type(l).__name__), [tuple(w.shape) for w in l.weights]) for l in model.layers]


# -- the network: the same as cnn_core builds, for every architecture ----------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_the_script_builds_the_same_network_as_cnn_core(arch, dataset, precision):
    reference = build_model(arch, dataset, name="exported", precision=precision)
    card = {
        "name": "exported",
        "dataset": dataset,
        "architecture": arch,
        "params": reference.count_params(),
        "hyperparameters": resolve_config(dataset, arch),
        "precision": precision,
    }
    namespace = script_namespace(export.script_text(card))
    rebuilt = namespace["build_model"](precision)
    assert layer_table(rebuilt) == layer_table(reference)
    assert rebuilt.count_params() == reference.count_params() == namespace["CARD_PARAMS"]
    assert keras.mixed_precision.global_policy().name == "float32"  # the script leaves the policy as it found it


# The architecture switches (cnn_core.train.switches): seed nets get a projection shortcut (32->64) and
# separable convs; the fast and airbench nets same-width blocks; airbench's separable convs no dirac.
SWITCHED_NETWORKS = [
    ("seed", "mnist", ["residual", "separable"], "fp32"),
    ("seed", "cifar10", ["residual", "separable"], "fp32"),
    ("seed", "cifar10", ["residual", "separable"], "bf16"),
    ("fast", "cifar10", ["residual"], "fp32"),
    ("fast", "mnist", ["separable"], "fp32"),
    ("airbench", "cifar10", ["residual"], "fp32"),
    ("airbench", "mnist", ["residual", "separable"], "fp32"),
]


def switched_card(arch, dataset, switches, precision="fp32", name="exported") -> tuple[dict, object]:
    """A card for `arch` on `dataset` with `switches` on, and cnn_core's model for it."""
    config = resolve_config(dataset, arch, switches=switches)
    reference = build_model(arch, dataset, name=name, precision=precision, **architecture_switches(config))
    card = {
        "name": name,
        "dataset": dataset,
        "architecture": arch,
        "params": reference.count_params(),
        "hyperparameters": config,
        "precision": precision,
    }
    return card, reference


@pytest.mark.parametrize("arch, dataset, switches, precision", SWITCHED_NETWORKS)
def test_the_script_builds_the_same_network_with_the_architecture_switches(arch, dataset, switches, precision):
    card, reference = switched_card(arch, dataset, switches, precision)
    namespace = script_namespace(export.script_text(card))
    rebuilt = namespace["build_model"](precision)
    assert layer_table(rebuilt) == layer_table(reference)
    assert rebuilt.count_params() == reference.count_params() == namespace["CARD_PARAMS"]
    kinds = {type(layer).__name__ for layer in rebuilt.layers}
    assert ("Add" in kinds) == ("residual" in switches) and ("SeparableConv2D" in kinds) == ("separable" in switches)
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize(
    "arch, dataset, switches", [("airbench", "mnist", ["residual", "separable"]), ("airbench", "cifar10", ["residual"])]
)
def test_the_scripts_initialisation_is_cnn_cores_with_the_switches(arch, dataset, switches):
    """Dirac on the plain convs only, numbered as the builder numbers them, and the whitened stem."""
    card, reference = switched_card(arch, dataset, switches)
    namespace = script_namespace(export.script_text(card))
    rebuilt = namespace["build_model"]("fp32")
    rebuilt.set_weights(reference.get_weights())
    shape = rebuilt.input_shape[1:]
    x_train = np.random.default_rng(0).integers(0, 256, size=(64, *shape), dtype=np.uint8)
    initialise_from_data(reference, arch, dataset, x_train, **architecture_switches(card["hyperparameters"]))
    namespace["initialise"](rebuilt, x_train)
    for ours, theirs in zip(rebuilt.layers, reference.layers, strict=False):
        for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=False):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=ours.name)
    separable = [layer.name for layer in rebuilt.layers if isinstance(layer, keras.layers.SeparableConv2D)]
    assert namespace["DIRAC_CONVS"] and not set(namespace["DIRAC_CONVS"]) & set(separable)
    assert ("separable" in switches) == bool(separable)


def test_the_scripts_optimizer_and_schedule_are_cnn_cores_with_adamw_and_cosine():
    from cnn_core.train.optimizer import make_optimizer

    card, _ = switched_card("seed", "mnist", ["adamw", "cosine", "label_smoothing"])
    config, steps = card["hyperparameters"], 7
    namespace = script_namespace(export.script_text(card))
    ours, theirs = namespace["make_optimizer"](config, steps), make_optimizer(config, steps)
    assert type(ours) is type(theirs) is keras.optimizers.AdamW
    assert ours.weight_decay == theirs.weight_decay == 0.05
    for optimizer in (ours, theirs):  # a step with zero gradients: only the decay moves a weight
        weights = [keras.Variable(np.ones(3, np.float32), name=name) for name in ("kernel", "bias", "gamma", "beta")]
        optimizer.apply_gradients([(keras.ops.zeros(3), weight) for weight in weights])
        assert [w.name for w in weights if keras.ops.convert_to_numpy(w).max() < 1] == ["kernel"]
    schedule = ours._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert schedule.get_config() == theirs._learning_rate.get_config()
    assert float(schedule(0)) == pytest.approx(config["lr"]) and float(schedule(steps * config["epochs"])) == 0.0
    text = export.script_text(card)
    assert "ReduceLROnPlateau" not in text  # the cosine schedule replaces the plateau rule
    assert "Recipe switches on" in text and "AdamW, Cosine schedule, Label smoothing" in " ".join(text.split())


def test_the_scripts_pipeline_mixes_batches_as_cnn_cores_does():
    """The script passes the card's mixup / CutMix strengths to cnn_core's pipeline and batch_mixer
    (their source, test above): its training batches come mixed, labels and images alike."""
    x = np.random.default_rng(0).integers(0, 256, size=(64, 28, 28, 1), dtype=np.uint8)
    y = np.arange(64) % 10
    plain = script_namespace(export.script_text(switched_card("seed", "mnist", [])[0]))
    assert plain["batch_mixer"](0.0, 0.0, 0) is None  # both off: the batches pass as they are
    for switches in (["mixup"], ["cutmix"], ["mixup", "cutmix"]):
        card, _ = switched_card("seed", "mnist", switches)
        hp, text = card["hyperparameters"], export.script_text(card)
        assert 'mixup=hp.get("mixup", 0.0), cutmix=hp.get("cutmix", 0.0))' in text
        assert "Mixup / CutMix: cnn_core's batch_mixer" in " ".join(text.split())
        namespace = script_namespace(text)
        images, labels = (
            t.numpy()
            for t in next(
                iter(
                    namespace["make_tf_dataset"](
                        x,
                        y,
                        namespace["DATASET_INFO"],
                        32,
                        None,
                        shuffle=False,
                        seed=0,
                        mixup=hp["mixup"],
                        cutmix=hp["cutmix"],
                    )
                )
            )
        )
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-5)
        mixed = labels.max(axis=1) < 1 - 1e-6
        assert mixed.any(), switches
        assert not np.allclose(images[mixed], x[:32][mixed].astype(np.float32)), switches


@pytest.mark.parametrize("dataset, shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_the_scripts_test_time_augmentation_is_cnn_cores_at_every_level(dataset, shape):
    """Photos average mirror images and shifts, digits shifts alone: the script's predict() gives
    the library's numbers, on a net whose output changes with every pixel moved."""
    from cnn_core.data.datasets import dataset_info
    from cnn_core.predict.inference import predict_proba

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    x = np.random.default_rng(0).integers(0, 256, size=(12, *shape), dtype=np.uint8)
    card = {
        "name": "exported",
        "dataset": dataset,
        "architecture": "fast",
        "params": 1,
        "hyperparameters": resolve_config(dataset, "fast"),
    }
    namespace = script_namespace(export.script_text(card))
    assert namespace["MIRRORABLE"] is dataset_info(dataset).mirrorable
    for level in (0, 1, 2):
        ours = namespace["predict"](model, x, level, chunk=5, mirrorable=namespace["MIRRORABLE"])
        np.testing.assert_allclose(ours, predict_proba(model, x, dataset_info(dataset), tta=level), rtol=1e-5)


@pytest.mark.parametrize("name", shipped_store().names())
def test_every_shipped_model_exports_a_script_whose_network_has_its_parameters(name):
    card = shipped_card(name)
    text = export.script_text(card)
    rebuilt = script_namespace(text)["build_model"]("fp32")
    shipped = shipped_store().load_model(name)
    assert rebuilt.count_params() == card["params"] == shipped.count_params()
    assert weight_shapes(rebuilt) == weight_shapes(shipped)  # (older shipped models have Keras' own layer names)


def _imports(text: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_the_script_imports_only_keras_tensorflow_numpy_and_the_standard_library(arch):
    card = {
        "name": "x",
        "dataset": "cifar10",
        "architecture": arch,
        "params": 1,
        "hyperparameters": resolve_config("cifar10", arch),
        "precision": "fp32",
    }
    imports = _imports(export.script_text(card))
    assert "cnn_core" not in imports
    assert imports - ALLOWED_IMPORTS <= set(sys.stdlib_module_names), imports
    assert ALLOWED_IMPORTS <= imports


def test_the_hyperparameters_are_one_dict_at_the_top_taken_from_the_card():
    card = shipped_card("mnist_fast30")
    namespace = script_namespace(export.script_text(card))
    assert namespace["HYPERPARAMETERS"] == {**card["hyperparameters"], "precision": "fp32"}
    text = export.script_text(card)
    assert (
        text.index("HYPERPARAMETERS = {")
        < text.index("def load_data")
        < text.index("def build_model")
        < text.index("def make_optimizer")
        < text.index("def predict")
        < text.index("def main")
    )


def test_what_plain_keras_lacks_is_said_in_the_script_and_the_readme():
    muon = {
        "name": "muon_card",
        "dataset": "cifar10",
        "architecture": "airbench",
        "params": 1,
        "hyperparameters": resolve_config("cifar10", "airbench"),
        "precision": "fp32",
    }
    digits = {**muon, "dataset": "mnist", "hyperparameters": resolve_config("mnist", "airbench")}
    script, readme = export.script_text(muon), export.readme_text(muon)
    for words in (
        "GroupedSGD",
        "MuonSGD",
        "keras.optimizers.Muon itself is not used",
        "TriangleSchedule",
        "alternating flip",
        "Whitening stem",
        "Dirac",
    ):
        assert words in " ".join(script.split()) and words in " ".join(readme.split()), words
    assert "class MuonSGD(GroupedSGD)" in script and "class Lookahead" not in script  # the Muon recipe averages nothing
    assert "class Lookahead" in export.script_text(digits) and "Lookahead" in export.readme_text(digits)
    plain = export.script_text(shipped_card("mnist_fast30"))
    # (cnn_core's pipeline, in every script, still names AlternatingFlip in its signature and docstring)
    assert not re.search(r"class (GroupedSGD|MuonSGD|TriangleSchedule|Lookahead|AlternatingFlip)\b", plain)
    assert "about ten times slower" in export.readme_text(shipped_card("cifar10_wide40"))  # trained in bf16


def test_what_cnn_core_has_the_script_takes_from_cnn_cores_own_source():
    import inspect

    from cnn_core.data import augment, pipeline
    from cnn_core.nets import initialisers
    from cnn_core.train import callbacks, optimizer

    muon = {
        "name": "muon_card",
        "dataset": "cifar10",
        "architecture": "airbench",
        "params": 1,
        "hyperparameters": resolve_config("cifar10", "airbench"),
        "precision": "fp32",
    }
    digits = {**muon, "dataset": "mnist", "hyperparameters": resolve_config("mnist", "airbench")}
    text = export.script_text(muon) + export.script_text(digits)
    pieces = [
        optimizer.TriangleSchedule,
        optimizer.GroupedSGD,
        optimizer.MuonSGD,
        initialisers.patch_whitening_kernel,
        initialisers.dirac_identity,
        callbacks.Lookahead,
        augment.AlternatingFlip,
        augment.build_augmenter,
        pipeline.make_tf_dataset,
        pipeline.batch_mixer,
    ]
    for piece in pieces:
        source = inspect.getsource(piece)
        source = re.sub(
            r"^@keras\.saving\.register_keras_serializable\(.*\)\n", "", source
        )  # the script registers none
        assert source.rstrip("\n") in text, piece.__name__
    namespace = script_namespace(export.script_text(muon))
    assert (namespace["WHITEN_IMAGES"], namespace["WHITEN_EPS"]) == (
        initialisers.WHITEN_IMAGES,
        initialisers.WHITEN_EPS,
    )
    with pytest.raises(LookupError, match="defines no no_such_function"):
        export.cnn_core_source("train.optimizer", "no_such_function")


def test_exporting_a_script_loads_no_tensorflow():
    """`python -m cnn_core export` runs without TensorFlow: the script's cnn_core pieces are read, not imported."""
    code = (
        "import sys; from cnn_core.export import export; from cnn_core.train.recipes import resolve_config; "
        "card = {'name': 'x', 'dataset': 'cifar10', 'architecture': 'airbench', 'params': 1, "
        "'hyperparameters': resolve_config('cifar10', 'airbench')}; "
        "assert 'class MuonSGD' in export.script_text(card); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'loaded'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


# -- the zip ---------------------------------------------------------------------------------------


def test_the_zip_holds_the_model_its_card_the_script_and_a_readme():
    data = export.export_zip("mnist_fast30")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == [
            "README.txt",
            "mnist_fast30.json",
            "mnist_fast30.keras",
            "train_mnist_fast30.py",
        ]
        store = shipped_store()
        assert archive.read("mnist_fast30.keras") == store.model_path("mnist_fast30").read_bytes()
        assert json.loads(archive.read("mnist_fast30.json")) == store.load_card("mnist_fast30")
        assert archive.read("train_mnist_fast30.py").decode() == export.script_text(shipped_card("mnist_fast30"))
        assert "Where the script departs" in archive.read("README.txt").decode()


# -- the CLI ---------------------------------------------------------------------------------------


def test_cli_export_writes_the_zip_and_the_script(tmp_path, capsys):
    target, script = tmp_path / "seed.zip", tmp_path / "train.py"
    assert cli_main(["export", "--model", "mnist_seed", "--output", str(target), "--script-only", str(script)]) == 0
    assert zipfile.ZipFile(target).namelist() and script.read_text() == export.script_text(shipped_card("mnist_seed"))
    assert f"Saved {target}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--model", "no_such_model", "--output", "{tmp}/x.zip"], "No saved model named 'no_such_model'"),
        (["--model", "../etc", "--output", "{tmp}/x.zip"], "Invalid model name '../etc'"),
        (["--model", "mnist_seed", "--output", "{tmp}/missing/x.zip"], "missing does not exist"),
        (["--model", "mnist_seed", "--script-only", "{tmp}/a_file/x.py"], "a_file is not a folder"),
        (["--model", "mnist_seed", "--output", "{tmp}"], "is a folder; give a file name"),
        (["--model", "mnist_seed"], "Say where to write the export"),
    ],
)
def test_cli_export_errors_are_one_human_line_and_exit_2(tmp_path, capsys, args, words):
    (tmp_path / "a_file").write_text("not a folder")
    assert cli_main(["export", *[a.format(tmp=tmp_path) for a in args]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m cnn_core export: error: ") and words in err and "\n" not in err, err
    assert not list(tmp_path.rglob("*.zip")) and not list(tmp_path.rglob("*.py"))


# -- running the scripts ---------------------------------------------------------------------------


def run_script(text: str, tmp_path, data_dir, subset: int, test_size: int) -> tuple[str, object]:
    """The script written out and run for one epoch on `subset` training images, in a Python
    whose path holds no cnn_core (run from tmp_path, PYTHONPATH cleared); its output and model."""
    script, output = tmp_path / "train_exported.py", tmp_path / "retrained.keras"
    script.write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--epochs",
            "1",
            "--subset",
            str(subset),
            "--test-size",
            str(test_size),
            "--data-dir",
            str(Path(data_dir).resolve()),  # CI's CNN_DATA_DIR is relative
            "--output",
            str(output),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    epoch = re.search(r"\d+/\d+ - .*? - accuracy: ([\d.]+) - loss: ([\d.]+)", out)  # fit()'s epoch line
    assert epoch and math.isfinite(float(epoch.group(2))), out
    test = re.search(r"Test accuracy ([\d.]+), test loss ([\d.]+) on ([\d,]+) images", out)
    assert test and 0.0 <= float(test.group(1)) <= 1.0 and math.isfinite(float(test.group(2))), out
    assert test.group(3).replace(",", "") == str(test_size)
    assert output.is_file(), out
    return out, keras.saving.load_model(output)


def assert_trained(model) -> None:
    """Every batch norm moved off its initial state: the optimizer stepped its beta (0 at the
    start) and training-mode passes moved its running mean (0 at the start)."""
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms
    for layer in norms:
        assert np.abs(keras.ops.convert_to_numpy(layer.beta)).max() > 0, layer.name
        assert np.abs(keras.ops.convert_to_numpy(layer.moving_mean)).max() > 0, layer.name


def assert_same_network(retrained, reference, card) -> None:
    assert retrained.count_params() == card["params"] == reference.count_params()
    assert weight_shapes(retrained) == weight_shapes(reference)


@pytest.mark.slow  # trains
@pytest.mark.parametrize("name, subset, test_size", [("mnist_seed", 1024, 500), ("cifar10_fast", 512, 500)])
def test_a_shipped_models_script_trains_one_short_epoch(name, subset, test_size, small_data_dir, tmp_path):
    card = shipped_card(name)
    out, retrained = run_script(export.script_text(card), tmp_path, small_data_dir, subset, test_size)
    assert f"{card['params']:,} parameters in fp32 (the model card: {card['params']:,})" in out
    assert_same_network(retrained, shipped_store().load_model(name), card)
    assert_trained(retrained)


@pytest.mark.slow  # trains a run with cnn_core, then its script
def test_an_airbench_runs_script_trains_with_its_stem_whitened_and_frozen(small_data_dir, tmp_path):
    from cnn_core.train.training import train

    # Batches of 128 (the recipe's lr scaled with them): 8 steps in the script's 1,024 images, so its
    # Lookahead (every 5 steps) averages once before the last step resets the weights to the average.
    config = resolve_config("mnist", "airbench", epochs=1, subset=1000, val_size=0, batch_size=128)
    result = train(config, "airbench_export", data_dir=small_data_dir)
    card = {**result.card, "name": "airbench_export"}
    assert card["architecture"] == "airbench"
    text = export.script_text(card)
    assert "class GroupedSGD(keras.optimizers.SGD)" in text and "class Lookahead" in text
    _out, retrained = run_script(text, tmp_path, small_data_dir, subset=1024, test_size=500)
    assert_same_network(retrained, result.store.load_model("airbench_export"), card)
    assert_trained(retrained)
    # The stem: whitened from the script's own training images (as cnn_core's initialiser would whiten
    # them), and never trained; its bias trains for the first whiten_bias_epochs.
    namespace = script_namespace(text)
    (x, y), _ = namespace["load_data"](str(small_data_dir))
    (x_train, _), _ = namespace["split_training"](x, y, 0, 1024, 0)
    expected = patch_whitening_kernel(x_train[:5000].astype(np.float32) / 64.0 - 2.0, 2, 8)
    kernel, bias = retrained.get_layer(WHITEN_LAYER).get_weights()
    np.testing.assert_allclose(kernel, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(bias).max() > 0


@pytest.mark.slow  # trains a run with cnn_core, then its script
def test_a_run_with_every_switch_exports_a_script_that_trains(small_data_dir, tmp_path):
    from cnn_core.train.switches import switch_names
    from cnn_core.train.training import train

    config = resolve_config("mnist", "seed", switches=list(switch_names()), epochs=1, subset=1000, val_size=0)
    result = train(config, "switched_export", data_dir=small_data_dir)
    card = {**result.card, "name": "switched_export"}
    assert card["hyperparameters"]["switches"] == list(switch_names())
    text = export.script_text(card)
    for words in (
        "keras.optimizers.AdamW(",
        "keras.optimizers.schedules.CosineDecay(",
        "def batch_mixer",
        "layers.SeparableConv2D(",
        'layers.Add(name="add1")',
        'name="shortcut1"',
    ):
        assert words in text, words
    out, retrained = run_script(text, tmp_path, small_data_dir, subset=1024, test_size=500)
    assert f"{card['params']:,} parameters in fp32 (the model card: {card['params']:,})" in out
    reference = result.store.load_model("switched_export")
    assert_same_network(retrained, reference, card)
    assert [layer.name for layer in retrained.layers] == [layer.name for layer in reference.layers]
    assert_trained(retrained)


@pytest.mark.slow  # trains
def test_a_muon_recipes_script_trains_with_muon_steps(small_data_dir, tmp_path):
    config = resolve_config("cifar10", "airbench")
    reference = build_model("airbench", "cifar10", name="muon_export")
    card = {
        "name": "muon_export",
        "dataset": "cifar10",
        "architecture": "airbench",
        "recipe": "airbench",
        "params": reference.count_params(),
        "hyperparameters": config,
        "precision": "fp32",
    }
    _out, retrained = run_script(export.script_text(card), tmp_path, small_data_dir, subset=512, test_size=500)
    assert_same_network(retrained, reference, card)
    assert_trained(retrained)
    # Each Muon step starts by setting a 3x3 kernel's norm to sqrt(outputs); Keras' init leaves the
    # 24->64 and 64->256 kernels 26% and 37% short of it.
    for layer in retrained.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.name != WHITEN_LAYER:
            kernel = layer.get_weights()[0]
            assert np.linalg.norm(kernel) == pytest.approx(np.sqrt(kernel.shape[-1]), rel=0.05), layer.name


# -- the Results page ------------------------------------------------------------------------------


def test_the_results_page_offers_the_export_downloads(data_dir, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CNN_DATA_DIR", str(data_dir))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("app_pages/results.py")
    at.run()
    at.selectbox(key="results_model").set_value("mnist_seed").run()
    at.session_state["results_tab"] = "Model card"  # the tab runs only when open
    at.run()
    assert not at.exception, at.exception
    labels = [button.proto.label for button in at.get("download_button")]
    assert "Download model + training script (.zip)" in labels, labels
    assert "Download the training script (.py)" in labels, labels
    st.cache_resource.clear()
