"""Export: a saved model as a zip of its `.keras` file, its card and a standalone training script.

The script (`train_<name>.py`) imports only Keras, TensorFlow, NumPy and the standard library,
never cnn_core. It reads top-down as keras-io's `mnist_convnet` (data → model → train → evaluate)
with every hyperparameter in one dict at its top, taken from the card's `hyperparameters`. The
network is written out from the walk that `build_model` builds it from
(`cnn_core.nets.spec_walk.walk_spec` over the architecture's spec with the card's architecture
switches: residual blocks, separable convs), layer for layer and name for name. What plain Keras
lacks (airbench's optimizers, schedule, weight averaging, alternating flips, whitening and dirac
inits) and the tf.data pipeline are cnn_core's own code, copied into the script from cnn_core's
source files as they stand (`cnn_core_source`), so that the script runs what cnn_core runs; what it
only approximates is listed by `approximations(card)`, in the script's docstring and in the zip's
README.txt. The script's own text (its templates) is `cnn_core.export.templates`; this module fills it in.

    script_text(card)          the script's text
    export_zip(name)           the zip's bytes (model, card, script, README.txt)
    write_export(name, path)   either of them written to a file, atomically
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import textwrap
import zipfile
from pathlib import Path

from cnn_core.base.errors import ConfigError, ModelStoreError
from cnn_core.base.store import ModelStore, atomic_write, find_model, validate_name
from cnn_core.data.datasets import dataset_info
from cnn_core.export import templates
from cnn_core.nets.models import ARCHITECTURES, Spec, architecture_spec, architecture_switches, switched_spec
from cnn_core.nets.spec_walk import WHITEN_LAYER, BlockEnd, BlockStart, Event, Layer, Step, walk_spec
from cnn_core.train.switches import describe_switches

CARD_KEYS = ("name", "dataset", "architecture", "params", "hyperparameters")


def script_name(name: str) -> str:
    return f"train_{validate_name(name)}.py"


def _check_card(card: dict) -> dict:
    missing = [key for key in CARD_KEYS if key not in card]
    if missing:
        raise ModelStoreError(
            f"The model card of '{card.get('name', '?')}' lacks {', '.join(missing)}, "
            "so no training script can be written for it."
        )
    if card["architecture"] not in ARCHITECTURES:
        raise ConfigError(
            f"'{card['name']}' uses the architecture '{card['architecture']}', which this version "
            f"cannot export (known: {', '.join(ARCHITECTURES)})."
        )
    return card


def recipe(card: dict) -> dict:
    """The hyperparameter dict the script starts with: the card's, and the precision that ran
    where the card's recipe predates the `precision` key."""
    hp = dict(card["hyperparameters"])
    hp.setdefault("precision", card.get("precision", "fp32"))
    return hp


def card_spec(card: dict) -> Spec:
    """The card's network as cnn_core builds it: its architecture's spec with the card's architecture
    switches (residual, separable; off on cards saved before they existed)."""
    return switched_spec(
        architecture_spec(card["architecture"], card["dataset"]), **architecture_switches(recipe(card))
    )


def _card_walk(card: dict) -> list[Event]:
    """The card's network walked as `build_model` walks it (cnn_core.nets.spec_walk)."""
    info = dataset_info(card["dataset"])
    return list(walk_spec(card_spec(card), info.num_classes, info.input_shape[-1]))


def _uses(card: dict) -> dict[str, bool]:
    """Which of the pieces plain Keras lacks this card's network and recipe need."""
    hp, walk = recipe(card), _card_walk(card)
    validation = hp.get("val_size", 0) > 0
    return {
        "whiten": any(isinstance(event, Layer) and event.name == WHITEN_LAYER for event in walk),
        "dirac": bool(_dirac_convs(walk)),
        "fused_bn": any(isinstance(event, Layer) and event.cls == "FusedBatchNorm" for event in walk),
        "residual": bool(hp.get("residual")),
        "separable": bool(hp.get("separable")),
        "mixer": bool(hp.get("mixup")) or bool(hp.get("cutmix")),
        "grouped": hp["optimizer"] in ("sgd_nesterov_l2", "muon"),
        "muon": hp["optimizer"] == "muon",
        "triangle": hp["schedule"] == "triangle",
        "lookahead": bool(hp.get("lookahead_every")),
        "alternating": bool(hp["augment"].get("flip")) and hp.get("flip_schedule", "random") == "alternating",
        "validation": validation,
        "plateau": validation and hp["schedule"] == "plateau",
        "early_stopping": validation and bool(hp.get("early_stopping_patience")),
        "bf16": hp.get("precision") == "bf16",
        "auto_precision": hp.get("precision") == "auto",
        "jit_auto": hp.get("jit_compile") == "auto",
    }


