"""The original notebook's "improvements to try" as recipe switches, each one named change of a recipe.

A switch sets recipe keys (cnn_core.train.recipes); the trainer reads only those keys, and the config
records which switches were on (`switches`), so the model card says both. Seven switches:

    residual         ResNet-style skip connections (cnn_core.nets.models.with_residual)
    separable        depthwise-separable convolutions (cnn_core.nets.models.with_separable)
    adamw            AdamW: Adam with decoupled weight decay
    cosine           cosine learning-rate schedule over the whole run
    mixup            mixup: pairs of images and their labels blended
    cutmix           CutMix: a patch of another image pasted in, labels mixed by area
    label_smoothing  a share of each target spread over every class

Not every switch changes every recipe (AdamW replaces Adam; a recipe that already smooths its
labels has nothing to switch on): `why_not` says so in a sentence, and `apply_switches` refuses.
The original's other ideas are elsewhere: ensembles on the Photo page, "go deeper" is the `wide`
recipe; RAdam is left out because Keras does not ship it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnn_core.base.errors import ConfigError


@dataclass(frozen=True)
class Switch:
    name: str
    title: str
    description: str
    values: dict  # the recipe keys it sets


SWITCHES: dict[str, Switch] = {
    switch.name: switch
    for switch in (
        Switch(
            "residual",
            "Residual connections",
            "ResNet-style skips: each stage's convolutions learn a change added to their input (a 1×1 conv "
            "matches the width), so gradients reach early layers directly.",
            {"residual": True},
        ),
        Switch(
            "separable",
            "Depthwise-separable convolutions",
            "Every 3×3 conv after the first becomes a per-channel 3×3 filter plus a 1×1 channel mix "
            "(MobileNet): far fewer weights and multiply-adds.",
            {"separable": True},
        ),
        # 0.05: the decay AdamW is commonly trained with on convnets (ConvNeXt, DeiT); Keras multiplies
        # it by the learning rate, so with Adam's 1e-3 each step shrinks the kernels by 0.005%.
        Switch(
            "adamw",
            "AdamW",
            "Adam with decoupled weight decay (0.05 × lr per step, kernels only), which regularises "
            "Adam the way plain L2 cannot.",
            {"optimizer": "adamw", "weight_decay": 0.05},
        ),
        Switch(
            "cosine",
            "Cosine schedule",
            "The learning rate falls from its start to 0 along a half cosine over the planned epochs, "
            "instead of halving when validation loss stalls.",
            {"schedule": "cosine"},
        ),
        # α = 0.2 (mixup's ImageNet setting) and CutMix's α = 1 (its paper's): Keras' own layers.
        Switch(
            "mixup",
            "Mixup",
            "Each training batch is blended with a shuffled copy of itself, labels in the same "
            "proportion (λ ~ Beta(0.2, 0.2)).",
            {"mixup": 0.2},
        ),
        Switch(
            "cutmix",
            "CutMix",
            "A random rectangle of another image of the batch is pasted into each training image, "
            "labels mixed by area (λ ~ Beta(1, 1)). With mixup too, each batch gets one of the two.",
            {"cutmix": 1.0},
        ),
        Switch(
            "label_smoothing",
            "Label smoothing",
            "Targets of 0.9 for the true class and 0.1 spread over all classes, so the net is not "
            "pushed to ever more confident outputs.",
            {"label_smoothing": 0.1},
        ),
    )
}
# What a recipe has with every switch off (recipes.validate_config checks these keys).
SWITCHED_OFF = {"residual": False, "separable": False, "mixup": 0.0, "cutmix": 0.0}


def switch_names() -> tuple[str, ...]:
    return tuple(SWITCHES)


def why_not(config: dict, name: str) -> str | None:
    """Why switch `name` cannot change `config` (a recipe's resolved config), or None if it can."""
    if name not in SWITCHES:
        return f"Unknown switch '{name}'. Choose from: {', '.join(SWITCHES)}."
    recipe = config.get("recipe", config.get("arch"))
    if name == "adamw" and config["optimizer"] != "adam":
        return (
            f"AdamW is Adam with decoupled weight decay; the '{recipe}' recipe trains with "
            f"{config['optimizer']}, not Adam."
        )
    if name == "cosine" and config["schedule"] != "plateau":
        return f"The '{recipe}' recipe already plans its learning rate over the run ({config['schedule']} schedule)."
    if name == "label_smoothing" and config.get("label_smoothing"):
        return f"The '{recipe}' recipe already smooths its labels by {config['label_smoothing']:g}."
    return None


def available_switches(config: dict) -> list[str]:
    """The switches that change `config`, in their listed order."""
    return [name for name in SWITCHES if why_not(config, name) is None]


def apply_switches(config: dict, names) -> dict:
    """`config` with the named switches on and recorded under `switches` (in their listed order);
    a ConfigError for one that is unknown or cannot change this recipe."""
    names = list(dict.fromkeys(names or ()))
    for name in names:
        reason = why_not(config, name)
        if reason:
            raise ConfigError(f"Cannot switch on {SWITCHES[name].title if name in SWITCHES else name}: {reason}")
    out = {**SWITCHED_OFF, **config}
    for name in names:
        out.update(SWITCHES[name].values)
    out["switches"] = [name for name in SWITCHES if name in names]
    return out


def describe_switches(config: dict) -> str:
    """'Residual connections, Mixup' for a config's switches; 'none' without any."""
    return ", ".join(SWITCHES[name].title for name in config.get("switches", [])) or "none"
