"""Where a training step's time goes, and how much arithmetic per second it does, beside the peer.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.step_profile                  # cifar10 turbo
    python -m benchmarks.step_profile --arch wide --precision fp32 --steps 10 --out /tmp/x

One recipe's real training step (the recipe's optimizer, loss, batch size and precision, on real
CIFAR-10 batches) is timed whole, then taken apart on the same machine, each part timed alone as
median seconds per batch:

- the input pipeline (`cnn_core.data.pipeline`: uint8 batch → float32, augmentation, one-hot);
- every layer's forward and backward pass (gradients for its input and its weights), from the
  activations it really receives, summed per layer type (convolution, batch norm, pooling, ...);
- the optimizer's update of every weight;
- the rest of the whole step: Keras' step machinery, the loss and metrics, the dtype casts
  between layers, and what the layers cost together beyond their costs alone (a whole step keeps
  every activation for the backward pass, so less of it stays in the CPU's caches).

Arithmetic is counted analytically from layer shapes for both networks, by one rule: a
convolution or dense layer costs 2·(multiply-adds) per image forward, and training costs 3× that
(forward, input gradient, weight gradient; 2× for a layer with frozen weights). The peer's
images/s come from its run on this machine in `time_to_accuracy.json` (`--peer-python`).

Writes `benchmarks/results/step_profile.{json,md}`, one entry per machine.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

from benchmarks import _machines, peer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
BENCHMARK = "step_profile"

# The airbench94 network of ../shared/peers/airbench94_cpu.py as (kind, input H, W, Cin, Cout, kernel):
# a frozen 2×2 whitening conv (valid: 32→31), then per block conv → pool → BN → GELU → conv → BN → GELU.
PEER_LAYERS = [
    ("conv_frozen", 32, 32, 3, 24, 2),
    ("conv", 31, 31, 24, 64, 3),
    ("conv", 15, 15, 64, 64, 3),
    ("conv", 15, 15, 64, 256, 3),
    ("conv", 7, 7, 256, 256, 3),
    ("conv", 7, 7, 256, 256, 3),
    ("conv", 3, 3, 256, 256, 3),
    ("dense", 1, 1, 256, 10, 1),
]
PEER_BATCH, PEER_TRAIN_IMAGES = 1024, 50_000


def peer_training_flops_per_image() -> float:
    total = 0.0
    for kind, h, w, cin, cout, k in PEER_LAYERS:
        out_h, out_w = (h - k + 1, w - k + 1) if kind == "conv_frozen" else (h, w)
        forward = 2.0 * out_h * out_w * k * k * cin * cout
        total += forward * (2 if kind == "conv_frozen" else 3)
    return total


def keras_training_flops_per_image(model) -> float:
    """The same rule applied to a Keras model's Conv2D and Dense layers."""
    import keras

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, out_h, out_w, cout = layer.output.shape
            kh, kw = layer.kernel_size
            total += 3 * 2.0 * out_h * out_w * kh * kw * layer.input.shape[-1] * cout
        elif isinstance(layer, keras.layers.Dense):
            total += 3 * 2.0 * layer.input.shape[-1] * layer.units
    return total


