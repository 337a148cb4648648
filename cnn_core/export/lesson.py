"""A taught classifier (cnn_core.teach) as a zip a visitor downloads: the whole network as a `.keras` file, its
card, the "none of these classes" detector's statistics and a README saying how to use them."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

from cnn_core.base.store import atomic_write, to_json_value
from cnn_core.teach.learner import Taught

README = """{name}: a classifier of your own classes ({classes}), taught by CNN Studio.

{name}.keras          the whole network: the shipped `{backbone}` network ({dataset}), frozen, and the
                      head taught on your pictures; raw pixels 0..255 in ({shape}), probabilities out.
                      Load it with cnn_core installed (its layers are registered on import):
                          import cnn_core.base.layers, keras
                          model = keras.saving.load_model("{name}.keras")
{name}.json           its card: classes, pictures per class and their SHA-256, the recipe, the held-out
                      estimate ({method}: {accuracy:.1%}), the warning's threshold and AUROC, time, machine.
{name}.detector.npz   the "none of these classes" warning's statistics (cnn_core.predict.ood.Detector).

Pictures go through {dataset}'s preprocessing before the network sees them (`python -m cnn_core predict`
does the same for the shipped models): cnn_core.data.preprocess.preprocessor("{dataset}").from_image(img).
Made by: {command}
"""


def lesson_name(card: dict) -> str:
    return "taught_" + "_".join("".join(ch for ch in c.lower() if ch.isalnum())[:12] for c in card["class_names"])[:60]


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
        archive.writestr("README.txt", readme)
    return buffer.getvalue()


def write_lesson_zip(taught: Taught, target) -> Path:
    target = Path(target).expanduser()
    data = lesson_zip(taught, target.stem)
    atomic_write(target, lambda tmp: tmp.write_bytes(data))
    return target
