"""Precision follows the CPU: bfloat16 only where the hardware does it, float32 inference
everywhere, and every shipped model gives the same answers whatever oneDNN may use."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnn_core.base.errors import ConfigError
from cnn_core.base.store import shipped_store
from cnn_core.nets.precision import INFERENCE_PRECISION, model_precision, native_bf16, resolve_precision, with_precision
from conftest import one_model_per_family

REPO = Path(__file__).resolve().parent.parent
SHIPPED = shipped_store().names()
SAMPLES = REPO / "assets" / "samples"

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})
SAPPHIRE_RAPIDS = AVX2_ONLY | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}


@pytest.mark.parametrize(
    "flags, environ, expected",
    [
        (AVX2_ONLY, {}, False),  # Zen 3: emulated, slow
        (SAPPHIRE_RAPIDS, {}, True),
        (AVX2_ONLY | {"avx512f", "avx512_bf16"}, {}, True),  # Zen 4: AVX512-BF16 without AMX
        (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, False),  # bf16 convolutions cannot be built
        (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "avx512_core"}, False),
        (SAPPHIRE_RAPIDS, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, True),
        (SAPPHIRE_RAPIDS, {"TF_ENABLE_ONEDNN_OPTS": "0"}, False),  # Eigen kernels: no native bf16
    ],
)
def test_native_bf16_needs_the_flags_and_onednn_allowed_to_use_them(flags, environ, expected):
    assert native_bf16(flags, environ) is expected


def test_resolve_precision():
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto") == ("bf16" if native_bf16() else "fp32")
    assert resolve_precision(None) == resolve_precision("auto")
    with pytest.raises(ConfigError, match="Unknown precision 'fp16'"):
        resolve_precision("fp16")


def test_recipes_and_cli_take_a_precision():
    from cnn_core.cli import build_parser
    from cnn_core.train.recipes import resolve_config

    assert resolve_config("cifar10", "wide")["precision"] == "auto"
    assert resolve_config("cifar10", "fast")["precision"] == "fp32"
    assert resolve_config("cifar10", "fast", precision="bf16")["precision"] == "bf16"
    with pytest.raises(ConfigError, match="Precision must be one of"):
        resolve_config("mnist", "fast", precision="half")
    args = build_parser().parse_args(["train", "--precision", "bf16"])
    assert args.precision == "bf16"


@pytest.mark.slow  # the real entry point in a fresh process
def test_cli_refuses_an_unknown_precision_in_one_line():
    out = subprocess.run(
        [sys.executable, "-m", "cnn_core", "train", "--precision", "fp16"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2
    assert "invalid choice: 'fp16'" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_twins_share_weights_and_answers():
    from cnn_core.nets.models import build_model

    bf16 = build_model("fast", "cifar10", precision="bf16")
    assert model_precision(bf16) == "bf16"
    assert bf16.get_layer("classifier").compute_dtype == "float32"  # the softmax stays float32
    fp32 = with_precision(bf16, "fp32")
    assert model_precision(fp32) == "fp32" and all(layer.compute_dtype == "float32" for layer in fp32.layers)
    for a, b in zip(bf16.get_weights(), fp32.get_weights(), strict=False):
        np.testing.assert_array_equal(a, b)
    back = with_precision(fp32, "bf16")
    assert model_precision(back) == "bf16" and back.get_layer("classifier").compute_dtype == "float32"
    assert with_precision(fp32, "fp32") is fp32  # nothing to convert
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(bf16.predict_on_batch(x), fp32.predict_on_batch(x), atol=1e-2)


@pytest.mark.slow  # trains a model
@pytest.mark.parametrize("requested", ["bf16", "fp32", "auto"])
def test_training_records_the_precision_that_ran(tiny_mnist, requested):
    from cnn_core.train.recipes import resolve_config
    from cnn_core.train.training import train

    config = resolve_config("mnist", "fast", epochs=1, batch_size=64, val_size=0, precision=requested)
    events = []
    result = train(config, f"prec_{requested}", data=tiny_mnist, listener=events.append)
    ran = resolve_precision(requested)
    assert result.card["precision"] == ran
    assert result.card["hyperparameters"]["precision"] == requested
    assert next(e for e in events if e["type"] == "start")["precision"] == ran
    # Whatever it trained in, it is served in the inference precision.
    from cnn_core.predict.inference import load_predictor

    assert load_predictor(f"prec_{requested}", store=result.store).precision == INFERENCE_PRECISION


def test_shipped_cards_say_what_they_were_trained_in():
    store = shipped_store()
    for name in SHIPPED:
        card = store.load_card(name)
        assert card["precision"] == model_precision(store.load_model(name)), name


def _bf16_models() -> list:
    """The shipped models trained in bfloat16: the first in the quick tier, every one in the whole suite."""
    store = shipped_store()
    names = sorted(n for n in SHIPPED if store.load_card(n)["precision"] == "bf16")
    return [pytest.param(n, marks=() if i == 0 else pytest.mark.slow) for i, n in enumerate(names)]


def test_the_bfloat16_models_are_what_the_twin_test_is_about():
    assert _bf16_models(), "the bfloat16 photo models are what the twin test is about"


@pytest.mark.parametrize("name", _bf16_models())
def test_shipped_bf16_models_are_served_as_float32_twins(data_dir, name):
    from cnn_core.data.datasets import load_dataset
    from cnn_core.predict.inference import load_predictor, predict_proba

    served = load_predictor(name)
    assert served.precision == "fp32"
    as_trained = shipped_store().load_model(name)
    data = load_dataset(served.info.name, data_dir)
    x = data.x_test[:16]  # bfloat16 is emulated (slow) on CPUs without it
    np.testing.assert_allclose(
        predict_proba(as_trained, x, served.info, tta=served.tta), served.predict_samples(x), atol=1e-2
    )


# Runs in a fresh interpreter, so oneDNN's environment variables take effect: each named shipped
# model predicts its dataset's first test images and the bundled sample photos; prints JSON.
_PREDICT_ALL = r"""
import json, sys
from cnn_core.data.datasets import load_dataset
from cnn_core.predict.inference import load_predictor
from pathlib import Path

