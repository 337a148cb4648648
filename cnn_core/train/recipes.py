"""Training recipes: every hyperparameter of a run in one dict per recipe (airbench style).

A recipe is named after the architecture it trains: `seed` is the original notebook's
recipe, `fast` the project's time-to-accuracy recipe, `turbo` its shortest schedules,
`wide` the same recipe run long for accuracy, `airbench` the CIFAR-10 speed record's method.
A value that differs per dataset is a `{dataset: value}` dict. One key decides one thing; the trainer reads nothing else.

The small API the Train page, the CLI and the benchmarks share:

    recipe_names()                       the recipes, in the order the app lists them
    default_config("cifar10", "fast")    one run's flat, JSON-able hyperparameters
    resolve_config(dataset, recipe, epochs=3, ...)   the same with the user's overrides
    validate_config(config)              the one check of every value (a ConfigError)
    augment_choices("cifar10")           what each augmentation is when switched on
    lr_is_peak(config)                   whether `lr` is the top of a warm-up/decay schedule
    lr_for_batch(config, 256)            the recipe's lr for another batch size

The model card records the resolved dict verbatim (`hyperparameters`).
"""

from __future__ import annotations

import copy
import math

from cnn_core.base.errors import ConfigError
from cnn_core.data.datasets import DATASETS, dataset_info
from cnn_core.nets.models import ARCHITECTURES
from cnn_core.nets.precision import PRECISIONS
from cnn_core.predict.inference import tta_level
from cnn_core.train.switches import SWITCHED_OFF, SWITCHES, apply_switches

# sgd_nesterov_l2: PyTorch's SGD as airbench uses it (cnn_core.train.optimizer.GroupedSGD): weight
# decay through the momentum, per-variable lr multipliers, a frozen whitening stem.
# muon: airbench94_muon's (cnn_core.train.optimizer.MuonSGD): Muon steps for the 3×3 conv kernels at
# `muon_lr` with `muon_momentum`, sgd_nesterov_l2 for everything else.
# adamw: Adam with decoupled weight decay (the `adamw` switch, cnn_core.train.switches).
OPTIMIZERS = ("adam", "adamw", "sgd_nesterov", "sgd_nesterov_l2", "muon")
# plateau:  constant lr, halved by ReduceLROnPlateau when validation loss stalls.
# onecycle: per batch, linear warm-up from lr/10 to lr over `warmup_fraction` of the run,
#           then cosine decay to 0 at the last batch.
# triangle: per batch, linear from lr·lr_start_factor up to lr at `warmup_fraction` of the
#           run, then linear down to lr·lr_end_factor at the last batch (airbench).
# cosine:   per batch, half a cosine from lr down to 0 at the last batch (the `cosine` switch).
SCHEDULES = ("plateau", "onecycle", "triangle", "cosine")
AUGMENT_KEYS = ("rotation", "shift", "zoom", "flip")
NO_AUGMENT = {"rotation": 0.0, "shift": 0.0, "zoom": 0.0, "flip": False}
# The fast recipes' cheap, label-safe augmentation: a reflect-padded random shift of up to
# 2 px on 28 px digits, 4 px on 32 px photos, and flips for photos.
SHIFT_AND_FLIP = {
    "mnist": {"rotation": 0.0, "shift": 2 / 28, "zoom": 0.0, "flip": False},
    "fashion_mnist": {"rotation": 0.0, "shift": 2 / 28, "zoom": 0.0, "flip": True},
    "cifar10": {"rotation": 0.0, "shift": 4 / 32, "zoom": 0.0, "flip": True},
}

