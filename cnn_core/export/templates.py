"""The exported training script's text, apart from the code that fills it in (cnn_core.export.export).

Plain strings and `str.format` templates (`{placeholder}`; MAIN, whose f-strings hold braces, takes
`__INITIALISE__` and `__FLIPS__` instead), in the order the script reads, then the zip's README.txt
and the NOTES both of them list. No logic here: what is filled in, and which pieces a card's script
gets, is export.py's. What cnn_core has, the script takes from cnn_core's own source
(`cnn_core.export.export.cnn_core_source`), not from here; the network's layers come from
`cnn_core.nets.spec_walk`, the walk `build_model` builds from.
"""

# -- the script's docstring and its head -----------------------------------------------------------

# Filled by export._docstring: `switches` is the wrapped "Recipe switches on" lines and a blank line (or
# nothing), `notes` the wrapped NOTES that apply.
SCRIPT_DOCSTRING = '''"""Train `{name}` again from scratch: {arch} network, {recipe} recipe, {dataset}.

Exported by CNN Studio (cnn_core) from the model card of `{name}`{accuracy}.
A standalone script: Keras 3, TensorFlow, NumPy and the standard library, no cnn_core.
It reads top-down: hyperparameters → data → model → train → evaluate → save.

{switches}    python {script}                      # the whole recipe ({epochs} epochs)
    python {script} --epochs 1 --subset 1024 --data-dir DIR   # a quick check

--data-dir is a folder of <dataset>.npz files (keys x_train y_train x_test y_test, uint8);
without it keras.datasets downloads the data.

Where this script departs from how cnn_core trained the model:
{notes}
"""'''

ACCURACY = " (test accuracy {accuracy:.2%})"

SWITCHES_ON = "Recipe switches on (the original notebook's improvements to try): {switches}."

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

HYPERPARAMETERS = """
# Every hyperparameter of the run, as its model card recorded them (one dict, airbench style).
HYPERPARAMETERS = {{
{items}
}}
"""

CONSTANTS = """
MODEL_NAME = {name}
DATASET = {dataset}
CLASS_NAMES = {class_names}
INPUT_SHAPE = {input_shape}
MIRRORABLE = {mirrorable}  # a mirror image shows the same class (not so for digits)
CARD_PARAMS = {params}  # the parameter count on the model card
DIRAC_CONVS = {dirac}  # convs that start as partial identities (dirac)
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

# With the recipe's architecture switches on, BUILD_MODEL_HEAD's `switched` is SWITCHED, naming them.
SWITCHED = "\n    With {switched}, as the recipe's switches ask."
SWITCHED_WORDS = {"residual": "residual connections", "separable": "depthwise-separable convolutions"}

# The network's own lines (written out from cnn_core.nets.spec_walk's walk) come between head and tail.
BUILD_MODEL_TAIL = """
    model = keras.Model(inputs, x, name={name})
    keras.mixed_precision.set_global_policy("float32")  # the rest (augmentation, saving) in float32
    return model
