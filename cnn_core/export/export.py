"""Export: a saved model as a zip of its `.keras` file, its card and a standalone training script.

The script (`train_<name>.py`) imports only Keras, TensorFlow, NumPy and the standard library,
never cnn_core. It reads top-down as keras-io's `mnist_convnet` (data → model → train → evaluate)
with every hyperparameter in one dict at its top, taken from the card's `hyperparameters`. The
network is written out step by step from the architecture's spec with the card's architecture
switches (`cnn_core.nets.models.switched_spec`: residual blocks, separable convs), layer for layer and
name for name as `build_model` builds it. What plain Keras lacks (airbench's optimizers,
schedule, weight averaging, alternating flips, whitening and dirac inits) and the tf.data pipeline
are cnn_core's own code, copied into the script from cnn_core's source files as they stand
(`cnn_core_source`), so that the script runs what cnn_core runs; what it only approximates is
listed by `approximations(card)`, in the script's docstring and in the zip's README.txt.

    script_text(card)          the script's text
    export_zip(name)           the zip's bytes (model, card, script, README.txt)
    write_export(name, path)   either of them written to a file, atomically
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import zipfile
from pathlib import Path

from cnn_core.base.errors import ConfigError, ModelStoreError
from cnn_core.base.store import ModelStore, atomic_write, find_model, validate_name
from cnn_core.data.datasets import dataset_info
from cnn_core.nets.models import (
    ARCHITECTURES,
    CONV_KINDS,
    WHITEN_LAYER,
    Spec,
    architecture_spec,
    architecture_switches,
    switched_spec,
)
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


def _flat_steps(spec: Spec) -> Spec:
    """The spec's steps in the order the builder makes their layers, residual blocks opened."""
    steps = []
    for kind, options in spec:
        steps += _flat_steps(options["steps"]) if kind == "residual" else [(kind, options)]
    return steps