def peer_images_per_second(run: dict) -> float:
    """The peer's training images over its training clock (whole batches of 1024, as it steps)."""
    steps = math.ceil(PEER_TRAIN_IMAGES // PEER_BATCH * run["epochs_planned"])
    return steps * PEER_BATCH / run["total_train_seconds"]


# -- timing ---------------------------------------------------------------------------------------


def median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def layer_kind(layer) -> str:
    return {
        "Conv2D": "convolution",
        "BatchNormalization": "batch norm",
        "MaxPooling2D": "max pooling",
        "GlobalMaxPooling2D": "max pooling",
        "ReLU": "ReLU",
        "Rescaling": "rescaling",
        "Dense": "dense + softmax",
    }.get(type(layer).__name__, type(layer).__name__)


def time_layers(model, images, repeats: int) -> list[dict]:
    """Each layer's forward and forward+backward time on the activations it receives in `model`."""
    import keras
    import tensorflow as tf

    rows, x = [], tf.convert_to_tensor(images)
    for layer in model.layers[1:]:
        variables = layer.trainable_variables

        @tf.function
        def forward(inputs, layer=layer):
            return layer(inputs, training=True)

        # A random upstream gradient, as the layer above would send: a constant one (the gradient
        # of a plain sum) lets TensorFlow simplify some backward kernels and under-counts them.
        upstream = tf.random.normal(forward(x).shape, seed=1)

        @tf.function
        def forward_backward(inputs, layer=layer, variables=variables, upstream=upstream):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                out = layer(inputs, training=True)
                loss = tf.reduce_sum(tf.cast(out, tf.float32) * upstream)
            return tape.gradient(loss, [inputs, *variables])

        fwd = median_seconds(lambda x=x: forward(x), repeats)
        both = median_seconds(lambda x=x: forward_backward(x), repeats)
        rows.append(
            {
                "layer": layer.name,
                "kind": layer_kind(layer),
                "forward_s": fwd,
                "backward_s": max(0.0, both - fwd),
                "output_shape": list(layer.output.shape[1:]),
            }
        )
        x = keras.ops.convert_to_tensor(forward(x))
    return rows


def profile(arch: str, dataset: str, precision: str | None, steps: int, data_dir, log=print) -> dict:
    import keras
    import tensorflow as tf

    from cnn_core.base.runtime import configure_threads
    from cnn_core.data.datasets import load_dataset
    from cnn_core.data.pipeline import make_tf_dataset
    from cnn_core.nets.models import build_model
    from cnn_core.nets.precision import model_precision, resolve_precision
    from cnn_core.train.optimizer import compile_model, jit_compiles
    from cnn_core.train.recipes import resolve_config

    configure_threads()
    config = resolve_config(dataset, arch, precision=precision)
    batch = config["batch_size"]
    data = load_dataset(dataset, data_dir)
    x, y = data.x_train[: batch * (steps + 4)], data.y_train[: batch * (steps + 4)]
    keras.utils.set_random_seed(0)
    model = compile_model(
        build_model(arch, dataset, precision=resolve_precision(config["precision"])), config, steps_per_epoch=steps
    )
    log(f"{dataset} / {arch}: batch {batch}, {model_precision(model)}, {model.count_params():,} parameters")

    pipeline = iter(make_tf_dataset(x, y, data.info, batch, config["augment"], shuffle=True, seed=0).repeat())
    input_s = median_seconds(lambda: next(pipeline), steps)
    images, labels = next(pipeline)
    step_s = median_seconds(lambda: model.train_on_batch(images, labels), steps)  # as the recipe runs it
    xla = jit_compiles(config)
    plain_step_s = step_s
    if xla:  # XLA's compiled step has no separate layers: the breakdown takes the plain step apart
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=False)
        plain_step_s = median_seconds(lambda: model.train_on_batch(images, labels), steps)
    layers = time_layers(model, images, steps)

    grads = [tf.zeros_like(v) for v in model.trainable_variables]
    update = tf.function(lambda: model.optimizer.apply(grads, model.trainable_variables))
    optimizer_s = median_seconds(update, steps)
    parts = {}
    for row in layers:
        part = parts.setdefault(row["kind"], {"forward_s": 0.0, "backward_s": 0.0})
        part["forward_s"] += row["forward_s"]
        part["backward_s"] += row["backward_s"]
    layer_sum = sum(p["forward_s"] + p["backward_s"] for p in parts.values())
    flops = keras_training_flops_per_image(model)
    return {
        "dataset": dataset,
        "arch": arch,
        "precision": model_precision(model),
        "batch_size": batch,
        "params": int(model.count_params()),
        "steps_timed": steps,
        "step_s": step_s,
        "images_per_sec": batch / step_s,
        "input_pipeline_s": input_s,
        "xla": xla,
        "plain_step_s": plain_step_s,
        "optimizer_s": optimizer_s,
        "parts": parts,
        "layers": layers,
        "rest_of_step_s": plain_step_s - layer_sum - optimizer_s,
        "training_flops_per_image": flops,
        "gflops_per_sec": flops * batch / step_s / 1e9,
        "input_pipeline_overlaps": "tf.data prefetches on its own threads while the step runs",
    }


def peer_comparison(ours: dict, time_to_accuracy: dict | None, machine: dict) -> dict | None:
    """Our training arithmetic per second over the peer's, from its run on this machine."""
    entry = _machines.entry_for(time_to_accuracy, machine) if time_to_accuracy else None
    runs = (entry or {}).get("datasets", {}).get(peer.PEER_DATASET, {}).get("peer") or {}
    if not runs:
        return None
    name, run = max(runs.items(), key=lambda item: item[1]["total_train_seconds"])  # the longest: steadiest rate
    images_per_sec = peer_images_per_second(run)
    gflops = peer_training_flops_per_image() * images_per_sec / 1e9
    return {
        "peer_run": f"--epochs {name}",
        "peer_precision": run["precision"],
        "peer_images_per_sec": images_per_sec,
        "peer_training_flops_per_image": peer_training_flops_per_image(),
        "peer_gflops_per_sec": gflops,
        "throughput_ratio": ours["gflops_per_sec"] / gflops,
    }


# -- results ----------------------------------------------------------------------------------------


def validate_results(doc: dict) -> None:
    def entry_ok(entry: dict, where: str):
        for key in ("command", "git_commit", "created", "profile"):
            if key not in entry:
                raise ValueError(f"{where}: missing '{key}'")
        prof = entry["profile"]
        if not prof["step_s"] > 0 or not prof["layers"]:
            raise ValueError(f"{where}.profile: needs a positive step time and its layers")
        parts = sum(p["forward_s"] + p["backward_s"] for p in prof["parts"].values())
        plain = prof.get("plain_step_s", prof["step_s"])  # the step without XLA, which the parts take apart
        if abs(parts + prof["optimizer_s"] + prof["rest_of_step_s"] - plain) > 1e-6:
            raise ValueError(f"{where}.profile: the parts must add up to the step")

    _machines.validate(doc, BENCHMARK, entry_ok)