"""

# The comments among the network's lines: a fused batch norm (cnn_core.base.layers.FusedBatchNorm computes
# the same normalisation faster; plain Keras has only BatchNormalization), a residual block's start and end.
FUSED_BN = "    # cnn_core trains this as its FusedBatchNorm: the same normalisation through TensorFlow's fused kernel."
RESIDUAL_START = ("    # residual block: its convs learn a change added to their input", "    shortcut = x")
RESIDUAL_END = "    # end of the residual block: its input added back"
RESIDUAL_WIDEN = "    # {before} -> {after} channels: a 1x1 conv widens the input to match"

INIT_HEAD = """
# -- weights set before training: airbench's two initialisations, cnn_core's (not in Keras) --------
"""

# Not cnn_core's initialise_from_data, which finds the convs from the architecture's spec
# (cnn_core.nets.models); the script knows them by name (DIRAC_CONVS). Filled with INITIALISE_DOC and,
# for a network with a whitening stem, INITIALISE_STEM.
INITIALISE = '''
def initialise(model, x_train):
    """{doc}"""
    for name in DIRAC_CONVS:
        layer = model.get_layer(name)
        kernel, *rest = layer.get_weights()
        layer.set_weights([dirac_identity(kernel), *rest])
{stem}'''

INITIALISE_DOC = {
    "dirac": "Dirac on the DIRAC_CONVS.",
    "whiten": """Dirac on the DIRAC_CONVS; the stem ("whiten", never trained) whitens the patches of the
    first WHITEN_IMAGES training images as the rescaling layer gives them.""",
}

INITIALISE_STEM = """    stem = model.get_layer("whiten")
    rescaled = ops.convert_to_numpy(model.get_layer("rescale1")(x_train[:WHITEN_IMAGES].astype("float32")))
    stem.set_weights([patch_whitening_kernel(rescaled, stem.kernel_size[0], stem.filters),
                      np.zeros(stem.filters, np.float32)])
"""

RECIPE_HEAD = """
# -- training recipe -----------------------------------------------------------------------------
"""

# cnn_core.train.optimizer's learning_rate and make_optimizer, one branch per recipe: theirs choose at run
# time among all of them; the script carries its recipe's branch only (and names no class it lacks).
LEARNING_RATE = {
    "plateau": RECIPE_HEAD
    + '''
def learning_rate(hp, steps_per_epoch):
    """A constant start; ReduceLROnPlateau (see make_callbacks) lowers it when validation stalls."""
    return hp["lr"]
''',
    "onecycle": RECIPE_HEAD
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
    "cosine": RECIPE_HEAD
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

MAKE_CALLBACKS_HEAD = '''
def make_callbacks(hp, steps_per_epoch, flips=None):
    """fit()'s callbacks, as cnn_core's trainer sets them up for this recipe."""
    callbacks = []
'''
MAKE_CALLBACKS_TAIL = "    return callbacks"

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

# MAIN's placeholders: the inits where the network has any, the flip schedule's callback where it alternates.
MAIN_INITIALISE = "    initialise(model, x_train)  # airbench's inits, before training\n"
MAIN_FLIPS = 'AlternatingFlip(len(x_train), hp["seed"])'

# -- the README ------------------------------------------------------------------------------------

# Filled by export.readme_text: `files` is README_FILES, each wrapped under its name; `switches` as in
# SCRIPT_DOCSTRING; `notes` the NOTES that apply.
README = """{name}: a {dataset} classifier exported by CNN Studio

{files}

Trained with: {made_with}.

{switches}Run the whole recipe:   python {script}
A one-epoch check:      python {script} --epochs 1 --subset 1024 --data-dir DIR
DIR holds <dataset>.npz with keys x_train y_train x_test y_test (uint8); without --data-dir the
data comes from keras.datasets. `--help` lists every option.

Where the script departs from how cnn_core trained the model:
{notes}
"""

README_FILES = (
    (
        "{name}.keras",
        (
            "the trained network (keras.saving.load_model); input: raw pixels 0..255 as float32, "
            "shaped (N, {shape}); output: class probabilities."
        ),
    ),
    ("{name}.json", "its model card: hyperparameters, history, accuracy, machine, library versions."),
    (
        "{script}",
        (
            "a standalone script (Keras, TensorFlow, NumPy; no cnn_core) that builds the same network, "
            "trains it with the same recipe, evaluates it and saves it."
        ),
    ),
)

README_NO_VERSIONS = "see the card"

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


# -- a taught classifier's script (cnn_core.export.lesson) ------------------------------------------------------

LESSON_DOC = '''
"""Teach `{backbone}` the classes of `{name}` again from your pictures: a standalone Keras script.