def _uses(card: dict) -> dict[str, bool]:
    """Which of the pieces plain Keras lacks this card's network and recipe need."""
    hp, steps = recipe(card), _flat_steps(card_spec(card))
    validation = hp.get("val_size", 0) > 0
    return {
        "whiten": any(kind == "whiten_stem" for kind, _ in steps),
        # cnn_core.nets.initialisers: dirac on plain convs only (a separable conv has no one kernel for it)
        "dirac": any(options.get("dirac") and not options.get("separable") for _, options in steps),
        "fused_bn": any((options.get("bn") or {}).get("fused") for _, options in steps),
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
    for key, note in NOTES:
        if key == "always" or uses.get(key):
            notes.append(note)
    return notes


# -- the network, step by step, as cnn_core.nets.models._step_layers builds it ----------------------


class _Names:
    """The builder's layer names (conv1, bn1, relu1, ...): counters per prefix."""

    def __init__(self):
        self.counts: dict[str, int] = {}

    def __call__(self, prefix: str) -> str:
        self.counts[prefix] = self.counts.get(prefix, 0) + 1
        return f"{prefix}{self.counts[prefix]}"


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


def _call(layer: str, *args: str, **kwargs) -> str:
    parts = list(args) + [f"{key}={value}" for key, value in kwargs.items()]
    return f"    x = layers.{layer}({', '.join(parts)})(x)"


def _conv_code(options: dict, name: str, use_bias: bool = True, activation: str | None = None) -> str:
    """A Conv2D, or a SeparableConv2D (per-channel 3×3 filter, then a 1×1 mix) for a `separable` step."""
    extra = {"activation": _literal(activation)} if activation else {}
    layer = "SeparableConv2D" if options.get("separable") else "Conv2D"
    return _call(
        layer,
        str(options["filters"]),
        str(options.get("kernel", 3)),
        padding=_literal(options.get("padding", "same")),
        use_bias=str(use_bias),
        **extra,
        name=_literal(name),
    )


def _bn_code(name: str, options: dict | None = None) -> list[str]:
    options = {"momentum": 0.9, **(options or {})}
    fused = options.pop("fused", False)
    kwargs = {key: (_number(v) if isinstance(v, float) else _literal(v)) for key, v in options.items()}
    line = _call("BatchNormalization", **kwargs, name=_literal(name))
    # FusedBatchNorm (cnn_core.base.layers) computes the same normalisation faster; plain Keras has only this one.
    comment = (
        "    # cnn_core trains this as its FusedBatchNorm: the same normalisation through TensorFlow's fused kernel."
    )
    return ([comment] if fused else []) + [line]


def _activation_code(options: dict, names: _Names) -> str:
    kind = options.get("activation", "relu")
    if kind == "relu":
        return _call("ReLU", name=_literal(names("relu")))
    return _call("Activation", _literal(kind), name=_literal(names(kind)))


def _classifier_code(options: dict, num_classes: int) -> list[str]:
    bias, out = str(options.get("use_bias", True)), _literal("float32")  # the classifier stays float32 in bf16
    if "logit_scale" in options:
        return [
            _call("Dense", str(num_classes), use_bias=bias, dtype=out, name=_literal("classifier")),
            _call("Rescaling", _number(options["logit_scale"]), dtype=out, name=_literal("logit_scale")),
            _call("Softmax", dtype=out, name=_literal("softmax")),
        ]
    return [
        _call(
            "Dense",
            str(num_classes),
            activation=_literal("softmax"),
            use_bias=bias,
            dtype=out,
            name=_literal("classifier"),
        )
    ]


def _step_code(kind: str, options: dict, num_classes: int, names: _Names) -> list[str]:
    """The lines of one spec step (`x = layers.…(x)`), or a ConfigError for a kind unknown here."""
    if kind == "rescale":
        return [
            _call(
                "Rescaling",
                _number(options["scale"]),
                offset=_number(options["offset"]),
                name=_literal(names("rescale")),
            )
        ]
    if kind == "conv_relu_bn":
        return [_conv_code(options, names("conv"), activation="relu"), *_bn_code(names("bn"))]
    if kind == "conv_bn_relu":
        return [
            _conv_code(options, names("conv"), use_bias=False),
            *_bn_code(names("bn"), options.get("bn")),
            _activation_code(options, names),
        ]
    if kind == "conv_pool_bn_relu":
        return [
            _conv_code(options, names("conv"), use_bias=False),
            _call("MaxPooling2D", name=_literal(names("pool"))),
            *_bn_code(names("bn"), options.get("bn")),
            _activation_code(options, names),
        ]
    if kind == "whiten_stem":
        return [
            _conv_code({**options, "padding": "valid"}, WHITEN_LAYER),
            _call("Activation", _literal("gelu"), name=_literal(names("gelu"))),
        ]
    simple = {
        "max_pool": ("MaxPooling2D", "pool"),
        "global_max_pool": ("GlobalMaxPooling2D", "global_max_pool"),
        "flatten": ("Flatten", "flatten"),
    }
    if kind in simple:
        layer, prefix = simple[kind]
        return [_call(layer, name=_literal(names(prefix)))]
    if kind == "dropout":
        return [_call("Dropout", _literal(options["rate"]), name=_literal(names("dropout")))]
    if kind == "dense_relu_bn":
        return [
            _call("Dense", str(options["units"]), activation=_literal("relu"), name=_literal(names("dense"))),
            *_bn_code(names("bn")),
        ]
    if kind == "classifier":
        return _classifier_code(options, num_classes)
    raise ConfigError(f"The exporter has no code for the layer kind '{kind}'.")


class _Network:
    """The lines of the script's `build_model` body as they are written out: the layer names so far,
    the convs that start as partial identities (dirac) and the channel count of `x` (which decides a
    residual block's projection at export time, as the builder decides it when it builds)."""

    def __init__(self, num_classes: int, channels: int):
        self.num_classes, self.channels = num_classes, channels
        self.names, self.lines, self.dirac = _Names(), [], []

    def add_steps(self, spec: Spec) -> None:
        for kind, options in spec:
            if kind == "residual":
                self.add_residual(options["steps"])
                continue
            step = _step_code(kind, options, self.num_classes, self.names)
            if options.get("dirac") and not options.get("separable"):  # as cnn_core.nets.initialisers does
                self.dirac.append(f"conv{self.names.counts['conv']}")
            if kind == "whiten_stem" or kind in CONV_KINDS:
                self.channels = options["filters"]
            self.lines.append(f"    # {kind}" + (f" {options}" if options else ""))
            self.lines += step

    def add_residual(self, steps: Spec) -> None:
        """A residual block (cnn_core.nets.models._apply_step): its steps' output plus its input, the input
        through a bias-free 1×1 conv where the channel count changes."""
        before = self.channels
        self.lines += ["    # residual block: its convs learn a change added to their input", "    shortcut = x"]
        self.add_steps(steps)
        self.lines.append("    # end of the residual block: its input added back")
        if self.channels != before:
            self.lines += [
                f"    # {before} -> {self.channels} channels: a 1x1 conv widens the input to match",
                (
                    f"    shortcut = layers.Conv2D({self.channels}, 1, use_bias=False, "
                    f"name={_literal(self.names('shortcut'))})(shortcut)"
                ),
            ]
        self.lines.append(f"    x = layers.Add(name={_literal(self.names('add'))})([x, shortcut])")


def network_code(
    arch: str, dataset: str, residual: bool = False, separable: bool = False
) -> tuple[list[str], list[str]]:
    """The body of the script's `build_model` for one architecture and dataset with the architecture
    switches (cnn_core.nets.models.switched_spec), and the names of the convs that start as partial
    identities (dirac)."""
    info = dataset_info(dataset)
    network = _Network(info.num_classes, info.input_shape[-1])
    network.add_steps(switched_spec(architecture_spec(arch, dataset), residual, separable))
    return network.lines, network.dirac


# -- the script ---------------------------------------------------------------------------------


def _docstring(card: dict, notes: list[str]) -> str:
    hp, name = recipe(card), card["name"]
    accuracy = card.get("test_accuracy")
    lines = [
        (
            f'"""Train `{name}` again from scratch: {card["architecture"]} network, {hp.get("recipe", "?")} recipe, '
            f"{card['dataset']}."
        ),
        "",
        f"Exported by CNN Studio (cnn_core) from the model card of `{name}`"
        + (f" (test accuracy {accuracy:.2%})." if accuracy is not None else "."),
        "A standalone script: Keras 3, TensorFlow, NumPy and the standard library, no cnn_core.",
        "It reads top-down: hyperparameters → data → model → train → evaluate → save.",
        "",
        *_switches_lines(hp),
        f"    python {script_name(name)}                      # the whole recipe ({hp['epochs']} epochs)",
        f"    python {script_name(name)} --epochs 1 --subset 1024 --data-dir DIR   # a quick check",
        "",
        "--data-dir is a folder of <dataset>.npz files (keys x_train y_train x_test y_test, uint8);",
        "without it keras.datasets downloads the data.",
        "",
        "Where this script departs from how cnn_core trained the model:",
    ]
    for note in notes:
        lines += _wrapped(f"- {note}", "  ")
    return "\n".join(lines + ['"""'])


def _switches_lines(hp: dict, width: int = 100) -> list[str]:
    """'Recipe switches on: …' and a blank line, for a card trained with any (none for older cards)."""
    if not hp.get("switches"):
        return []
    text = f"Recipe switches on (the original notebook's improvements to try): {describe_switches(hp)}."
    return _wrapped(text, "", width) + [""]


def _wrapped(text: str, indent: str, width: int = 100) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False)


