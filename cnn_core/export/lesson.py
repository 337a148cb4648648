"""A taught classifier (cnn_core.teach) as a zip a visitor downloads: the whole network as a `.keras` file, its
card, the "none of these classes" detector's statistics, a standalone script that teaches the backbone the
classes again from the pictures (plain Keras: the backbone rebuilt by `export`'s spec walk, its weights from
`backbone.weights.npz`, the head trained by the very `fit_head` cnn_core runs) and a README."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from cnn_core.base.store import atomic_write, to_json_value
from cnn_core.export import templates
from cnn_core.export.export import (
    _card_walk,
    _constants_code,
    _dirac_convs,
    _literal,
    _model_code,
    _network_lines,
    cnn_core_source,
)
from cnn_core.teach.learner import Taught

SCRIPT = "teach_again.py"
# What each backbone dataset's preprocessing takes from cnn_core.data.preprocess, in order.
PREPARATION = {
    "cifar10": ("STANDARD_MODES", "_high_bit_to_grey", "standard_mode", "_flatten_to", "photo_to_cifar"),
    "mnist": (
        "STANDARD_MODES", "_high_bit_to_grey", "standard_mode", "_flatten_to", "DIGIT_BOX", "INK_THRESHOLD",
        "digit_ink", "_alpha_is_ink", "digit_steps", "digit_to_mnist",
    ),
}  # fmt: skip
PREPARE = {"cifar10": "photo_to_cifar", "mnist": "digit_to_mnist"}

README = """{name}: a classifier of your own classes ({classes}), taught by CNN Studio.

{name}.keras          the whole network: the shipped `{backbone}` network ({dataset}), frozen, and the
                      head taught on your pictures; raw pixels 0..255 in ({shape}), probabilities out.
                      Load it with cnn_core installed (its layers are registered on import):
                          import cnn_core.base.layers, keras
                          model = keras.saving.load_model("{name}.keras")
{name}.json           its card: classes, pictures per class and their SHA-256, the recipe, the held-out
                      estimate ({method}: {accuracy:.1%}), the warning's threshold and AUROC, time, machine.
{name}.detector.npz   the "none of these classes" warning's statistics (cnn_core.predict.ood.Detector).
teach_again.py        a standalone script (Keras, NumPy, Pillow; no cnn_core) that rebuilds `{backbone}`,
                      loads backbone.weights.npz and teaches it the classes again from a folder of
                      pictures with the same recipe: python teach_again.py PICTURES --output taught.keras
backbone.weights.npz  `{backbone}`'s weights, in the order the script's build_model makes them.

Pictures go through {dataset}'s preprocessing before the network sees them (`python -m cnn_core predict`
does the same for the shipped models): cnn_core.data.preprocess.preprocessor("{dataset}").from_image(img).
Made by: {command}
"""


def lesson_name(card: dict) -> str:
    return "taught_" + "_".join("".join(ch for ch in c.lower() if ch.isalnum())[:12] for c in card["class_names"])[:60]


def script_text(taught: Taught, name: str) -> str:
    """The standalone script that teaches the backbone the lesson's classes again (see the module's docstring)."""
    card, backbone_card = taught.card, {**taught.backbone.card, "name": taught.backbone.name}
    dataset = card["backbone_dataset"]
    walk = _card_walk(backbone_card)
    sections = [
        templates.LESSON_DOC.format(
            backbone=taught.backbone.name,
            name=name,
            classes=", ".join(card["class_names"]),
            scipy=" (and SciPy, for drawings)" if dataset == "mnist" else "",
            dataset=dataset,
            views=card["recipe"]["views"],
            script=SCRIPT,
        ),
        templates.IMPORTS,
        templates.LESSON_IMPORTS + (templates.LESSON_IMPORTS_DIGITS if dataset == "mnist" else ""),
        _constants_code(backbone_card, _dirac_convs(walk)),
        templates.LESSON_CONSTANTS.format(
            classes=_literal(card["class_names"]),
            views=card["recipe"]["views"],
            augment=_literal(card["augmentation"]),
            recipe=_literal({k: card["recipe"][k] for k in ("epochs", "batch_size", "lr", "l2", "seed")}),
        ),
        _model_code(backbone_card, _network_lines(walk)),
        cnn_core_source("data.preprocess", *PREPARATION[dataset]),
        cnn_core_source("data.augment", "build_augmenter"),
        cnn_core_source("predict.embedding", "classifier_layer", "stage_layers"),
        cnn_core_source("teach.learner", "features_model", "fit_head"),
        templates.LESSON_MAIN.replace("__PREPARE__", PREPARE[dataset]),
    ]
    return "\n\n\n".join(section.strip("\n") for section in sections) + "\n"


def backbone_weights(taught: Taught) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{f"w{i}": w for i, w in enumerate(taught.backbone.model.get_weights())})
    return buffer.getvalue()


def model_bytes(taught: Taught) -> bytes:
    """The whole network saved as a `.keras` file, as bytes (saved through the server's temporary folder)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "taught.keras"
        taught.keras_model().save(path)
        return path.read_bytes()


def lesson_zip(taught: Taught, name: str | None = None) -> bytes:
    card = taught.card
    name = name or lesson_name(card)
    readme = README.format(
        name=name,
        classes=", ".join(card["class_names"]),
        backbone=card["backbone"],
        dataset=card["backbone_dataset"],
        shape="×".join(map(str, taught.backbone.info.input_shape)),
        method=card["estimate"]["method"],
        accuracy=card["estimate"]["accuracy"],
        command=card.get("command") or "the Teach page of CNN Studio",
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.keras", model_bytes(taught))
        archive.writestr(f"{name}.json", json.dumps(card, indent=2, default=to_json_value))
        archive.writestr(f"{name}.detector.npz", taught.detector.to_bytes())
        archive.writestr(SCRIPT, script_text(taught, name))
        archive.writestr("backbone.weights.npz", backbone_weights(taught))
        archive.writestr("README.txt", readme)
    return buffer.getvalue()


def write_lesson_zip(taught: Taught, target) -> Path:
    target = Path(target).expanduser()
    data = lesson_zip(taught, target.stem)
    atomic_write(target, lambda tmp: tmp.write_bytes(data))
    return target