Written by CNN Studio (cnn_core) for the classes {classes}. It needs no cnn_core: TensorFlow/Keras, NumPy
and Pillow{scipy}. It rebuilds the shipped `{backbone}` network ({dataset}) layer for layer, loads its
weights from backbone.weights.npz (beside this script in the zip), prepares each picture as the studio does,
makes {views} views of each with the backbone's training augmentation, reads the frozen network's features
(every stage's channel means and its last hidden layer) and trains the head with the studio's recipe
(RECIPE, the same function cnn_core runs), then saves the whole network as a .keras file.

    python {script} PICTURES [--output taught.keras]

PICTURES: a folder with one sub-folder of pictures per class (unzip the Teach page's picture download).
Not redone here: the studio's held-out estimate and its "none of these classes" detector.
"""
'''

LESSON_IMPORTS = """
from PIL import Image, ImageOps  # noqa: E402
"""
LESSON_IMPORTS_DIGITS = """
from scipy import ndimage  # noqa: E402
"""

LESSON_CONSTANTS = """
LESSON_CLASSES = {classes}  # the order the taught network answers in
VIEWS = {views}  # per picture: itself and augmented copies
AUGMENT = {augment}  # the backbone's training augmentation
RECIPE = {recipe}
"""

LESSON_MAIN = '''
# -- the lesson ----------------------------------------------------------------------------------

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
PREPARE = __PREPARE__  # a picture → the uint8 sample the backbone sees (cnn_core.data.preprocess, above)


def read_pictures(folder):
    """(uint8 samples, labels, class names) from one sub-folder per class: LESSON_CLASSES' order where the
    folders are those classes, else the folders' names in sorted order."""
    found = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith((".", "__MACOSX")))
    classes = LESSON_CLASSES if sorted(LESSON_CLASSES) == found else found
    samples, labels = [], []
    for label, name in enumerate(classes):
        for entry in sorted(os.scandir(os.path.join(folder, name)), key=lambda e: e.name):
            if entry.name.lower().endswith(PICTURE_SUFFIXES) and not entry.name.startswith("."):
                with Image.open(entry.path) as img:
                    img = ImageOps.exif_transpose(img)
                    img.load()
                samples.append(PREPARE(img))
                labels.append(label)
    return np.stack(samples), np.asarray(labels), list(classes)


def augmented_views(samples):
    """float32 (VIEWS, N, H, W, C): the samples themselves, then copies through the backbone's augmentation."""
    x = samples.astype("float32")
    x = x[..., None] if x.ndim == 3 else x
    augmenter = build_augmenter(AUGMENT, seed=RECIPE["seed"])
    copies = [x] + [x if augmenter is None else ops.convert_to_numpy(augmenter(x, training=True))
                    for _ in range(VIEWS - 1)]
    return np.stack(copies)


def parse_args():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("pictures", help="a folder with one sub-folder of pictures per class")
    parser.add_argument("--output", default="taught.keras", help="where to save the taught network")
    parser.add_argument("--weights", default=os.path.join(here, "backbone.weights.npz"))
    return parser.parse_args()


def main():
    args = parse_args()
    backbone = build_model()
    with np.load(args.weights) as saved:
        backbone.set_weights([saved[f"w{i}"] for i in range(len(saved.files))])
    backbone.trainable = False
    samples, labels, classes = read_pictures(args.pictures)
    views = augmented_views(samples)
    features = features_model(backbone)
    f = np.asarray(features.predict(views.reshape(-1, *views.shape[2:]), batch_size=128, verbose=0), np.float32)
    norm, dense = fit_head(f, np.tile(labels, VIEWS), len(classes), RECIPE)
    probabilities = layers.Softmax(name="probabilities")(dense(norm(features.output)))
    model = keras.Model(backbone.inputs, probabilities, name="taught")
    right = model.predict(views[0], verbose=0).argmax(axis=1) == labels
    print(f"{len(classes)} classes ({', '.join(classes)}), {len(labels)} pictures; right on them: {right.mean():.1%}")
    model.save(args.output)
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
'''
