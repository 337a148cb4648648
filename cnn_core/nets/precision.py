"""Which number format a network computes in on this CPU: bfloat16 or float32.

bfloat16 halves the memory traffic and doubles the arithmetic rate, but only where the CPU
does it in hardware (AVX512-BF16, AMX) and oneDNN is allowed to use that. Elsewhere it is
emulated, and training in bfloat16 is many times slower than in float32. And on a CPU that has
it, a process started with `ONEDNN_MAX_CPU_ISA=AVX2` cannot create bfloat16 convolutions at all.

So precision is a decision per machine, never part of a saved model:

- training takes `precision` "auto" | "bf16" | "fp32"; "auto" is bf16 only where
  `native_bf16()` says the hardware does it, and the card records what ran;
- inference always runs a float32 twin of the network (same weights): it loads and predicts
  on every x86-64 CPU, gives the same probabilities everywhere, and predicts a picture faster
  than bfloat16 on every CPU in benchmarks/results/inference.md.
"""

from __future__ import annotations

import os

from cnn_core.base.errors import ConfigError
from cnn_core.base.runtime import cpu_flags

PRECISIONS = ("auto", "bf16", "fp32")
# What saved models predict in: float32 everywhere, the faster of the two for one picture on every
# CPU in benchmarks/results/inference.md; benchmarks/inference.py times both per CPU, so a CPU where
# bf16 wins will show there.
INFERENCE_PRECISION = "fp32"
BF16_POLICY = "mixed_bfloat16"  # bf16 compute, float32 weights and BN statistics
FP32_POLICY = "float32"

# oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA) that still include bfloat16 dot products; any other
# cap (SSE41, AVX, AVX2, AVX2_VNNI, AVX512_CORE, AVX512_CORE_VNNI, ...) makes bf16 convolutions
# fail to build.
_BF16_ISA_CAPS = (
    "ALL",
    "DEFAULT",
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512",
    "AVX10_1_512_AMX",
    "AVX10_1_512_AMX_FP16",
    "AVX10_2_512",
    "AVX10_2_512_AMX_2",
)


NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPU flags of hardware bfloat16 maths


def native_bf16(flags: frozenset[str] | None = None, environ: dict | None = None) -> bool:
    """True when bfloat16 maths runs in hardware here: the CPU has AVX512-BF16 or AMX-BF16,
    oneDNN is on (TF_ENABLE_ONEDNN_OPTS is not 0) and not capped below a bf16 ISA."""
    flags = cpu_flags() if flags is None else flags
    environ = os.environ if environ is None else environ
    if not (set(NATIVE_BF16_FLAGS) & set(flags)):
        return False
    if environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip() == "0":
        return False
    cap = environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return not cap or cap in _BF16_ISA_CAPS


def resolve_precision(requested: str | None) -> str:
    """'bf16' or 'fp32' for a requested training precision ('auto' asks the CPU)."""
    requested = requested or "auto"
    if requested not in PRECISIONS:
        raise ConfigError(f"Unknown precision '{requested}'. Choose one of: {', '.join(PRECISIONS)}.")
    if requested == "auto":
        return "bf16" if native_bf16() else "fp32"
    return requested


def dtype_policy(precision: str) -> str:
    """The Keras dtype policy name for a resolved precision."""
    return BF16_POLICY if precision == "bf16" else FP32_POLICY


def model_precision(model) -> str:
    """'bf16' if any layer of a Keras model computes in bfloat16, else 'fp32'."""
    return "bf16" if any(layer.compute_dtype == "bfloat16" for layer in model.layers) else "fp32"


def _with_policy(config, policy: str):
    """A copy of a Keras model config with every layer's dtype policy set to `policy`."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
            return {**config, "config": {**config["config"], "name": policy}}
        return {key: _with_policy(value, policy) for key, value in config.items()}
    if isinstance(config, list):
        return [_with_policy(value, policy) for value in config]
    return config


# The layers that turn features into probabilities (cnn_core.nets.models): always float32.
FLOAT32_HEAD = ("classifier", "logit_scale", "softmax")


def with_precision(model, precision: str):
    """The same network and weights computing in `precision` ('bf16' or 'fp32'); the model
    itself when it already does. Weights are float32 either way, so nothing is rounded."""
    if precision not in ("bf16", "fp32"):
        raise ConfigError(f"Precision must be 'bf16' or 'fp32' here (got '{precision}').")
    if model_precision(model) == precision:
        return model
    policy = dtype_policy(precision)
    config = _with_policy(model.get_config(), policy)
    if precision == "bf16":  # keep the softmax in float32, as the training builder does
        for layer in config["layers"]:
            if layer["config"].get("name") in FLOAT32_HEAD:
                layer["config"]["dtype"] = _with_policy(layer["config"]["dtype"], FP32_POLICY)
    twin = type(model).from_config(config)
    twin.set_weights(model.get_weights())
    return twin


def precision_choice_help() -> str:
    """One paragraph for a person choosing a training precision on this machine."""
    here = (
        "This CPU does bfloat16 in hardware, so bf16 trains about twice as fast."
        if native_bf16()
        else "This CPU has no native bfloat16 (AVX512-BF16/AMX): bf16 would be emulated, about ten times slower."
    )
    return (
        "auto: bfloat16 where the CPU does it natively, else float32. bf16: mixed bfloat16 (weights stay "
        f"float32). fp32: float32 throughout. {here} Predictions always run in float32."
    )