def approximations(card: dict) -> list[str]:
    """Where the script departs from how cnn_core trained the model, one sentence each (the
    script's docstring and README.txt say the same)."""
    uses, notes = _uses(_check_card(card)), []
    for key, note in templates.NOTES:
        if key == "always" or uses.get(key):
            notes.append(note)
    return notes


# -- the network, as cnn_core.nets.spec_walk walks it for the builder ----------------------------------


def _number(value: float) -> str:
    """A float as code: 1 / 64 rather than 0.015625 where it is the inverse of a whole number."""
    value = float(value)
    if 0 < abs(value) < 1 and abs(1 / value - round(1 / value)) < 1e-9:
        return f"1 / {round(1 / value)}"
    return repr(value)


def _literal(value) -> str:
    """A JSON-like value as Python code, strings in double quotes."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        items = ", ".join(_literal(v) for v in value)
        return (
            f"({items},)"
            if isinstance(value, tuple) and len(value) == 1
            else (f"({items})" if isinstance(value, tuple) else f"[{items}]")
        )
    return repr(value)


def _argument(layer: Layer, value) -> str:
    """A layer's argument as code: floats as `_number` writes them, but a dropout rate as a rate (0.25, not 1 / 4)."""
    return _number(value) if isinstance(value, float) and layer.cls != "Dropout" else _literal(value)


def _layer_code(layer: Layer, float32: bool = False, target: str = "x", source: str = "x") -> list[str]:
    """`x = layers.…(…)(x)` for one walked layer (`float32`: its dtype pinned, as the classifier's is). Plain Keras
    has no FusedBatchNorm: the script builds a BatchNormalization, with a comment."""
    kwargs = {key: _argument(layer, value) for key, value in layer.kwargs.items()}
    if float32:
        kwargs["dtype"] = _literal("float32")
    kwargs["name"] = _literal(layer.name)
    parts = [_argument(layer, value) for value in layer.args] + [f"{key}={value}" for key, value in kwargs.items()]
    fused = layer.cls == "FusedBatchNorm"
    cls = "BatchNormalization" if fused else layer.cls
    return ([templates.FUSED_BN] if fused else []) + [f"    {target} = layers.{cls}({', '.join(parts)})({source})"]


def _block_code(event: BlockStart | BlockEnd) -> list[str]:
    """A residual block's first lines (its input kept as `shortcut`) or last (the shortcut, widened by a 1x1 conv
    where the block changes the channel count, added back)."""
    if isinstance(event, BlockStart):
        return list(templates.RESIDUAL_START)
    lines = [templates.RESIDUAL_END]
    if event.projection is not None:
        lines.append(templates.RESIDUAL_WIDEN.format(before=event.channels_in, after=event.channels_out))
        lines += _layer_code(event.projection, target="shortcut", source="shortcut")
    return lines + _layer_code(event.add, source="[x, shortcut]")


def _network_lines(walk: list[Event]) -> list[str]:
    """The body of the script's `build_model`: each step's kind and options as a comment, then its layers. The
    script sets Keras' dtype policy globally, so only the classifier's layers name a dtype: float32, as
    `mixed_bf16` keeps them."""
    lines, step = [], None
    for event in walk:
        if isinstance(event, Step):
            step = event
            lines.append(f"    # {event.kind}" + (f" {event.options}" if event.options else ""))
        elif isinstance(event, Layer):
            lines += _layer_code(event, float32=step.kind == "classifier")
        else:
            lines += _block_code(event)
    return lines


def _dirac_convs(walk: list[Event]) -> list[str]:
    """The convs that start as partial identities: the plain convs of the steps marked `dirac` (a separable conv
    has no one kernel to make an identity of), as cnn_core.nets.initialisers picks them."""
    names, dirac = [], False
    for event in walk:
        if isinstance(event, Step):
            dirac = bool(event.options.get("dirac"))
        elif isinstance(event, Layer) and event.cls == "Conv2D" and dirac:
            names.append(event.name)
    return names


# -- the script ---------------------------------------------------------------------------------


def _docstring(card: dict, notes: list[str]) -> str:
    hp, name, accuracy = recipe(card), card["name"], card.get("test_accuracy")
    return templates.SCRIPT_DOCSTRING.format(
        name=name,
        arch=card["architecture"],
        recipe=hp.get("recipe", "?"),
        dataset=card["dataset"],
        accuracy="" if accuracy is None else templates.ACCURACY.format(accuracy=accuracy),
        switches="".join(f"{line}\n" for line in _switches_lines(hp)),
        script=script_name(name),
        epochs=hp["epochs"],
        notes="\n".join(_notes_lines(notes)),
    )


def _switches_lines(hp: dict, width: int = 100) -> list[str]:
    """'Recipe switches on: …' and a blank line, for a card trained with any (none for older cards)."""
    if not hp.get("switches"):
        return []
    return _wrapped(templates.SWITCHES_ON.format(switches=describe_switches(hp)), "", width) + [""]