# airbench94 (Keller Jordan's CIFAR-10 speed record, the peer of benchmarks/time_to_accuracy)
# rebuilt in Keras on the `airbench` net. Its hyperparameters are set per 1024 examples of a
# summed loss; here they are converted for Keras' mean loss at batch 1024:
# lr = 11.5 / (1024·(1 + 1/(1 − 0.85))) · 1024 ≈ 1.5, and the L2 coefficient
# = 0.0153·1024/7850.67 / 1.5 ≈ 0.00133, so each step shrinks every weight by
# 0.2% × the schedule's factor, as there.
AIRBENCH_SGD = {
    "optimizer": "sgd_nesterov_l2",
    # The schedule's peak, for BN-free weights: 1.5 per 1024 images of a batch (airbench's
    # decoupled lr); digits take batches of 256, and one unaugmented epoch (more steps per image).
    "lr": {"mnist": 0.375, "fashion_mnist": 1.5, "cifar10": 1.5},
    "momentum": 0.85,
    "batch_size": {"mnist": 256, "fashion_mnist": 1024, "cifar10": 1024},
    # Another batch size keeps the step per example: lr × batch / the batch above (airbench's
    # summed loss does this by itself; a capped server runs these recipes at 256).
    "lr_scales_with_batch": True,
    "epochs": {"mnist": 1, "fashion_mnist": 10, "cifar10": 10},  # airbench94 runs 9.9
    "schedule": "triangle",
    "warmup_fraction": 0.23,  # the peak's place in the run
    "lr_start_factor": 0.2,
    "lr_end_factor": 0.07,
    "early_stopping_patience": 0,
    "label_smoothing": 0.2,
    "weight_decay": 0.0013305,  # L2, through the momentum (see above)
    "lr_multipliers": {"beta": 64.0},  # BN biases learn 64× faster (airbench's bias_scaler)
    "whiten_bias_epochs": 3,  # the whitening stem's bias trains this many epochs, then freezes
    "lookahead_every": 5,  # steps between weight averages (0: off; cnn_core.train.callbacks.Lookahead)
    "lookahead_decay": 0.95**5,  # the average's memory at the end of the run ...
    "lookahead_power": 3,  # ... reached as (step/total)^power
    "augment": {
        **SHIFT_AND_FLIP,
        "mnist": NO_AUGMENT,
        "cifar10": {"rotation": 0.0, "shift": 2 / 32, "zoom": 0.0, "flip": True},
    },
    "flip_schedule": "alternating",  # each image mirrored every other epoch (cnn_core.data.augment.AlternatingFlip)
    "val_size": 0,  # as the peer: every training image (ship with --val-size)
    # airbench's multi-crop TTA for photos: the image, its mirror and their 1-px shifts (6 passes).
    "tta": {"mnist": 0, "fashion_mnist": 2, "cifar10": 2},
    "precision": {"mnist": "fp32", "fashion_mnist": "fp32", "cifar10": "auto"},
    # XLA for float32 photo runs without oneDNN (cnn_core.train.optimizer.jit_compiles; it drops the last
    # partial batch); off for digits, whose one short epoch takes longer with XLA's compiling than without.
    "jit_compile": {"mnist": False, "fashion_mnist": "auto", "cifar10": "auto"},
}


def _for_dataset(value, dataset: str):
    return value[dataset] if isinstance(value, dict) and set(value) == set(DATASETS) else value


def _with_values_for(dataset: str, base: dict, values: dict) -> dict:
    """`base` with `values` in force for `dataset` only (a key `base` lacks is left out of
    the other datasets' configs)."""
    return {
        **base,
        **{
            key: {name: value if name == dataset else _for_dataset(base.get(key), name) for name in DATASETS}
            for key, value in values.items()
        },
    }


# CIFAR-10 with airbench94's successor, airbench94_muon (94.01% after 8 epochs of batches of
# 2000, where airbench94 needs 9.9 of 1024): Muon steps for the 3×3 conv kernels
# (cnn_core.train.optimizer.MuonSGD), a straight decay from the peak to 0, no weight averaging.
# Its summed-loss SGD values, converted for Keras' mean loss at batch 2000:
# the classifier's lr 0.67·2000·(9/256)² ≈ 1.656 (its logits are divided by its width, 256,
# ours by 9, and its head starts at unit spread); the BN biases' 0.053·2000 = 106 = 64 × that,
# airbench's bias multiplier again; decay 2e-6·2000 per step (÷ lr for the L2 coefficient).
MUON_CIFAR10 = {
    "optimizer": "muon",
    "lr": 1.656,
    "muon_lr": 0.24,  # a Muon step's size, whatever the gradient's scale
    "muon_momentum": 0.6,
    "batch_size": 2000,
    "epochs": 10,  # 8 in airbench94_muon; the CPU peer's 9.9-epoch time fits 10 here
    "warmup_fraction": 0.0,
    "lr_start_factor": 1.0,
    "lr_end_factor": 0.0,
    "weight_decay": 0.004 / 1.656,
    "lookahead_every": 0,
}
AIRBENCH = _with_values_for("cifar10", AIRBENCH_SGD, MUON_CIFAR10)

