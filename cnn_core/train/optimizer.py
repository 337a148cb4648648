"""A recipe's optimizer, learning-rate schedule and loss, compiled onto a model.

Each decision is read from one recipe key (cnn_core.train.recipes): `optimizer` picks the update
rule, `schedule` the learning rate over time, `label_smoothing` the loss.
"""

from __future__ import annotations

import keras
from keras import ops

from cnn_core.base.errors import ConfigError
from cnn_core.nets.models import WHITEN_LAYER


@keras.saving.register_keras_serializable(package="cnn_core")
class TriangleSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """airbench's schedule: linear from start_factor·peak up to the peak at `peak_step`, then
    linear down to end_factor·peak at `total_steps`."""

    def __init__(self, peak: float, peak_step: int, total_steps: int, start_factor: float, end_factor: float):
        self.peak, self.peak_step, self.total_steps = float(peak), int(peak_step), int(total_steps)
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rising = self.start_factor + (1 - self.start_factor) * step / max(1, self.peak_step)
        falling = 1 + (self.end_factor - 1) * (step - self.peak_step) / max(1, self.total_steps - self.peak_step)
        factor = ops.where(step < self.peak_step, rising, ops.maximum(falling, self.end_factor))
        return self.peak * factor

    def get_config(self):
        return {
            "peak": self.peak,
            "peak_step": self.peak_step,
            "total_steps": self.total_steps,
            "start_factor": self.start_factor,
            "end_factor": self.end_factor,
        }