def _hyperparameters_code(card: dict) -> str:
    lines = [
        "# Every hyperparameter of the run, as its model card recorded them (one dict, airbench style).",
        "HYPERPARAMETERS = {",
    ]
    lines += [f"    {_literal(key)}: {_literal(value)}," for key, value in recipe(card).items()]
    return "\n".join(lines + ["}"])


def _constants_code(card: dict, dirac: list[str]) -> str:
    info = dataset_info(card["dataset"])
    return "\n".join(
        [
            f"MODEL_NAME = {_literal(card['name'])}",
            f"DATASET = {_literal(info.name)}",
            f"CLASS_NAMES = {_literal(list(info.class_names))}",
            f"INPUT_SHAPE = {info.input_shape!r}",
            f"MIRRORABLE = {info.mirrorable!r}  # a mirror image shows the same class (not so for digits)",
            f"CARD_PARAMS = {int(card['params'])}  # the parameter count on the model card",
            f"DIRAC_CONVS = {_literal(dirac)}  # convs that start as partial identities (dirac)",
        ]
    )


def _model_code(card: dict, body: list[str]) -> str:
    info = dataset_info(card["dataset"])
    hp = recipe(card)
    switched = " and ".join(
        words
        for key, words in (("residual", "residual connections"), ("separable", "depthwise-separable convolutions"))
        if hp.get(key)
    )
    switched = f"\n    With {switched}, as the recipe's switches ask." if switched else ""
    head = [BUILD_MODEL_HEAD.format(arch=card["architecture"], dataset=info.name, switched=switched)]
    tail = [
        f"    model = keras.Model(inputs, x, name={_literal(card['name'])})",
        '    keras.mixed_precision.set_global_policy("float32")  # the rest (augmentation, saving) in float32',
        "    return model",
    ]
    return "\n".join(head + body + tail)


def _recipe_sections(card: dict) -> list[str]:
    """The training recipe's pieces this card needs, in reading order."""
    uses, hp = _uses(card), recipe(card)
    sections = []
    if uses["whiten"] or uses["dirac"]:
        sections.append(initialisers_code(uses))
    if uses["triangle"]:
        sections.append(_RECIPE_HEAD + "\n" + cnn_core_source("train.optimizer", "TriangleSchedule"))
    sections.append(LEARNING_RATE[hp["schedule"]])
    if uses["grouped"]:
        sections.append(cnn_core_source("train.optimizer", "GroupedSGD"))
    if uses["muon"]:
        sections.append(cnn_core_source("train.optimizer", "MuonSGD"))
    sections.append(MAKE_OPTIMIZER[hp["optimizer"]])
    if uses["lookahead"]:
        sections.append(cnn_core_source("train.callbacks", "Lookahead"))
    if uses["alternating"]:
        sections.append(cnn_core_source("data.augment", "AlternatingFlip"))
    if uses["validation"]:
        sections.append(KEEP_BEST)
    sections.append(callbacks_function(uses))
    return sections


def script_text(card: dict) -> str:
    """The standalone training script of a model card (see the module's docstring)."""
    _check_card(card)
    body, dirac = network_code(card["architecture"], card["dataset"], **architecture_switches(recipe(card)))
    uses = _uses(card)
    sections = [
        _docstring(card, approximations(card)),
        IMPORTS,
        _hyperparameters_code(card),
        _constants_code(card, dirac),
        data_code(),
        PRECISION,
        _model_code(card, body),
        *_recipe_sections(card),
        EVALUATE,
        main_function(uses),
    ]
    return "\n\n\n".join(section.strip("\n") for section in sections) + "\n"


# -- the zip ------------------------------------------------------------------------------------