def render_markdown(doc: dict, notes: str = "") -> str:
    lines = [
        "# Where a training step's time goes",
        "",
        (
            "Generated by `python -m benchmarks.step_profile`; median seconds per batch, each part timed alone "
            "on the activations it really receives. One section per machine."
        ),
        "",
    ]
    for key, entry in _machines.entries(doc):
        prof, cmp = entry["profile"], entry.get("peer")
        lines += _machines.describe(key, entry)
        lines += [
            f"- Command: `{entry['command']}` (commit `{entry['git_commit']}`, {entry['created']})",
            (
                f"- `{prof['arch']}` on {prof['dataset']}: {prof['params']:,} parameters, {prof['precision']}, "
                f"batch {prof['batch_size']}: **{prof['step_s'] * 1000:.0f} ms per step, "
                f"{prof['images_per_sec']:.0f} images/s, {prof['gflops_per_sec']:.0f} GFLOP/s** "
                f"({prof['training_flops_per_image'] / 1e6:.0f} MFLOP per training image)"
            ),
            "",
        ]
        if cmp:
            lines += [
                (
                    f"- Peer ({cmp['peer_run']}, {cmp['peer_precision']}): {cmp['peer_images_per_sec']:.0f} images/s × "
                    f"{cmp['peer_training_flops_per_image'] / 1e6:.0f} MFLOP = {cmp['peer_gflops_per_sec']:.0f} GFLOP/s; "
                    f"ours / peer = **{cmp['throughput_ratio']:.2f}×** (goal ≥ 0.9×)"
                ),
                "",
            ]
        plain = prof.get("plain_step_s", prof["step_s"])
        if prof.get("xla"):
            lines += [
                (
                    f"- XLA (the recipe's `jit_compile`): {prof['step_s'] * 1000:.0f} ms per step compiled against "
                    f"{plain * 1000:.0f} ms plain, {plain / prof['step_s']:.2f}× the images/s. XLA fuses the batch "
                    "norm, GELU and pooling arithmetic between the convolutions; the table takes the plain step "
                    "apart."
                ),
                "",
            ]
        lines += ["| part | forward ms | backward ms | share of the step |", "|---|---:|---:|---:|"]
        for kind, part in sorted(prof["parts"].items(), key=lambda kv: -(kv[1]["forward_s"] + kv[1]["backward_s"])):
            total = part["forward_s"] + part["backward_s"]
            lines.append(
                f"| {kind} | {part['forward_s'] * 1000:.1f} | {part['backward_s'] * 1000:.1f} | {total / plain:.0%} |"
            )
        lines += [
            f"| optimizer update | – | – | {prof['optimizer_s'] / plain:.0%} |",
            (
                f"| rest of the step (Keras step, loss, metrics, casts, layers together vs alone) | – | – | "
                f"{prof['rest_of_step_s'] / plain:.0%} |"
            ),
            "",
            (
                f"Input pipeline alone: {prof['input_pipeline_s'] * 1000:.1f} ms per batch "
                f"({prof['input_pipeline_s'] / prof['step_s']:.0%} of a step; {prof['input_pipeline_overlaps']})."
            ),
            "",
        ]
    return "\n".join(lines + [_machines.NOTES_MARKER, notes.strip("\n"), ""])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="cifar10", choices=("cifar10", "mnist", "fashion_mnist"))
    parser.add_argument("--arch", default="turbo")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), help="default: the recipe's")
    parser.add_argument("--steps", type=int, default=20, help="batches timed per part (median)")
    parser.add_argument("--data-dir", default=os.environ.get("CNN_DATA_DIR"))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    from cnn_core.base.runtime import git_commit, import_tensorflow_quietly, now_iso

    import_tensorflow_quietly()
    machine = _machines.this_machine()
    prof = profile(
        args.arch, args.dataset, args.precision, args.steps, args.data_dir, log=lambda text: print(text, flush=True)
    )
    tta_doc = _machines.load(RESULTS_DIR / "time_to_accuracy.json", "time_to_accuracy")
    command = " ".join(["python -m benchmarks.step_profile", *(shlex.quote(a) for a in (argv or sys.argv[1:]))])
    entry = {
        "machine": machine,
        "command": command,
        "git_commit": git_commit(),
        "created": now_iso(),
        "profile": prof,
        "peer": peer_comparison(prof, tta_doc, machine) if args.dataset == "cifar10" else None,
    }
    path = args.out / f"{BENCHMARK}.json"
    doc = _machines.merge(_machines.load(path, BENCHMARK), BENCHMARK, entry)
    validate_results(doc)
    _machines.write(args.out, BENCHMARK, doc, render_markdown(doc, _machines.read_notes(args.out / f"{BENCHMARK}.md")))
    print(render_markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