def _notes_lines(notes: list[str], width: int = 100) -> list[str]:
    """The approximations as a list, each wrapped under its dash."""
    return [line for note in notes for line in _wrapped(f"- {note}", "  ", width)]


def _wrapped(text: str, indent: str, width: int = 100) -> list[str]:
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False)


def _hyperparameters_code(card: dict) -> str:
    items = [f"    {_literal(key)}: {_literal(value)}," for key, value in recipe(card).items()]
    return templates.HYPERPARAMETERS.format(items="\n".join(items))


def _constants_code(card: dict, dirac: list[str]) -> str:
    info = dataset_info(card["dataset"])
    return templates.CONSTANTS.format(
        name=_literal(card["name"]),
        dataset=_literal(info.name),
        class_names=_literal(list(info.class_names)),
        input_shape=repr(info.input_shape),
        mirrorable=repr(info.mirrorable),
        params=int(card["params"]),
        dirac=_literal(dirac),
    )


def _model_code(card: dict, body: list[str]) -> str:
    """The script's `build_model`: its head, the network's lines, its tail."""
    hp = recipe(card)
    switched = " and ".join(words for key, words in templates.SWITCHED_WORDS.items() if hp.get(key))
    switched = templates.SWITCHED.format(switched=switched) if switched else ""
    head = templates.BUILD_MODEL_HEAD.format(
        arch=card["architecture"], dataset=dataset_info(card["dataset"]).name, switched=switched
    )
    tail = templates.BUILD_MODEL_TAIL.strip("\n").format(name=_literal(card["name"]))
    return "\n".join([head, *body, tail])


def _recipe_sections(card: dict) -> list[str]:
    """The training recipe's pieces this card needs, in reading order."""
    uses, hp = _uses(card), recipe(card)
    sections = []
    if uses["whiten"] or uses["dirac"]:
        sections.append(initialisers_code(uses))
    if uses["triangle"]:
        sections.append(templates.RECIPE_HEAD + "\n" + cnn_core_source("train.optimizer", "TriangleSchedule"))
    sections.append(templates.LEARNING_RATE[hp["schedule"]])
    if uses["grouped"]:
        sections.append(cnn_core_source("train.optimizer", "GroupedSGD"))
    if uses["muon"]:
        sections.append(cnn_core_source("train.optimizer", "MuonSGD"))
    sections.append(templates.MAKE_OPTIMIZER[hp["optimizer"]])
    if uses["lookahead"]:
        sections.append(cnn_core_source("train.callbacks", "Lookahead"))
    if uses["alternating"]:
        sections.append(cnn_core_source("data.augment", "AlternatingFlip"))
    if uses["validation"]:
        sections.append(templates.KEEP_BEST)
    sections.append(callbacks_function(uses))
    return sections


def script_text(card: dict) -> str:
    """The standalone training script of a model card (see the module's docstring)."""
    _check_card(card)
    walk, uses = _card_walk(card), _uses(card)
    sections = [
        _docstring(card, approximations(card)),
        templates.IMPORTS,
        _hyperparameters_code(card),
        _constants_code(card, _dirac_convs(walk)),
        data_code(),
        templates.PRECISION,
        _model_code(card, _network_lines(walk)),
        *_recipe_sections(card),
        templates.EVALUATE,
        main_function(uses),
    ]
    return "\n\n\n".join(section.strip("\n") for section in sections) + "\n"


# -- the zip ------------------------------------------------------------------------------------


def readme_text(card: dict) -> str:
    name, versions, script = card["name"], card.get("versions") or {}, script_name(card["name"])
    made_with = ", ".join(f"{k} {v}" for k, v in versions.items() if k in ("tensorflow", "keras", "numpy", "python"))
    shape = ", ".join(map(str, dataset_info(card["dataset"]).input_shape))
    files = [(file.format(name=name, script=script), what.format(shape=shape)) for file, what in templates.README_FILES]
    width = max(len(file) for file, _ in files) + 2
    return templates.README.format(
        name=name,
        dataset=card["dataset"],
        files="\n".join(line for file, what in files for line in _wrapped(file.ljust(width) + what, " " * width, 96)),
        made_with=made_with or templates.README_NO_VERSIONS,
        switches="".join(f"{line}\n" for line in _switches_lines(recipe(card), 96)),
        script=script,
        notes="\n".join(_notes_lines(approximations(card), 96)),
    )