def readme_text(card: dict) -> str:
    name, versions = card["name"], card.get("versions") or {}
    made_with = ", ".join(f"{k} {v}" for k, v in versions.items() if k in ("tensorflow", "keras", "numpy", "python"))
    shape = ", ".join(map(str, dataset_info(card["dataset"]).input_shape))
    files = [
        (
            f"{name}.keras",
            (
                "the trained network (keras.saving.load_model); input: raw pixels 0..255 as float32, "
                f"shaped (N, {shape}); output: class probabilities."
            ),
        ),
        (f"{name}.json", "its model card: hyperparameters, history, accuracy, machine, library versions."),
        (
            script_name(name),
            (
                "a standalone script (Keras, TensorFlow, NumPy; no cnn_core) that builds the same "
                "network, trains it with the same recipe, evaluates it and saves it."
            ),
        ),
    ]
    width = max(len(file) for file, _ in files) + 2
    lines = [f"{name}: a {card['dataset']} classifier exported by CNN Studio", ""]
    for file, what in files:
        lines += _wrapped(file.ljust(width) + what, " " * width, 96)
    lines += [
        "",
        f"Trained with: {made_with or 'see the card'}.",
        "",
        *_switches_lines(recipe(card), 96),
        f"Run the whole recipe:   python {script_name(name)}",
        f"A one-epoch check:      python {script_name(name)} --epochs 1 --subset 1024 --data-dir DIR",
        "DIR holds <dataset>.npz with keys x_train y_train x_test y_test (uint8); without --data-dir the",
        "data comes from keras.datasets. `--help` lists every option.",
        "",
        "Where the script departs from how cnn_core trained the model:",
    ]
    for note in approximations(card):
        lines += _wrapped(f"- {note}", "  ", 96)
    return "\n".join(lines) + "\n"


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


# -- the script's pieces (module constants, so no function here runs past a screen) ---------------


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
            DATA.strip("\n"),
            DATASET_INFO,
            cnn_core_source("data.augment", "build_augmenter"),
            cnn_core_source("data.pipeline", "make_tf_dataset", "batch_mixer"),
        ]
    )


def initialisers_code(uses: dict) -> str:
    """airbench's two inits, cnn_core's own: dirac on DIRAC_CONVS and, with a stem, its whitening."""
    parts = [INIT_HEAD]
    if uses["whiten"]:
        parts.append(cnn_core_source("nets.initialisers", "WHITEN_IMAGES", "WHITEN_EPS", sep="\n"))
        parts.append(cnn_core_source("nets.initialisers", "patch_whitening_kernel"))
    parts.append(cnn_core_source("nets.initialisers", "dirac_identity"))
    parts.append(INITIALISE_WHITEN if uses["whiten"] else INITIALISE_DIRAC)
    return "\n\n\n".join(part.strip("\n") for part in parts)


def callbacks_function(uses: dict) -> str:
    """The script's `make_callbacks`, with the callbacks this recipe uses only (MAKE_CALLBACKS)."""
    lines = [
        "def make_callbacks(hp, steps_per_epoch, flips=None):",
        '    """fit()\'s callbacks, as cnn_core\'s trainer sets them up for this recipe."""',
        "    callbacks = []",
    ]
    for key, code in MAKE_CALLBACKS:
        if uses[key]:
            lines += code
    return "\n".join(lines + ["    return callbacks"])


def main_function(uses: dict) -> str:
    """The script's `parse_args`, `main` and entry point: data → model → train → evaluate → save."""
    init = (
        "    initialise(model, x_train)  # airbench's inits, before training\n"
        if uses["whiten"] or uses["dirac"]
        else ""
    )
    flips = 'AlternatingFlip(len(x_train), hp["seed"])' if uses["alternating"] else "None"
    return MAIN.replace("__INITIALISE__", init).replace("__FLIPS__", flips)


IMPORTS = """
from __future__ import annotations  # cnn_core's code below names types the script never imports

import argparse
import os
import types
import warnings

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN's kernels on every x86 CPU, as cnn_core sets them
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

warnings.filterwarnings("ignore", message=".*shuffle=True.*tf.data.Dataset")  # the pipeline shuffles itself
"""

# The script's own: cnn_core loads through cnn_core.data.datasets (and its download) and draws the
# hold-out class-stratified with scikit-learn (cnn_core.train.training), neither of which the script has.
DATA = '''
# -- data ----------------------------------------------------------------------------------------

def load_data(data_dir=None):
    """(x_train, y_train), (x_test, y_test): uint8 images (N, H, W, C) and integer labels, from
    DATA_DIR/<dataset>.npz (keys x_train y_train x_test y_test) or else keras.datasets."""
    if data_dir:
        with np.load(os.path.join(data_dir, f"{DATASET}.npz"), allow_pickle=False) as npz:
            x_train, y_train, x_test, y_test = (npz[key] for key in ("x_train", "y_train", "x_test", "y_test"))
    else:
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, DATASET).load_data()
    shape = (-1, *INPUT_SHAPE)  # grey images get their channel axis
    return ((x_train.reshape(shape), y_train.reshape(-1).astype("int32")),
            (x_test.reshape(shape), y_test.reshape(-1).astype("int32")))


def split_training(x, y, val_size, subset, seed):
    """A seeded random validation hold-out of `val_size` images and, with `subset`, that many
    training images (the validation part then shrinks as cnn_core shrinks it for quick runs)."""
    order = np.random.default_rng(seed).permutation(len(x))
    if subset:
        val_size = min(val_size, len(x) // 5)
    val, train = order[:val_size], order[val_size:]
    if subset:
        train, val = train[:subset], val[:max(1000, subset // 2)]
    return (x[train], y[train]), (x[val], y[val])
'''