# The Train page's first choice: the airbench method on the narrower `quick` nets and the
# shortest schedules: MNIST in one epoch of batches of 512, CIFAR-10 in 3 epochs.
QUICK = {
    **AIRBENCH_SGD,
    "lr": {"mnist": 0.75, "fashion_mnist": 0.75, "cifar10": 1.5},
    "batch_size": {"mnist": 512, "fashion_mnist": 512, "cifar10": 1024},
    "epochs": {"mnist": 1, "fashion_mnist": 3, "cifar10": 3},
    # As measured for the Train page's labels: random flips, flip TTA (2 passes, not 6).
    "flip_schedule": "random",
    "tta": {"mnist": False, "fashion_mnist": True, "cifar10": True},
}


FLIP_SCHEDULES = ("random", "alternating")  # see cnn_core.data.augment.AlternatingFlip

FIRST_RECIPE = "quick"  # what the Train page offers first: a good model soonest

RECIPES: dict[str, dict] = {
    # The original notebook: Adam, plateau halving, early stopping, heavy augmentation.
    "seed": {
        "optimizer": "adam",
        "lr": 1e-3,  # constant until the plateau rule halves it
        "batch_size": {"mnist": 128, "fashion_mnist": 128, "cifar10": 64},  # images per step
        "epochs": 30,  # at most; early stopping may end sooner
        "schedule": "plateau",
        "plateau_factor": 0.5,  # lr × this when validation loss stalls ...
        "plateau_patience": 3,  # ... for this many epochs
        "min_lr": 1e-6,  # the plateau rule's floor
        "early_stopping_patience": 8,  # epochs without a better validation accuracy (0: off)
        "label_smoothing": 0.0,  # share of the target spread over all classes
        "weight_decay": 0.0,  # decoupled, applied by the optimizer
        "augment": {  # degrees; fractions of the image size; mirror left/right
            # Flip for photos only: a mirrored 2 is not a 2 (Fashion-MNIST items are
            # left/right symmetric enough to flip).
            "mnist": {"rotation": 10.0, "shift": 0.1, "zoom": 0.1, "flip": False},
            "fashion_mnist": {"rotation": 10.0, "shift": 0.1, "zoom": 0.1, "flip": True},
            "cifar10": {"rotation": 15.0, "shift": 0.1, "zoom": 0.1, "flip": True},
        },
        "val_size": 5000,  # training images held out for the plateau/early-stop decisions
        "tta": False,  # average the prediction with its mirror image
        "precision": "fp32",  # the original's float32 throughout
    },
    # The project's time-to-accuracy recipe: SGD with Nesterov momentum on a one-cycle
    # schedule, label smoothing and only cheap, label-safe augmentation.
    "fast": {
        "optimizer": "sgd_nesterov",
        "lr": 0.2,  # the schedule's peak
        "momentum": 0.9,
        "batch_size": 256,
        "epochs": {"mnist": 3, "fashion_mnist": 8, "cifar10": 12},  # exactly; the schedule spans them
        "schedule": "onecycle",
        "warmup_fraction": 0.2,  # share of all batches spent warming up
        "early_stopping_patience": 0,  # a fixed schedule makes no decisions on validation
        "label_smoothing": 0.2,
        "weight_decay": 5e-4,  # conv/dense kernels only (not BN scales or biases)
        "augment": SHIFT_AND_FLIP,
        "val_size": 5000,
        "tta": {"mnist": False, "fashion_mnist": True, "cifar10": True},  # flip TTA for photos
        "precision": "fp32",  # 'auto' | 'bf16' | 'fp32' (cnn_core.nets.precision)
    },
    # The `fast` recipe cut to the shortest schedules that reach the benchmark targets
    # (MNIST 99.0%, CIFAR-10 85%: benchmarks/results/time_to_accuracy.md), on the whole training set.
    # MNIST: one epoch in batches of 64 without augmentation, chosen on a validation split over
    # three seeds against batches of 128 with and without shifts: smaller batches give the single
    # pass more updates, and a single pass cannot overfit, so shifting the digits only slows learning.
    "turbo": {
        "optimizer": "sgd_nesterov",
        "lr": 0.2,
        "momentum": 0.9,
        "batch_size": {"mnist": 64, "fashion_mnist": 256, "cifar10": 256},
        "epochs": {"mnist": 1, "fashion_mnist": 6, "cifar10": 8},
        "schedule": "onecycle",
        "warmup_fraction": 0.2,
        "early_stopping_patience": 0,
        "label_smoothing": 0.2,
        "weight_decay": 5e-4,
        "augment": {**SHIFT_AND_FLIP, "mnist": NO_AUGMENT},
        "val_size": 0,  # nothing held out: no decisions need it
        "tta": {"mnist": False, "fashion_mnist": True, "cifar10": True},
        # bfloat16 for the photo net where the CPU does it natively (≈2× the images/s there,
        # benchmarks/results/time_to_accuracy.md), float32 elsewhere; the digit nets are too small
        # for bf16 to pay off.
        "precision": {"mnist": "fp32", "fashion_mnist": "fp32", "cifar10": "auto"},
    },
    # The `fast` recipe run long on the `wide` net, for accuracy rather than speed. A
    # one-cycle schedule pays its accuracy only at its end, so it is planned for the whole
    # budget (40 CIFAR-10 epochs; their training time: benchmarks/results/time_to_accuracy.md).
    "wide": {
        "optimizer": "sgd_nesterov",
        "lr": 0.2,
        "momentum": 0.9,
        "batch_size": 256,
        "epochs": {"mnist": 15, "fashion_mnist": 20, "cifar10": 40},
        "schedule": "onecycle",
        "warmup_fraction": 0.2,
        "early_stopping_patience": 0,
        "label_smoothing": 0.2,
        "weight_decay": 5e-4,
        "augment": SHIFT_AND_FLIP,
        "val_size": 5000,
        "tta": {"mnist": False, "fashion_mnist": True, "cifar10": True},
        "precision": {"mnist": "fp32", "fashion_mnist": "fp32", "cifar10": "auto"},
    },
    "airbench": AIRBENCH,
    "quick": QUICK,
}