def export_zip(name: str, store: ModelStore | None = None) -> bytes:
    """A zip of the model's `.keras` file, its card, its training script and a README.txt."""
    store = store or find_model(name)
    card = {**store.load_card(name), "name": name}
    script = script_text(card)
    try:
        model_bytes = store.model_path(name).read_bytes()
    except OSError as err:
        raise ModelStoreError(f"Could not read {store.model_path(name).name}: {err.strerror or err}.") from None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.keras", model_bytes)
        archive.writestr(f"{name}.json", json.dumps(store.load_card(name), indent=2))
        archive.writestr(script_name(name), script)
        archive.writestr("README.txt", readme_text(card))
    return buffer.getvalue()


def write_export(name: str, target, script_only: bool = False) -> Path:
    """The export zip (or, with `script_only`, the script alone) written atomically to `target`;
    an unknown model or an unwritable path is a ModelStoreError."""
    target = Path(target).expanduser()
    store = find_model(name)
    if target.is_dir():
        raise ModelStoreError(f"{target} is a folder; give a file name to write the export to.")
    data = script_text({**store.load_card(name), "name": name}).encode() if script_only else export_zip(name, store)
    if not target.parent.is_dir():
        why = "is not a folder" if target.parent.exists() else "does not exist"
        raise ModelStoreError(f"Could not save {target.name}: {target.parent} {why}.")
    atomic_write(target, lambda tmp: tmp.write_bytes(data))
    return target


# -- the script's pieces: cnn_core's own source, and the templates filled in --------------------------


def _defined_names(node: ast.stmt) -> list[str]:
    """The names a top-level statement defines: a class's, a function's, an assignment's targets."""
    if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
        return [node.name]
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return [target.id for target in targets if isinstance(target, ast.Name)]


def cnn_core_source(module: str, *names: str, sep: str = "\n\n\n") -> str:
    """The source of top-level classes, functions or constants (with their end-of-line comments) of
    cnn_core.<module> (e.g. "train.optimizer"), as they stand there, so that the script carries the very code cnn_core
    runs. Read from the file as inspect.getsource reads it, but without importing the module: the
    export needs no TensorFlow (`python -m cnn_core export` never loads it). Decorators are left out
    (a node's first line is its `class` or `def`): the script registers nothing with Keras'
    serialisation, as it saves its trained network without the optimizer."""
    text = Path(importlib.util.find_spec(f"cnn_core.{module}").origin).read_text(encoding="utf-8")
    lines, found = text.splitlines(), {}
    for node in ast.parse(text).body:
        for name in _defined_names(node):
            found[name] = "\n".join(lines[node.lineno - 1 : node.end_lineno])
    missing = [name for name in names if name not in found]
    if missing:
        raise LookupError(f"cnn_core.{module} defines no {', '.join(missing)} for the exported script.")
    return sep.join(found[name] for name in names)


def data_code() -> str:
    """The script's data section: its own loading and hold-out, then cnn_core's augmenter and tf.data
    pipeline (cnn_core.data.augment.build_augmenter, cnn_core.data.pipeline.make_tf_dataset and the
    batch_mixer it calls for mixup and CutMix, a no-op where both are off)."""
    return "\n\n\n".join(
        [
            templates.DATA.strip("\n"),
            templates.DATASET_INFO,
            cnn_core_source("data.augment", "build_augmenter"),
            cnn_core_source("data.pipeline", "make_tf_dataset", "batch_mixer"),
        ]
    )


def initialisers_code(uses: dict) -> str:
    """airbench's two inits, cnn_core's own: dirac on DIRAC_CONVS and, with a stem, its whitening."""
    parts = [templates.INIT_HEAD]
    if uses["whiten"]:
        parts.append(cnn_core_source("nets.initialisers", "WHITEN_IMAGES", "WHITEN_EPS", sep="\n"))
        parts.append(cnn_core_source("nets.initialisers", "patch_whitening_kernel"))
    parts.append(cnn_core_source("nets.initialisers", "dirac_identity"))
    doc, stem = ("whiten", templates.INITIALISE_STEM) if uses["whiten"] else ("dirac", "")
    parts.append(templates.INITIALISE.format(doc=templates.INITIALISE_DOC[doc], stem=stem))
    return "\n\n\n".join(part.strip("\n") for part in parts)


def callbacks_function(uses: dict) -> str:
    """The script's `make_callbacks`, with the callbacks this recipe uses only (templates.MAKE_CALLBACKS)."""
    lines = [templates.MAKE_CALLBACKS_HEAD.strip("\n")]
    for key, code in templates.MAKE_CALLBACKS:
        if uses[key]:
            lines += code
    return "\n".join([*lines, templates.MAKE_CALLBACKS_TAIL])


def main_function(uses: dict) -> str:
    """The script's `parse_args`, `main` and entry point: data → model → train → evaluate → save."""
    init = templates.MAIN_INITIALISE if uses["whiten"] or uses["dirac"] else ""
    flips = templates.MAIN_FLIPS if uses["alternating"] else "None"
    return templates.MAIN.replace("__INITIALISE__", init).replace("__FLIPS__", flips)