DATASET_INFO = (
    "# What cnn_core's pipeline (make_tf_dataset, below) reads of its DatasetInfo.\n"
    "DATASET_INFO = types.SimpleNamespace(input_shape=INPUT_SHAPE, num_classes=len(CLASS_NAMES))"
)

# Not cnn_core's (cnn_core.nets.precision.resolve_precision, cnn_core.train.optimizer.jit_compiles): theirs read
# cnn_core.base.runtime (ONEDNN_MAX_CPU_ISA, TensorFlow's own oneDNN check) and raise cnn_core's errors.
PRECISION = '''
def resolve_precision(requested):
    """"bf16" or "fp32". "auto" is bfloat16 only where the CPU does it in hardware (AVX512-BF16 or
    AMX, read from /proc/cpuinfo; float32 elsewhere) and oneDNN is on, as cnn_core decides it."""
    if requested != "auto":
        return requested
    try:
        with open("/proc/cpuinfo") as fh:
            flags = set(fh.read().split())
    except OSError:
        return "fp32"
    native = bool({"avx512_bf16", "amx_bf16"} & flags)
    return "bf16" if native and os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip() != "0" else "fp32"


def jit_compiles(hp, precision):
    """XLA for the training step: `jit_compile` true, or "auto" for a float32 run with oneDNN off
    (where cnn_core measured it to pay). A compiled run drops the last, smaller batch."""
    setting = hp.get("jit_compile", False)
    return setting is True or (setting == "auto" and precision == "fp32"
                               and os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip() == "0")
'''

BUILD_MODEL_HEAD = '''
# -- model ---------------------------------------------------------------------------------------

def build_model(precision="fp32"):
    """The `{arch}` network for {dataset}, layer for layer as cnn_core builds it: raw pixels 0..255
    in (the first layer rescales them), class probabilities out. In "bf16" it computes in bfloat16
    (Keras' mixed_bfloat16 policy: weights, BN statistics and the classifier stay float32).{switched}"""
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    inputs = keras.Input(shape=INPUT_SHAPE, name="pixels")
    x = inputs'''

INIT_HEAD = """
# -- weights set before training: airbench's two initialisations, cnn_core's (not in Keras) --------
"""

# Not cnn_core's initialise_from_data, which finds the convs from the architecture's spec
# (cnn_core.nets.models); the script knows them by name (DIRAC_CONVS).
INITIALISE_DIRAC = '''
def initialise(model, x_train):
    """Dirac on the DIRAC_CONVS."""
    for name in DIRAC_CONVS:
        layer = model.get_layer(name)
        kernel, *rest = layer.get_weights()
        layer.set_weights([dirac_identity(kernel), *rest])
'''

INITIALISE_WHITEN = (
    INITIALISE_DIRAC.replace(
        '"""Dirac on the DIRAC_CONVS."""',
        '''"""Dirac on the DIRAC_CONVS; the stem ("whiten", never trained) whitens the patches of the
    first WHITEN_IMAGES training images as the rescaling layer gives them."""''',
    )
    + """    stem = model.get_layer("whiten")
    rescaled = ops.convert_to_numpy(model.get_layer("rescale1")(x_train[:WHITEN_IMAGES].astype("float32")))
    stem.set_weights([patch_whitening_kernel(rescaled, stem.kernel_size[0], stem.filters),
                      np.zeros(stem.filters, np.float32)])
"""
)

_RECIPE_HEAD = """
# -- training recipe -----------------------------------------------------------------------------
"""

# cnn_core.train.optimizer's learning_rate and make_optimizer, one branch per recipe: theirs choose at run
# time among all of them; the script carries its recipe's branch only (and names no class it lacks).
LEARNING_RATE = {
    "plateau": _RECIPE_HEAD
    + '''
def learning_rate(hp, steps_per_epoch):
    """A constant start; ReduceLROnPlateau (see make_callbacks) lowers it when validation stalls."""
    return hp["lr"]
''',
    "onecycle": _RECIPE_HEAD
    + '''
def learning_rate(hp, steps_per_epoch):
    """One cycle, per batch, planned over the whole run: linear warm-up from lr/10 to lr over
    warmup_fraction of the batches, then cosine decay to 0 at the last batch."""
    total = max(1, steps_per_epoch * hp["epochs"])
    warmup = max(1, int(total * hp["warmup_fraction"]))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=hp["lr"] / 10, decay_steps=max(1, total - warmup), alpha=0.0,
        warmup_target=hp["lr"], warmup_steps=warmup)
''',
    "cosine": _RECIPE_HEAD
    + '''
def learning_rate(hp, steps_per_epoch):
    """Half a cosine, per batch, planned over the whole run: lr at the first batch, 0 after the
    last; no warm-up (the `cosine` switch)."""
    total = max(1, steps_per_epoch * hp["epochs"])
    return keras.optimizers.schedules.CosineDecay(initial_learning_rate=hp["lr"], decay_steps=total, alpha=0.0)
''',
    "triangle": '''
def learning_rate(hp, steps_per_epoch):
    """airbench's triangle, per batch, planned over the whole run: its peak at warmup_fraction."""
    total = max(1, steps_per_epoch * hp["epochs"])
    warmup = max(1, int(total * hp["warmup_fraction"]))
    return TriangleSchedule(hp["lr"], warmup, total, hp["lr_start_factor"], hp["lr_end_factor"])
''',
}