def recipe_names() -> tuple[str, ...]:
    return tuple(RECIPES)


def default_config(dataset: str, recipe: str = "seed") -> dict:
    """One run's hyperparameters as the recipe gives them for `dataset`."""
    return resolve_config(dataset, recipe)


def resolve_config(dataset: str, arch: str = "seed", **overrides) -> dict:
    """The full hyperparameter dict for one run, validated. `None` overrides are ignored.

    Recognised overrides: any recipe key (epochs, batch_size, lr, val_size, tta, precision,
    ...), subset, seed, name, `augment` (a partial {transform: value} dict),
    `no_augment` (every transform off) and `switches` (names from cnn_core.train.switches, applied to
    the recipe before the other overrides)."""
    dataset_info(dataset)  # raises DataError for unknown names
    if arch not in RECIPES or arch not in ARCHITECTURES:
        raise ConfigError(f"Unknown architecture '{arch}'. Choose one of: {', '.join(ARCHITECTURES)}.")
    config = {key: copy.deepcopy(_for_dataset(value, dataset)) for key, value in RECIPES[arch].items()}
    config = {key: value for key, value in config.items() if value is not None}
    config.update(dataset=dataset, arch=arch, recipe=arch, subset=None, seed=0)
    config = apply_switches(config, overrides.pop("switches", None))
    augment_override = overrides.pop("augment", None) or {}
    if overrides.pop("no_augment", False):
        config["augment"] = dict(NO_AUGMENT)
    recipe_batch = config["batch_size"]
    config.update({key: value for key, value in overrides.items() if value is not None})
    for key in ("lr", "muon_lr"):  # the recipe's lrs, for this batch size
        if key in config and overrides.get(key) is None and _is_whole(config["batch_size"], 1):
            config[key] = lr_for_batch(config, config["batch_size"], recipe_batch, key)
    config["augment"].update({key: value for key, value in augment_override.items() if value is not None})
    validate_config(config)
    return config


def augment_choices(dataset: str) -> dict:
    """The strength each augmentation takes when it is switched on for `dataset`: the
    original recipe's, which has every transform."""
    return default_config(dataset, "seed")["augment"]


def lr_is_peak(config: dict) -> bool:
    """True when `lr` is the top of a warm-up/decay schedule rather than a starting value."""
    return config["schedule"] in ("onecycle", "triangle")