@keras.saving.register_keras_serializable(package="cnn_core")
class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A recipe's schedule times a factor that may change mid-run (cnn_core.train.lr_control): the factor
    is a non-trainable variable read at every step, so a new value applies from the next step on
    and scales the whole rest of the schedule. It is no optimizer variable (a run saved before it
    existed still loads): its config carries its value, so the last state saved keeps it for --resume."""

    def __init__(self, schedule, factor: float = 1.0):
        if isinstance(schedule, dict):  # from_config
            schedule = keras.saving.deserialize_keras_object(schedule)
        self.schedule = schedule
        self.factor = keras.Variable(float(factor), dtype="float32", trainable=False, name="lr_factor")

    def __call__(self, step):
        return ops.multiply(ops.cast(self.schedule(step), "float32"), self.factor)

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "factor": float(ops.convert_to_numpy(self.factor)),
        }


@keras.saving.register_keras_serializable(package="cnn_core")
class GroupedSGD(keras.optimizers.SGD):
    """Nesterov SGD as PyTorch does it for airbench: weight decay added to the gradient (so it
    runs through the momentum), and per-variable learning-rate multipliers (`lr_multipliers`,
    keyed by the end of a variable's path, e.g. {"beta": 64.0}: BN biases learn 64× faster;
    0 freezes). A variable's decay is divided by its multiplier, so every weight shrinks by the
    same share per step. `freeze_after` ({path end: step}) stops a variable at that step."""

    def __init__(self, l2=0.0, lr_multipliers=None, freeze_after=None, **kwargs):
        super().__init__(nesterov=True, **kwargs)
        self.l2 = float(l2)
        self.lr_multipliers = dict(lr_multipliers or {})
        self.freeze_after = {key: int(step) for key, step in (freeze_after or {}).items()}

    @staticmethod
    def _lookup(table: dict, variable):
        # Inside fit() TensorFlow hands over its own variables, named "layer/kernel:0" without a path.
        path = getattr(variable, "path", None) or variable.name.split(":")[0]
        return next((value for key, value in table.items() if path == key or path.endswith("/" + key)), None)

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self._lookup(self.lr_multipliers, variable)
        multiplier = 1.0 if multiplier is None else float(multiplier)
        if multiplier == 0.0:
            return
        learning_rate = ops.cast(learning_rate, variable.dtype) * multiplier
        if self.l2:
            gradient = ops.cast(gradient, variable.dtype) + (self.l2 / multiplier) * variable
        freeze_step = self._lookup(self.freeze_after, variable)
        if freeze_step is None:
            super().update_step(gradient, variable, learning_rate)
            return
        # Past its step the variable and its momentum stay as they are (no momentum carry-over).
        momentum = self.momentums[self._get_variable_index(variable)]
        before = (ops.copy(variable), ops.copy(momentum))
        super().update_step(gradient, variable, learning_rate)
        live = self.iterations < freeze_step
        variable.assign(ops.where(live, variable, before[0]))
        momentum.assign(ops.where(live, momentum, before[1]))

    def get_config(self):
        config = super().get_config()
        config.pop("nesterov", None)
        return {**config, "l2": self.l2, "lr_multipliers": self.lr_multipliers, "freeze_after": self.freeze_after}


@keras.saving.register_keras_serializable(package="cnn_core")
class MuonSGD(GroupedSGD):
    """airbench94_muon's optimizer: each 3×3 conv kernel takes a Muon step, everything else
    (BN biases, the stem's bias, the classifier) GroupedSGD's. A Muon step orthogonalises the
    Nesterov momentum of a kernel's gradient, seen as an (outputs × kh·kw·inputs) matrix, with
    Newton-Schulz iterations (Keras' own, from keras.optimizers.Muon, which itself runs only 2-D
    weights and hands the rest to Adam), after rescaling the kernel to norm √outputs: the
    update's size is set by `muon_lr_ratio` × the scheduled lr alone, not by the gradient's
    scale, and the kernels need no weight decay."""

    # Borrowed from keras.optimizers.Muon, with its coefficients; airbench runs 3 iterations.
    zeropower_via_newtonschulz5 = keras.optimizers.Muon.zeropower_via_newtonschulz5
    transpose_last_axis = keras.optimizers.Muon.transpose_last_axis
    muon_a, muon_b, muon_c = 3.4445, -4.7750, 2.0315

    def __init__(self, muon_lr_ratio=1.0, muon_momentum=0.6, ns_steps=3, **kwargs):
        super().__init__(**kwargs)
        self.muon_lr_ratio, self.muon_momentum, self.ns_steps = (
            float(muon_lr_ratio),
            float(muon_momentum),
            int(ns_steps),
        )

    def _is_muon(self, variable) -> bool:
        return len(variable.shape) == 4 and self._lookup(self.lr_multipliers, variable) is None

    def update_step(self, gradient, variable, learning_rate):
        if not self._is_muon(variable):
            super().update_step(gradient, variable, learning_rate)
            return
        # PyTorch-style Nesterov buffer (b ← μb + g; step along g + μb), as airbench's Muon.
        buffer = self.momentums[self._get_variable_index(variable)]
        gradient = ops.cast(gradient, variable.dtype)
        buffer.assign(self.muon_momentum * buffer + gradient)
        direction = gradient + self.muon_momentum * buffer
        outputs = variable.shape[-1]
        variable.assign(variable * (outputs**0.5 / (ops.norm(ops.reshape(variable, (-1,))) + 1e-12)))
        matrix = ops.reshape(direction, (-1, outputs))  # rows (kh, kw, in), one column per output
        update = ops.reshape(self.zeropower_via_newtonschulz5(matrix, self.ns_steps), variable.shape)
        variable.assign_sub(ops.cast(learning_rate, variable.dtype) * self.muon_lr_ratio * update)

    def get_config(self):
        return {
            **super().get_config(),
            "muon_lr_ratio": self.muon_lr_ratio,
            "muon_momentum": self.muon_momentum,
            "ns_steps": self.ns_steps,
        }


def learning_rate(config: dict, steps_per_epoch: int):
    """The learning rate fit() starts with: a number for `plateau` (the ReduceLROnPlateau
    callback lowers it) or, for `onecycle` and `triangle`, a per-batch schedule planned over
    the whole run."""
    if config["schedule"] == "plateau":
        return config["lr"]
    total = max(1, steps_per_epoch * config["epochs"])
    if config["schedule"] == "cosine":  # no warm-up: lr at the first batch, 0 after the last
        return keras.optimizers.schedules.CosineDecay(initial_learning_rate=config["lr"], decay_steps=total, alpha=0.0)
    warmup = max(1, int(total * config["warmup_fraction"]))
    if config["schedule"] == "triangle":
        return TriangleSchedule(config["lr"], warmup, total, config["lr_start_factor"], config["lr_end_factor"])
    # Linear warm-up from lr/10 to lr, then cosine decay to 0 at the last batch.
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config["lr"] / 10,
        decay_steps=max(1, total - warmup),
        alpha=0.0,
        warmup_target=config["lr"],
        warmup_steps=warmup,
    )


def make_optimizer(config: dict, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr = learning_rate(config, steps_per_epoch)
    weight_decay = config.get("weight_decay") or None  # decoupled: applied by the optimizer, not the loss
    if config["optimizer"] in ("sgd_nesterov_l2", "muon"):
        grouped = {
            "learning_rate": lr,
            "momentum": config["momentum"],
            "l2": config["weight_decay"],
            "lr_multipliers": {**config["lr_multipliers"], f"{WHITEN_LAYER}/kernel": 0.0},
            "freeze_after": {f"{WHITEN_LAYER}/bias": config["whiten_bias_epochs"] * steps_per_epoch},
        }
        if config["optimizer"] == "sgd_nesterov_l2":
            return GroupedSGD(**grouped)
        # Muon's lr is its own (its step ignores the gradient's scale); the schedule moves it with the rest.
        return MuonSGD(muon_lr_ratio=config["muon_lr"] / config["lr"], muon_momentum=config["muon_momentum"], **grouped)
    if config["optimizer"] == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=lr, weight_decay=weight_decay)
    elif config["optimizer"] == "adamw":  # Keras' AdamW is this same Adam with its decay set
        optimizer = keras.optimizers.AdamW(learning_rate=lr, weight_decay=config["weight_decay"])
    else:  # "sgd_nesterov" (recipes.validate_config allows no other)
        optimizer = keras.optimizers.SGD(
            learning_rate=lr, momentum=config["momentum"], nesterov=True, weight_decay=weight_decay
        )
    if weight_decay:
        # Decay only the conv/dense kernels: shrinking BN scales and biases hurts.
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def jit_compiles(config: dict) -> bool:
    """Whether the run's training step is compiled by XLA: `jit_compile` true, or "auto" for a
    float32 run without oneDNN. XLA's fusing of the batch norm and GELU between the convolutions
    pays only over Eigen's slower convolutions: it slows oneDNN's step on the airbench net, and
    oneDNN alone beats Eigen + XLA, which beats Eigen alone (benchmarks/results/step_profile.md).
    Unmeasured in bfloat16, so never there."""
    from cnn_core.base.runtime import onednn_enabled
    from cnn_core.nets.precision import resolve_precision

    setting = config.get("jit_compile", False)
    return setting is True or (
        setting == "auto" and resolve_precision(config.get("precision")) == "fp32" and not onednn_enabled()
    )


def compile_model(model: keras.Model, config: dict, steps_per_epoch: int) -> keras.Model:
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.get("label_smoothing", 0.0))
    model.compile(
        optimizer=make_lr_changeable(make_optimizer(config, steps_per_epoch)),
        loss=loss,
        metrics=["accuracy"],
        jit_compile=jit_compiles(config),
    )
    return model


def make_lr_changeable(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """`optimizer` with its schedule, if it has one, in a ScaledSchedule (once): new runs, and runs
    saved before ScaledSchedule existed when they resume. A plain learning rate is a variable already."""
    schedule = optimizer._learning_rate  # Keras keeps the schedule itself only there
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) and not isinstance(
        schedule, ScaledSchedule
    ):
        optimizer.learning_rate = ScaledSchedule(schedule)
    return optimizer


def change_lr(model: keras.Model, multiply: float | None = None, set_to: float | None = None) -> float:
    """Multiply the learning rate by `multiply`, or make it `set_to`, from the model's next step on;
    returns the multiplier applied. A schedule keeps its shape: its ScaledSchedule factor moves. Every
    step size derived from the lr (GroupedSGD's per-variable multipliers, MuonSGD's `muon_lr_ratio` ×
    lr) follows by the same factor. ConfigError where it cannot (an lr of 0 at this step cannot be set)."""
    before = current_lr(model)
    if set_to is not None:
        if before <= 0:
            raise ConfigError(
                "The learning rate is 0 at this step (the schedule's end), so it cannot be set "
                "to a value by scaling it; the change was ignored."
            )
        multiply = set_to / before
    schedule = model.optimizer._learning_rate
    if isinstance(schedule, ScaledSchedule):
        schedule.factor.assign(schedule.factor * multiply)
    elif isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        raise ConfigError("This run's learning-rate schedule cannot be changed; the change was ignored.")
    else:  # a plain variable (the plateau rule's)
        model.optimizer.learning_rate = before * multiply
    return float(multiply)


def current_lr(model: keras.Model) -> float:
    """The learning rate the optimizer uses at its current step."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def current_muon_lr(model: keras.Model) -> float | None:
    """The step size of MuonSGD's conv kernels now (`muon_lr_ratio` × the lr); None for other optimizers."""
    ratio = getattr(model.optimizer, "muon_lr_ratio", None)
    return None if ratio is None else ratio * current_lr(model)