_DECOUPLED = """
    if hp.get("weight_decay"):
        # Decay only the conv/dense kernels: shrinking BN scales and biases hurts.
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer
"""

_GROUPED_ARGS = """learning_rate=learning_rate(hp, steps_per_epoch), momentum=hp["momentum"], l2=hp["weight_decay"],
        lr_multipliers={**hp["lr_multipliers"], "whiten/kernel": 0.0},  # the whitening stem never trains
        freeze_after={"whiten/bias": hp["whiten_bias_epochs"] * steps_per_epoch})
"""

MAKE_OPTIMIZER = {
    "adam": '''
def make_optimizer(hp, steps_per_epoch):
    """Adam, with decoupled weight decay (when the recipe has any) on the conv/dense kernels only."""
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate(hp, steps_per_epoch),
                                      weight_decay=hp.get("weight_decay") or None)'''
    + _DECOUPLED,
    "adamw": '''
def make_optimizer(hp, steps_per_epoch):
    """AdamW (the `adamw` switch): Adam with decoupled weight decay, weight_decay × the learning rate
    per step, on the conv/dense kernels only."""
    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate(hp, steps_per_epoch),
                                       weight_decay=hp["weight_decay"])'''
    + _DECOUPLED,
    "sgd_nesterov": '''
def make_optimizer(hp, steps_per_epoch):
    """SGD with Nesterov momentum and decoupled weight decay on the conv/dense kernels only."""
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate(hp, steps_per_epoch), momentum=hp["momentum"],
                                     nesterov=True, weight_decay=hp.get("weight_decay") or None)'''
    + _DECOUPLED,
    "sgd_nesterov_l2": '''
def make_optimizer(hp, steps_per_epoch):
    """airbench's Nesterov SGD: L2 through the momentum, BN biases at lr_multipliers, the stem frozen
    (its bias after whiten_bias_epochs)."""
    return GroupedSGD(
        '''
    + _GROUPED_ARGS,
    "muon": '''
def make_optimizer(hp, steps_per_epoch):
    """airbench94_muon's: Muon steps for the 3x3 conv kernels at muon_lr (moved by the same schedule),
    airbench's Nesterov SGD for the rest."""
    return MuonSGD(
        muon_lr_ratio=hp["muon_lr"] / hp["lr"], muon_momentum=hp["muon_momentum"],
        '''
    + _GROUPED_ARGS,
}

# cnn_core keeps its best epoch through its checkpoints (cnn_core.train.training), which the script lacks.
KEEP_BEST = '''
class KeepBest(keras.callbacks.Callback):
    """The weights of the epoch with the best validation accuracy, restored when training ends:
    cnn_core keeps (and serves) its best checkpoint on validation, not the last epoch."""

    def __init__(self):
        super().__init__()
        self.best, self.best_epoch, self.weights = -1.0, None, None

    def on_epoch_end(self, epoch, logs=None):
        accuracy = (logs or {}).get("val_accuracy")
        if accuracy is not None and accuracy > self.best:
            self.best, self.best_epoch, self.weights = accuracy, epoch + 1, self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)
            print(f"Kept epoch {self.best_epoch}: validation accuracy {self.best:.4f}")
'''

# make_callbacks' lines, per piece of the recipe, in the order fit() gets them.
MAKE_CALLBACKS = (
    (
        "lookahead",
        [
            (
                '    callbacks.append(Lookahead(hp["lookahead_every"], hp["lookahead_decay"], '
                'hp["lookahead_power"], steps_per_epoch * hp["epochs"]))'
            )
        ],
    ),
    ("alternating", ["    callbacks.append(flips)  # tells the pipeline which epoch it is"]),
    (
        "plateau",
        [
            "    callbacks.append(keras.callbacks.ReduceLROnPlateau(",
            '        monitor="val_loss", factor=hp["plateau_factor"], patience=hp["plateau_patience"],',
            '        min_lr=hp["min_lr"], verbose=1))',
        ],
    ),
    (
        "early_stopping",
        [
            (
                '    callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", '
                'patience=hp["early_stopping_patience"], verbose=1))'
            )
        ],
    ),
    ("validation", ["    callbacks.append(KeepBest())  # last: it sees each epoch as it ends"]),
)

