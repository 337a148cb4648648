"""A recipe's optimizer, learning-rate schedule and loss, compiled onto a model.

Each decision is read from one recipe key (cnn_core.recipes): `optimizer` picks the update
rule, `schedule` the learning rate over time, `label_smoothing` the loss.
"""

from __future__ import annotations

import keras


def learning_rate(config: dict, steps_per_epoch: int):
    """The learning rate fit() starts with: a number for `plateau` (the ReduceLROnPlateau
    callback lowers it) or, for `onecycle`, a per-batch schedule planned over the whole run."""
    if config["schedule"] == "plateau":
        return config["lr"]
    total = max(1, steps_per_epoch * config["epochs"])
    warmup = max(1, int(total * config["warmup_fraction"]))
    # Linear warm-up from lr/10 to lr, then cosine decay to 0 at the last batch.
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config["lr"] / 10, decay_steps=max(1, total - warmup), alpha=0.0,
        warmup_target=config["lr"], warmup_steps=warmup)


def make_optimizer(config: dict, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr = learning_rate(config, steps_per_epoch)
    weight_decay = config.get("weight_decay") or None  # decoupled: applied by the optimizer, not the loss
    if config["optimizer"] == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=lr, weight_decay=weight_decay)
    else:  # "sgd_nesterov" (recipes.validate_config allows no other)
        optimizer = keras.optimizers.SGD(learning_rate=lr, momentum=config["momentum"], nesterov=True,
                                         weight_decay=weight_decay)
    if weight_decay:
        # Decay only the conv/dense kernels: shrinking BN scales and biases hurts.
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer


def compile_model(model: keras.Model, config: dict, steps_per_epoch: int) -> keras.Model:
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.get("label_smoothing", 0.0))
    model.compile(optimizer=make_optimizer(config, steps_per_epoch), loss=loss, metrics=["accuracy"])
    return model


def current_lr(model: keras.Model) -> float:
    """The learning rate the optimizer uses at its current step."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