def lr_for_batch(config: dict, batch_size: int, recipe_batch: int | None = None, key: str = "lr") -> float:
    """`config`'s lr (set for batches of `recipe_batch`, by default its own batch size) for batches
    of `batch_size`: scaled in proportion where the recipe says so (`lr_scales_with_batch`, the
    airbench method's per-example lr), else unchanged (Adam's, for one, does not scale).
    `key="muon_lr"` does the same for Muon's: its steps have a set size, so more of them per
    epoch need each to be smaller (airbench94_muon halves it for half the batch)."""
    recipe_batch = recipe_batch or config["batch_size"]
    if not config.get("lr_scales_with_batch") or batch_size == recipe_batch:
        return config[key]
    return config[key] * batch_size / recipe_batch


def _is_whole(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def validate_config(config: dict) -> None:
    """Every recipe value checked, each mistake told in one sentence (a ConfigError)."""
    _need(_is_whole(config["epochs"], 1), f"Epochs must be a whole number ≥ 1 (got {config['epochs']}).")
    _need(_is_whole(config["batch_size"], 1), f"Batch size must be a whole number ≥ 1 (got {config['batch_size']}).")
    _need(_is_number(config["lr"]) and config["lr"] > 0, f"Learning rate must be greater than 0 (got {config['lr']}).")
    _need(config["lr"] <= 10, f"Learning rate {config['lr']} is far too large (use ≤ 10).")
    _need(
        config["subset"] is None or _is_whole(config["subset"], 10),
        f"Subset must be at least 10 images (got {config['subset']}).",
    )
    _need(_is_whole(config["val_size"], 0), f"Validation size must be a whole number ≥ 0 (got {config['val_size']}).")
    _need(_is_whole(config["seed"], 0), f"Seed must be a whole number ≥ 0 (got {config['seed']}).")
    _need(
        config.get("precision", "fp32") in PRECISIONS,
        f"Precision must be one of {', '.join(PRECISIONS)} (got {config.get('precision')}).",
    )
    tta_level(config.get("tta"))  # raises its own ConfigError
    _validate_switches(config)
    _validate_optimizer(config)
    _validate_augment(config["augment"])


def _validate_optimizer(config: dict) -> None:
    _need(
        config["optimizer"] in OPTIMIZERS,
        f"Optimizer must be one of {', '.join(OPTIMIZERS)} (got {config['optimizer']}).",
    )
    _need(
        config["schedule"] in SCHEDULES, f"Schedule must be one of {', '.join(SCHEDULES)} (got {config['schedule']})."
    )
    _need(
        _is_number(config.get("label_smoothing", 0.0)) and 0 <= config.get("label_smoothing", 0.0) < 1,
        f"Label smoothing must be between 0 and 1 (got {config.get('label_smoothing')}).",
    )
    _need(
        _is_number(config.get("weight_decay", 0.0)) and 0 <= config.get("weight_decay", 0.0) < 1,
        f"Weight decay must be between 0 and 1 (got {config.get('weight_decay')}).",
    )
    _need(
        _is_whole(config.get("early_stopping_patience", 0), 0),
        f"Early-stopping patience must be a whole number ≥ 0 (got {config.get('early_stopping_patience')}).",
    )
    if config["optimizer"] in ("sgd_nesterov", "sgd_nesterov_l2", "muon"):
        _need(
            _is_number(config.get("momentum")) and 0 <= config["momentum"] < 1,
            f"Momentum must be between 0 and 1 (got {config.get('momentum')}).",
        )
    _validate_airbench_keys(config)
    if config["schedule"] in ("onecycle", "triangle"):
        _need(
            _is_number(config.get("warmup_fraction")) and 0 <= config["warmup_fraction"] < 1,
            f"The warm-up fraction must be between 0 and 1 (got {config.get('warmup_fraction')}).",
        )
    if config["schedule"] == "triangle":
        for key in ("lr_start_factor", "lr_end_factor"):
            _need(
                _is_number(config.get(key)) and 0 <= config[key] <= 1,
                f"The schedule's {key.replace('_', ' ')} must be between 0 and 1 (got {config.get(key)}).",
            )
    if config["schedule"] == "plateau":
        _need(
            _is_number(config.get("plateau_factor")) and 0 < config["plateau_factor"] < 1,
            f"The plateau factor must be between 0 and 1 (got {config.get('plateau_factor')}).",
        )
        _need(
            _is_whole(config.get("plateau_patience"), 1),
            f"The plateau patience must be a whole number ≥ 1 (got {config.get('plateau_patience')}).",
        )
        _need(
            _is_number(config.get("min_lr")) and 0 <= config["min_lr"] <= config["lr"],
            f"The smallest learning rate must be between 0 and the learning rate (got {config.get('min_lr')}).",
        )


def _validate_switches(config: dict) -> None:
    """The keys cnn_core.train.switches sets (absent from configs saved before they existed: off)."""
    switches = config.get("switches", [])
    _need(
        isinstance(switches, list) and all(name in SWITCHES for name in switches),
        f"switches must be a list of {', '.join(SWITCHES)} (got {switches}).",
    )
    for key in ("residual", "separable"):
        _need(
            config.get(key, SWITCHED_OFF[key]) in (True, False), f"{key} must be true or false (got {config.get(key)})."
        )
    for key in ("mixup", "cutmix"):
        value = config.get(key, SWITCHED_OFF[key])
        _need(
            _is_number(value) and 0 <= value <= 10,
            f"The {key} strength (its Beta distribution's α) must be between 0 (off) and 10 (got {value}).",
        )


def _validate_airbench_keys(config: dict) -> None:
    """The keys only airbench's method uses: lr multipliers, the stem's bias, weight averaging."""
    if config["optimizer"] == "muon":
        _need(
            _is_number(config.get("muon_lr")) and 0 < config["muon_lr"] <= 10,
            f"muon_lr must be between 0 and 10 (got {config.get('muon_lr')}).",
        )
        _need(
            _is_number(config.get("muon_momentum")) and 0 <= config["muon_momentum"] < 1,
            f"muon_momentum must be between 0 and 1 (got {config.get('muon_momentum')}).",
        )
    if config["optimizer"] in ("sgd_nesterov_l2", "muon"):
        multipliers = config.get("lr_multipliers")
        _need(
            isinstance(multipliers, dict)
            and all(isinstance(k, str) and _is_number(v) and v >= 0 for k, v in multipliers.items()),
            f"lr_multipliers must map variable names to numbers ≥ 0 (got {multipliers}).",
        )
        _need(
            _is_whole(config.get("whiten_bias_epochs"), 0),
            f"whiten_bias_epochs must be a whole number ≥ 0 (got {config.get('whiten_bias_epochs')}).",
        )
    _need(
        config.get("flip_schedule", "random") in FLIP_SCHEDULES,
        f"flip_schedule must be one of {', '.join(FLIP_SCHEDULES)} (got {config.get('flip_schedule')}).",
    )
    _need(
        config.get("lr_scales_with_batch", False) in (True, False),
        f"lr_scales_with_batch must be true or false (got {config.get('lr_scales_with_batch')}).",
    )
    _need(
        config.get("jit_compile", False) in (True, False, "auto"),
        f"jit_compile must be true, false or 'auto' (got {config.get('jit_compile')}).",
    )
    _need(
        _is_whole(config.get("lookahead_every", 0), 0),
        f"lookahead_every must be a whole number of steps ≥ 0 (got {config.get('lookahead_every')}).",
    )
    if config.get("lookahead_every"):
        _need(
            _is_number(config.get("lookahead_decay")) and 0 <= config["lookahead_decay"] < 1,
            f"lookahead_decay must be between 0 and 1 (got {config.get('lookahead_decay')}).",
        )
        _need(
            _is_number(config.get("lookahead_power")) and config["lookahead_power"] >= 0,
            f"lookahead_power must be ≥ 0 (got {config.get('lookahead_power')}).",
        )


def _validate_augment(augment: dict) -> None:
    _need(
        isinstance(augment, dict) and set(augment) == set(AUGMENT_KEYS),
        f"Augmentation needs exactly the keys {', '.join(AUGMENT_KEYS)}.",
    )
    _need(
        _is_number(augment["rotation"]) and 0 <= augment["rotation"] <= 180,
        f"Rotation must be between 0 and 180 degrees (got {augment['rotation']}).",
    )
    _need(
        _is_number(augment["shift"]) and 0 <= augment["shift"] < 1,
        f"Shift must be a fraction between 0 and 1 (got {augment['shift']}).",
    )
    _need(
        _is_number(augment["zoom"]) and 0 <= augment["zoom"] < 1,
        f"Zoom must be a fraction between 0 and 1 (got {augment['zoom']}).",
    )
    _need(isinstance(augment["flip"], bool), f"Flip must be true or false (got {augment['flip']}).")