# A compact cnn_core.predict.inference.predict_proba: the same TTA levels and weights, without its
# preprocessor, TTA-setting checks and LiteModel support, which the script has no use for.
EVALUATE = '''
# -- evaluate ------------------------------------------------------------------------------------

def predict(model, x, tta=0, chunk=2000, mirrorable=True):
    """Class probabilities for uint8 images, with the card's test-time augmentation: 1 averages
    each image with its mirror image; 2 adds both shifted one pixel up-left and down-right
    (reflect-padded), the shifted four weighing as much as the unshifted two. Pictures that are
    not `mirrorable` (digits) average one-pixel shifts instead (zero-padded): 1 the image and its
    four neighbours up, down, left and right; 2 all nine positions of its 3x3 neighbourhood."""
    def forward(images):
        return model.predict(images, batch_size=512, verbose=0)

    def shift_mean(images, level):
        height, width = images.shape[1:3]
        padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
        offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if level == 2 or dy * dx == 0]
        return np.mean([forward(np.ascontiguousarray(padded[:, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]))
                        for dy, dx in offsets], axis=0)

    def mirror_mean(images):
        return (forward(images) + forward(images[:, :, ::-1])) / 2.0

    outputs = []
    for start in range(0, len(x), chunk):
        images = x[start:start + chunk].astype("float32")
        if not tta:
            outputs.append(forward(images))
            continue
        if not mirrorable:
            outputs.append(shift_mean(images, int(tta)))
            continue
        unshifted = mirror_mean(images)
        if int(tta) == 2:
            height, width = images.shape[1:3]
            padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
            shifted = [mirror_mean(np.ascontiguousarray(padded[:, dy:dy + height, dx:dx + width]))
                       for dy, dx in ((0, 0), (2, 2))]
            unshifted = 0.5 * unshifted + 0.25 * (shifted[0] + shifted[1])
        outputs.append(unshifted)
    return np.concatenate(outputs)
'''

MAIN = """
# -- train, evaluate, save ----------------------------------------------------------------------

def parse_args(argv=None):
    hp = HYPERPARAMETERS
    parser = argparse.ArgumentParser(description=f"Train {MODEL_NAME} again from scratch (standalone Keras).")
    parser.add_argument("--epochs", type=int, default=hp["epochs"], help="epochs (default: the recipe's)")
    parser.add_argument("--subset", type=int, default=hp.get("subset"),
                        help="train on N random training images (default: all of them)")
    parser.add_argument("--test-size", type=int, help="evaluate on the first N test images (default: all)")
    parser.add_argument("--data-dir", help="folder with <dataset>.npz (default: download with keras.datasets)")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default=hp.get("precision", "fp32"),
                        help="bf16 is fast only on CPUs with AVX512-BF16/AMX (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=hp.get("seed", 0))
    parser.add_argument("--output", default=f"{MODEL_NAME}_retrained.keras", help="where to save the trained model")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    hp = {**HYPERPARAMETERS, "epochs": args.epochs, "subset": args.subset, "seed": args.seed}
    keras.utils.set_random_seed(hp["seed"])

    # Data: uint8 images; the network rescales them itself.
    (x_train, y_train), (x_test, y_test) = load_data(args.data_dir)
    (x_train, y_train), (x_val, y_val) = split_training(x_train, y_train, hp["val_size"], hp["subset"], hp["seed"])
    if args.test_size:
        x_test, y_test = x_test[:args.test_size], y_test[:args.test_size]
    print(f"{len(x_train):,} training, {len(x_val):,} validation and {len(x_test):,} test images")

    # Model
    precision = resolve_precision(args.precision)
    model = build_model(precision)
__INITIALISE__    print(f"{model.count_params():,} parameters in {precision} (the model card: {CARD_PARAMS:,})")

    # Train
    jit = jit_compiles(hp, precision)
    batch_size = hp["batch_size"]
    steps_per_epoch = len(x_train) // batch_size if jit else -(-len(x_train) // batch_size)
    if steps_per_epoch == 0:
        raise SystemExit(f"A compiled (XLA) run needs at least one full batch of {batch_size} images.")
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=hp.get("label_smoothing", 0.0))
    model.compile(optimizer=make_optimizer(hp, steps_per_epoch), loss=loss, metrics=["accuracy"], jit_compile=jit)
    flips = __FLIPS__
    train_ds = make_tf_dataset(x_train, y_train, DATASET_INFO, batch_size, hp["augment"], shuffle=True,
                               seed=hp["seed"], drop_remainder=jit, alternating_flip=flips,
                               mixup=hp.get("mixup", 0.0), cutmix=hp.get("cutmix", 0.0))
    val_ds = make_tf_dataset(x_val, y_val, DATASET_INFO, 512, None, shuffle=False, seed=0) if len(x_val) else None
    model.fit(train_ds, validation_data=val_ds, epochs=hp["epochs"],
              callbacks=make_callbacks(hp, steps_per_epoch, flips), verbose=2)

    # Evaluate
    tta = int(hp.get("tta") or 0)
    probabilities = predict(model, x_test, tta, mirrorable=MIRRORABLE)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == y_test))
    test_loss = float(np.mean(-np.log(np.clip(probabilities[np.arange(len(y_test)), y_test], 1e-12, 1.0))))
    print(f"Test accuracy {accuracy:.4f}, test loss {test_loss:.4f} on {len(x_test):,} images (TTA level {tta})")

    # Save the trained network for inference (uncompiled: no optimizer state, loads in plain Keras).
    trained = type(model).from_config(model.get_config())
    trained.set_weights(model.get_weights())
    trained.save(args.output)
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
"""