samples = Path(sys.argv[2])
out = {}
for name in sys.argv[3:]:
    predictor = load_predictor(name)
    data = load_dataset(predictor.info.name, sys.argv[1])
    probs = [p.tolist() for p in predictor.predict_samples(data.x_test[:32])]
    for photo in sorted((samples / predictor.info.name).glob("*.*")) if (samples / predictor.info.name).is_dir() else []:
        if photo.suffix in (".png", ".jpg"):
            probs.append(predictor.predict_file(str(photo))[1].tolist())
    out[name] = {"precision": predictor.precision, "probs": probs}
print(json.dumps(out))
"""

ONEDNN_SETTINGS = {
    "default": {},
    "oneDNN capped at AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "oneDNN off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
}


def _predict_everything(data_dir, extra_env: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "TF_ENABLE_ONEDNN_OPTS")}
    env.update(extra_env, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", _PREDICT_ALL, str(data_dir), str(SAMPLES), *one_model_per_family()],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def predictions_per_setting(data_dir):
    return {label: _predict_everything(data_dir, env) for label, env in ONEDNN_SETTINGS.items()}


def test_the_onednn_matrix_covers_every_architecture_precision_and_input_kind():
    store = shipped_store()
    every, chosen = [store.load_card(n) for n in SHIPPED], [store.load_card(n) for n in one_model_per_family()]
    for facet in (
        lambda c: c["hyperparameters"]["arch"],
        lambda c: c["precision"],
        lambda c: c["dataset"] == "cifar10",
    ):
        assert {facet(c) for c in chosen} == {facet(c) for c in every}
    assert len(chosen) == len({c["hyperparameters"]["arch"] for c in every})


@pytest.mark.slow  # shipped models in fresh processes per setting
@pytest.mark.parametrize("setting", [s for s in ONEDNN_SETTINGS if s != "default"])
def test_every_model_family_predicts_the_same_under_any_onednn_setting(predictions_per_setting, setting):
    default, other = predictions_per_setting["default"], predictions_per_setting[setting]
    assert set(default) == set(other) == set(one_model_per_family())
    for name in default:
        a, b = np.array(default[name]["probs"]), np.array(other[name]["probs"])
        assert a.shape == b.shape and len(a) >= 32, name
        np.testing.assert_array_equal(a.argmax(axis=1), b.argmax(axis=1), err_msg=f"{name} under {setting}")
        assert np.abs(a - b).max() <= 1e-2, (name, setting, float(np.abs(a - b).max()))
        assert other[name]["precision"] == INFERENCE_PRECISION


@pytest.mark.slow  # fresh processes import TensorFlow
@pytest.mark.parametrize("setting, expected", [(None, "True"), ("0", "False"), ("1", "True")])
def test_cnn_core_runs_onednn_unless_told_not_to(setting, expected):
    # TensorFlow alone turns oneDNN on only for AVX-512 CPUs; the package asks for it everywhere.
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update({"TF_ENABLE_ONEDNN_OPTS": setting} if setting else {})
    out = subprocess.run(
        [sys.executable, "-c", "import cnn_core.base.runtime as r; print(r.machine_info()['onednn'])"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert out.stdout.strip().splitlines()[-1] == expected, out.stderr[-2000:]


@pytest.mark.slow  # the real entry point in a fresh process, TensorFlow included
def test_cli_predicts_with_the_photo_model_when_onednn_is_capped_at_avx2():
    # On a Xeon this exact command failed ("could not create a primitive descriptor for the
    # convolution forward propagation primitive") while the model computed in bfloat16.
    photos = sorted(str(p) for p in (SAMPLES / "cifar10").glob("*_cifar10_test_*.png"))
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-m", "cnn_core", "predict", "--model", "cifar10_wide40", "--json", *photos],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["file"] for r in rows] == photos
    from cnn_core.predict.inference import load_predictor

    here = load_predictor("cifar10_wide40", calibrated=True)  # as predict loads it; oneDNN as the machine has it
    for row in rows:
        assert row["precision"] == "fp32" and abs(sum(row["probabilities"].values()) - 1) < 1e-3
        expected = here.predict_file(row["file"])[1]
        got = np.array([row["probabilities"][c] for c in here.info.class_names])
        assert row["top"] == here.info.class_names[int(expected.argmax())], row
        assert np.abs(got - expected).max() <= 1e-2, row