# Where the script departs from cnn_core's run, per piece it uses ("always": every script).
NOTES = (
    (
        "always",
        (
            "Data: the validation hold-out (the recipe's val_size) and --subset are seeded random draws in "
            "NumPy, where cnn_core draws them class-stratified with scikit-learn, and the shuffling and random "
            "augmentations draw other random numbers, so the run is the same recipe, not the same weights: "
            "expect the card's accuracy within run-to-run noise."
        ),
    ),
    (
        "always",
        (
            "Not reproduced: cnn_core's per-epoch checkpoints and --resume, its progress events and Stop, the "
            "out-of-distribution threshold, the model card and the per-class evaluation; the script prints the "
            "test accuracy and saves the trained network."
        ),
    ),
    (
        "validation",
        (
            "The best epoch on validation accuracy is kept by a small callback (KeepBest) and restored at the "
            "end, as cnn_core keeps its best checkpoint."
        ),
    ),
    (
        "whiten",
        (
            "Whitening stem: cnn_core's initialiser (patch_whitening_kernel, its NumPy code copied into the "
            "script); it whitens the first 5,000 images of this script's own training split, so its kernel "
            "differs slightly from the original run's."
        ),
    ),
    ("dirac", "Dirac init of the 3x3 convs: cnn_core's dirac_identity, copied into the script."),
    (
        "residual",
        (
            "Residual connections: written out in build_model as cnn_core builds them (each block's input "
            "saved as `shortcut`, widened by a bias-free 1x1 conv where the block changes the channel count, "
            "added back by an Add layer), layer for layer and name for name."
        ),
    ),
    (
        "separable",
        (
            "Depthwise-separable convolutions: keras.layers.SeparableConv2D for every 3x3 conv after the "
            "first, as cnn_core builds them; a separable conv gets no dirac init (as in cnn_core)."
        ),
    ),
    (
        "mixer",
        (
            "Mixup / CutMix: cnn_core's batch_mixer, copied into the script, mixes each training batch after the "
            "augmentation with Keras' MixUp / CutMix layers (with both on, one of the two per batch at even "
            "odds); its random draws differ from the original run's, as the augmentations' do."
        ),
    ),
    (
        "fused_bn",
        (
            "cnn_core's FusedBatchNorm (a registered custom layer: TensorFlow's fused kernel, whose running "
            "variance is Bessel-corrected) is replaced by the standard keras.layers.BatchNormalization: the same "
            "variables, a slightly different running variance."
        ),
    ),
    (
        "grouped",
        (
            "Optimizer: cnn_core's GroupedSGD (Nesterov SGD with L2 through the momentum, per-variable learning-"
            "rate multipliers, the whitening kernel frozen and its bias frozen after whiten_bias_epochs) has no "
            "standard Keras counterpart; its code (a subclass of keras.optimizers.SGD) is copied into the "
            "script."
        ),
    ),
    (
        "muon",
        (
            "Muon: cnn_core's MuonSGD is copied in too, borrowing keras.optimizers.Muon's Newton-Schulz "
            "iteration; keras.optimizers.Muon itself is not used, since it runs AdamW (not this SGD) on every "
            "weight that is not 2-D."
        ),
    ),
    (
        "triangle",
        (
            "Schedule: airbench's triangular learning rate, cnn_core's Keras LearningRateSchedule subclass "
            "(TriangleSchedule), is copied into the script; Keras has no standard one."
        ),
    ),
    ("lookahead", "Weight averaging: cnn_core's Lookahead callback, copied into the script."),
    (
        "alternating",
        (
            "Flips: airbench's alternating flip (each image mirrored every other epoch), cnn_core's callback "
            "and tf.data step, is copied into the script; Keras' RandomFlip would flip at random."
        ),
    ),
    (
        "bf16",
        (
            "Precision: the model was trained in mixed bfloat16 (Keras' mixed_bfloat16 policy, the script's "
            "default too). Without AVX512-BF16 or AMX the CPU emulates it about ten times slower: pass "
            "--precision fp32 there (the same network and recipe in float32)."
        ),
    ),
    (
        "auto_precision",
        (
            "Precision 'auto': bfloat16 where /proc/cpuinfo shows AVX512-BF16 or AMX and oneDNN is on, "
            "float32 elsewhere, as cnn_core decides (which also honours ONEDNN_MAX_CPU_ISA; the script "
            "does not)."
        ),
    ),
    (
        "jit_auto",
        (
            "XLA 'auto': the training step is compiled for float32 runs with oneDNN off, as cnn_core does; the "
            "script reads that from TF_ENABLE_ONEDNN_OPTS alone."
        ),
    ),
)
