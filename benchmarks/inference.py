"""Inference speed and memory of every shipped model, through the functions the app calls.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.inference
    python -m benchmarks.inference --models mnist_fast30 --calls 20 --batch-images 256 --out /tmp/x  # smoke

- Single-image latency, warm, in process: `Predictor.predict_image` (what the Photo and
  Draw pages call: picture → the sample the network sees → probabilities), p50/p95 over
  many calls after a warm-up; without TTA, and for models whose card uses flip TTA with it
  too. Every model runs in the inference default precision (`load_predictor`'s
  `precision=None`); models trained in bfloat16 are measured in bfloat16 as well, to show
  whether it pays on the CPU at hand.
- Batch throughput: `Predictor.predict_samples` on the first 2,000 test images, best of two.
- Memory: peak RSS of a fresh process that loads the Draw and Photo pages' default models
  and serves single-image predictions (what an app process holds), and of this benchmark
  process (which also holds the test sets and ran the batch predictions).

Writes `benchmarks/results/inference.{json,md}` with one entry per machine
(`benchmarks/_machines.py`): a run replaces this machine's entry and keeps the others, so
another CPU's figures are added beside these.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import _machines

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS_DIR = REPO / "benchmarks" / "results"
BENCHMARK = "inference"
SCHEMA_VERSION = _machines.SCHEMA_VERSION
GOALS = {"p50_ms": 5.0, "rss_mb": 1200.0}
WARMUP, CALLS = 30, 300
# Throughput is flat beyond a few batches; 2,000 images (four of the library's 512-image
# batches per pass) keep a run of every shipped model and the bfloat16 twins to minutes on 2 cores.
BATCH_IMAGES = 2000
MIN_CALLS = 10
# The dataset each page opens with; the Photo page starts on CIFAR-10.
PAGE_DATASETS = {"draw": "mnist", "photo": "cifar10"}
PAGE_TITLES = {"draw": "Draw a digit", "photo": "Classify a photo"}


def shipped_models() -> list[str]:
    from cnn_core.base.store import shipped_store

    return shipped_store().names()


def page_defaults() -> dict:
    """The model each page opens with: its dataset's most accurate shipped model, the order
    `app_pages/_common.model_picker` puts first."""
    from cnn_core.base.store import shipped_store

    store = shipped_store()
    cards = [store.load_card(n) for n in store.names()]
    defaults = {}
    for page, dataset in PAGE_DATASETS.items():
        rated = [c for c in cards if c.get("dataset") == dataset and c.get("test_accuracy") is not None]
        if rated:
            defaults[page] = max(rated, key=lambda c: c["test_accuracy"])["name"]
    return defaults


def trained_precision(card: dict) -> str:
    """'bf16' or 'fp32': what a model computed in while it trained. Cards written before they
    recorded it: the CIFAR-10 `turbo` and `wide` nets were the bfloat16 ones."""
    if card.get("precision") in ("bf16", "fp32"):
        return card["precision"]
    bf16_arch = card.get("dataset") == "cifar10" and card.get("architecture") in ("turbo", "wide")
    return "bf16" if bf16_arch else "fp32"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def test_picture(dataset: str, data):
    """A picture like the app receives: a 280×280 RGBA canvas drawing for digits, an
    uploaded photo file's decoded image for CIFAR-10."""
    import numpy as np
    from PIL import Image

    if dataset == "mnist":
        digit = Image.fromarray(data.x_test[0]).resize((280, 280), Image.NEAREST)
        grey = np.asarray(digit)
        return np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    from cnn_core.data.preprocess import load_image

    samples = REPO / "assets" / "samples"
    photos = sorted(samples.rglob("*.jpg")) + sorted(samples.rglob("*.png"))
    photos = [p for p in photos if "mnist" not in p.as_posix()]
    if photos:  # a real photo file, decoded the way an upload is
        return load_image(str(photos[0]))
    return Image.fromarray(data.x_test[0]).resize((256, 256), Image.BICUBIC)


def _describe(picture) -> str:
    import numpy as np

    if isinstance(picture, np.ndarray):
        return f"array {'×'.join(map(str, picture.shape))} {picture.dtype}"
    return f"{picture.format or 'PIL'} image {picture.size[0]}×{picture.size[1]} {picture.mode}"


def latency(predictor, picture, warmup=WARMUP, calls=CALLS) -> dict:
    import numpy as np

    for _ in range(warmup):
        predictor.predict_image(picture)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        predictor.predict_image(picture)
        times.append((time.perf_counter() - t) * 1000)
    times = np.asarray(times)
    return {
        "calls": calls,
        "warmup_calls": warmup,
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
        "mean_ms": float(times.mean()),
        "min_ms": float(times.min()),
    }


def _p50(fn, warmup, calls) -> float:
    import numpy as np

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(times, 50))


def breakdown(predictor, picture, warmup=WARMUP, calls=CALLS) -> dict:
    """Where a single prediction's time goes: turning the picture into a sample, the
    library's forward pass (`predict_samples`, which calls `predict_on_batch` for small
    batches), and, for comparison, Keras' compiled `predict_on_batch` called directly."""
    import numpy as np

    from cnn_core.data.preprocess import to_model_input

    sample = predictor.sample_from_image(picture)
    x = to_model_input(sample[None], predictor.info)

    def compiled():
        probs = predictor.model.predict_on_batch(x)
        if predictor.tta:
            probs = (probs + predictor.model.predict_on_batch(x[:, :, ::-1, :])) / 2.0
        return np.asarray(probs)

    np.testing.assert_allclose(compiled(), predictor.predict_samples(sample[None]), atol=1e-4)
    return {
        "preprocess_p50_ms": _p50(lambda: predictor.sample_from_image(picture), warmup, calls),
        "forward_p50_ms": _p50(lambda: predictor.predict_samples(sample[None]), warmup, calls),
        "compiled_forward_p50_ms": _p50(compiled, warmup, calls),
    }


def throughput(predictor, samples, repeats=2) -> dict:
    predictor.predict_samples(samples[:1024])  # warm
    best = None
    for _ in range(repeats):
        t = time.perf_counter()
        predictor.predict_samples(samples)
        seconds = time.perf_counter() - t
        best = seconds if best is None else min(best, seconds)
    return {"images": len(samples), "seconds": best, "images_per_sec": len(samples) / best}


SERVE_SCRIPT = r"""
import json, os, sys, time, resource
import numpy as np
from cnn_core.predict.inference import load_predictor
from cnn_core.base.runtime import rss_mb
t = time.perf_counter()
predictors = [load_predictor(name) for name in sys.argv[1:]]
load_seconds = time.perf_counter() - t
rng = np.random.default_rng(0)
for p in predictors:
    shape = p.info.raw_shape
    for _ in range(50):
        picture = rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
        p.predict_image(picture)
print("RESULT " + json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                              "rss_mb": rss_mb(os.getpid(), children=False), "load_seconds": load_seconds}))
"""


def serving_process_memory(models) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, *models],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return {
        **json.loads(line[len("RESULT ") :]),
        "models": list(models),
        "what": "fresh process: import TensorFlow, load the Draw and Photo pages' default models, "
        "50 photo-sized predictions each",
    }


def _timings(predictor, picture, samples, calls: int, warmup: int) -> dict:
    """Single-image latency and batch throughput, without TTA and (if the predictor uses it) with."""
    plain = dataclasses.replace(predictor, tta=False)
    block = {
        "precision": predictor.precision,
        "runtime": predictor.runtime,
        "single_image": latency(plain, picture, warmup=warmup, calls=calls),
        "batch": throughput(plain, samples),
    }
    if predictor.tta:
        block["single_image_tta"] = latency(predictor, picture, warmup=warmup, calls=calls)
        block["batch_tta"] = throughput(predictor, samples)
    return block


def measure_model(
    name: str,
    data_dir=None,
    calls: int = CALLS,
    batch_images: int = BATCH_IMAGES,
    datasets: dict | None = None,
    log=print,
) -> dict:
    """Every figure for one shipped model on this machine."""
    from cnn_core.data.datasets import load_dataset
    from cnn_core.predict.inference import load_predictor, tta_label

    predictor = load_predictor(name)  # the inference default precision
    dataset = predictor.info.name
    datasets = {} if datasets is None else datasets
    if dataset not in datasets:
        datasets[dataset] = load_dataset(dataset, data_dir)
    data = datasets[dataset]
    samples = data.x_test[:batch_images]
    picture = test_picture(dataset, data)
    warmup = min(WARMUP, calls)
    trained_in = trained_precision(predictor.card)
    entry = {
        "dataset": dataset,
        "picture": _describe(picture),
        "params": int(predictor.model.count_params()),
        "card_tta": predictor.tta,
        "trained_precision": trained_in,
        **_timings(predictor, picture, samples, calls, warmup),
        "single_image_breakdown": breakdown(
            dataclasses.replace(predictor, tta=False), picture, warmup=warmup, calls=calls
        ),
    }
    log(
        f"{name:20} {entry['precision']}: p50 {entry['single_image']['p50_ms']:.2f} ms"
        + (
            f", {tta_label(predictor.tta, predictor.info)} TTA {entry['single_image_tta']['p50_ms']:.2f} ms"
            if predictor.tta
            else ""
        )
    )
    if trained_in == "bf16" and predictor.precision != "bf16":
        entry["bf16"] = _timings(load_predictor(name, precision="bf16"), picture, samples, calls, warmup)
        log(
            f"{name:20} bf16: p50 {entry['bf16']['single_image']['p50_ms']:.2f} ms"
            + (
                f", {tta_label(predictor.tta, predictor.info)} TTA {entry['bf16']['single_image_tta']['p50_ms']:.2f} ms"
                if predictor.tta
                else ""
            )
        )
    return entry


def run(models=None, data_dir=None, calls=CALLS, batch_images=BATCH_IMAGES, command=None, log=print) -> dict:
    """This machine's entry: every shipped model (or `models`), the pages' defaults marked."""
    from cnn_core.base.runtime import git_commit, library_versions, now_iso, rss_mb

    defaults = page_defaults()
    models = list(models or shipped_models())
    load_before = os.getloadavg()[0]
    memory = serving_process_memory(sorted(set(defaults.values())))  # first, before this process grows
    datasets: dict = {}
    results = {name: measure_model(name, data_dir, calls, batch_images, datasets, log) for name in models}
    return {
        "machine": _machines.this_machine(),
        "command": command or "python -m benchmarks.inference",
        "git_commit": git_commit(),
        "versions": library_versions(),
        "created": now_iso(),
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "goals": GOALS,
        "page_defaults": defaults,
        "models": results,
        "memory": {
            "serving_process": memory,
            "benchmark_process": {
                "peak_rss_mb": _peak_rss_mb(),
                "rss_mb": rss_mb(os.getpid(), children=False),
                "what": "this process: every model measured, their test sets, batch predictions",
            },
        },
    }


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)


def _validate_timings(block: dict, card_tta: bool, where: str) -> None:
    _machines.need(block.get("precision") in ("fp32", "bf16"), f"{where}.precision", "must be 'fp32' or 'bf16'")
    _machines.need(
        isinstance(block.get("runtime"), str) and block["runtime"],
        f"{where}.runtime",
        "must name what ran the predictions (litert, keras)",
    )
    for part in ("single_image", "batch") + (("single_image_tta", "batch_tta") if card_tta else ()):
        b = block.get(part)
        pw = f"{where}.{part}"
        _machines.need(isinstance(b, dict), pw, "missing")
        if part.startswith("single"):
            for key in ("p50_ms", "p95_ms", "mean_ms", "min_ms"):
                _machines.need(_number(b.get(key)) and b[key] > 0, f"{pw}.{key}", "must be a positive number")
            _machines.need(b["min_ms"] <= b["p50_ms"] <= b["p95_ms"], pw, "needs min ≤ p50 ≤ p95")
            _machines.need(isinstance(b.get("calls"), int) and b["calls"] >= MIN_CALLS, f"{pw}.calls", "too few calls")
        else:
            _machines.need(isinstance(b.get("images"), int) and b["images"] > 0, f"{pw}.images", "must be > 0")
            _machines.need(_number(b.get("seconds")) and b["seconds"] > 0, f"{pw}.seconds", "must be > 0")
            _machines.need(
                _number(b.get("images_per_sec"))
                and abs(b["images_per_sec"] - b["images"] / b["seconds"]) < 1e-6 * b["images_per_sec"],
                f"{pw}.images_per_sec",
                "must be images / seconds",
            )


def _validate_entry(entry: dict, where: str) -> None:
    for key, kind in {
        "command": str,
        "machine": dict,
        "versions": dict,
        "created": str,
        "models": dict,
        "memory": dict,
        "page_defaults": dict,
    }.items():
        _machines.need(isinstance(entry.get(key), kind), f"{where}.{key}", f"must be {kind.__name__}")
    _machines.need(entry["models"], f"{where}.models", "must not be empty")
    for page in PAGE_DATASETS:
        _machines.need(
            entry["page_defaults"].get(page) in entry["models"],
            f"{where}.page_defaults.{page}",
            "must name a measured model (the 5 ms goal is about the pages' defaults)",
        )
    for name, model in entry["models"].items():
        mw = f"{where}.models.{name}"
        _machines.need(
            isinstance(model.get("card_tta"), int) and model["card_tta"] in (0, 1, 2),
            f"{mw}.card_tta",
            "must be the card's TTA level (0, 1, 2; older results: true or false)",
        )
        _machines.need(
            model.get("trained_precision") in ("fp32", "bf16"), f"{mw}.trained_precision", "must be 'fp32' or 'bf16'"
        )
        _validate_timings(model, model["card_tta"], mw)
        if "bf16" in model:
            _validate_timings(model["bf16"], model["card_tta"], f"{mw}.bf16")
            _machines.need(model["bf16"]["precision"] == "bf16", f"{mw}.bf16.precision", "must be 'bf16'")
        parts = model.get("single_image_breakdown")
        _machines.need(
            isinstance(parts, dict)
            and all(
                _number(parts.get(k)) and parts[k] > 0
                for k in ("preprocess_p50_ms", "forward_p50_ms", "compiled_forward_p50_ms")
            ),
            f"{mw}.single_image_breakdown",
            "needs three positive p50s",
        )
    for proc in ("serving_process", "benchmark_process"):
        block = entry["memory"].get(proc)
        _machines.need(
            isinstance(block, dict) and _number(block.get("peak_rss_mb")) and block["peak_rss_mb"] > 0,
            f"{where}.memory.{proc}.peak_rss_mb",
            "must be a positive number",
        )
        _machines.need(block["rss_mb"] <= block["peak_rss_mb"] + 1, f"{where}.memory.{proc}", "RSS above its peak")


def validate_results(doc: dict) -> None:
    """Raise ValueError unless `doc` is a well-formed inference results document."""
    _machines.validate(doc, BENCHMARK, _validate_entry)


def within_goal(model: dict) -> bool:
    """The issue's goal: p50 per image without TTA within 5 ms."""
    return model["single_image"]["p50_ms"] <= GOALS["p50_ms"]


def _ms(block: dict | None, key="p50_ms") -> str:
    return "–" if block is None else f"{block[key]:.2f} ms"


def render_markdown(doc: dict) -> str:
    lines = [
        "# Inference speed and memory",
        "",
        (
            "Generated by `python -m benchmarks.inference` from `inference.json`. One section per machine "
            "(CPU model | usable cores | speed-relevant CPU flags); timings compare only within a machine."
        ),
        (
            "Latency: `Predictor.predict_image` (picture → 28×28 / 32×32 sample → probabilities), the call the "
            "Draw and Photo pages make; warm, in process, one picture per call. Times are upper bounds when the "
            "machine is shared (see each section's load average)."
        ),
        "",
        f"## The pages' default models against the {GOALS['p50_ms']:.0f} ms p50 goal",
        "",
        (
            "Each page opens with its dataset's most accurate shipped model. The goal is p50 per image without "
            "test-time augmentation; the flip-TTA figure (two forward passes) is beside it. The fastest call shows "
            "what the machine does when nothing else competes for it."
        ),
        "",
        (
            "| machine | page | default model | computes in, runs on | p50 | fastest call | p50 with flip TTA | "
            f"within {GOALS['p50_ms']:.0f} ms p50? |"
        ),
        "|---|---|---|---|---:|---:|---:|---|",
    ]
    for key, entry in _machines.entries(doc):
        for page, name in entry["page_defaults"].items():
            m = entry["models"][name]
            lines.append(
                f"| {_machines.table_cell(key)} | {PAGE_TITLES.get(page, page)} | `{name}` | "
                f"{m['precision']}, {m['runtime']} | "
                f"{_ms(m['single_image'])} | {_ms(m['single_image'], 'min_ms')} | {_ms(m.get('single_image_tta'))} | "
                f"{'yes' if within_goal(m) else 'NO'} |"
            )
    lines.append("")
    for key, entry in _machines.entries(doc):
        lines += _render_machine(key, entry)
    return "\n".join(lines)


def _render_machine(key: str, entry: dict) -> list[str]:
    defaults = {name: PAGE_TITLES.get(page, page) for page, name in entry["page_defaults"].items()}
    load = entry.get("load_average")
    lines = _machines.describe(key, entry) + [
        f"- Command: `{entry['command']}`; commit `{entry.get('git_commit')}`; {entry['created']}; "
        f"TensorFlow {entry['versions'].get('tensorflow')}"
        + (f"; 1-minute load average {load['before']:.1f} → {load['after']:.1f}" if load else "")
    ]
    if entry.get("note"):
        lines.append(f"- {entry['note']}")
    batch_images = {m["batch"]["images"] for m in entry["models"].values()}
    lines += [
        "",
        (
            "| model | page default | trained in | computes in, runs on | params | p50 | p95 | p50 flip TTA | "
            f"p95 flip TTA | batch ({', '.join(f'{n:,}' for n in sorted(batch_images))} test images) | "
            "batch flip TTA |"
        ),
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows_breakdown, rows_bf16 = [], []
    for name, m in entry["models"].items():
        lines.append(
            f"| `{name}` | {defaults.get(name, '')} | {m['trained_precision']} | "
            f"{m['precision']}, {m['runtime']} | "
            f"{m['params']:,} | {_ms(m['single_image'])} | {_ms(m['single_image'], 'p95_ms')} | "
            f"{_ms(m.get('single_image_tta'))} | {_ms(m.get('single_image_tta'), 'p95_ms')} | "
            f"{m['batch']['images_per_sec']:,.0f} images/s | "
            + (f"{m['batch_tta']['images_per_sec']:,.0f} images/s |" if "batch_tta" in m else "– |")
        )
        b = m["single_image_breakdown"]
        rows_breakdown.append(
            f"| `{name}` | {b['preprocess_p50_ms']:.2f} ms | {b['forward_p50_ms']:.2f} ms | "
            f"{b['compiled_forward_p50_ms']:.2f} ms |"
        )
        if "bf16" in m:
            f, h = m, m["bf16"]
            for label, single, batch in (("off", "single_image", "batch"), ("flip", "single_image_tta", "batch_tta")):
                if single in h:
                    rows_bf16.append(
                        f"| `{name}` | {label} | {_ms(f[single])} | {_ms(h[single])} | "
                        f"{h[single]['p50_ms'] / f[single]['p50_ms']:.2f}× | "
                        f"{f[batch]['images_per_sec']:,.0f} | {h[batch]['images_per_sec']:,.0f} images/s |"
                    )
    if rows_bf16:
        lines += [
            "",
            (
                f"Models trained in bfloat16, run in bfloat16 instead of the default ({_default_precision(entry)}) "
                f"on this CPU, through {_bf16_runtime(entry)} (a time ratio above 1× means bfloat16 is slower here):"
            ),
            "",
            (
                f"| model | TTA | p50 {_default_precision(entry)} | p50 bf16 | bf16 / {_default_precision(entry)} | "
                f"batch {_default_precision(entry)} | batch bf16 |"
            ),
            "|---|---|---:|---:|---:|---:|---:|",
            *rows_bf16,
        ]
    lines += [
        "",
        (
            "Where the time of one prediction (TTA off) goes, p50 of each part measured alone (the library "
            "forwards through the runtime named above; bare Keras is the same network in Keras):"
        ),
        "",
        "| model | picture → sample | forward, as the library does it | bare Keras `predict_on_batch` |",
        "|---|---:|---:|---:|",
        *rows_breakdown,
        "",
    ]
    mem = entry["memory"]
    serve = mem["serving_process"]["peak_rss_mb"]
    for name, page in defaults.items():
        m = entry["models"][name]
        lines.append(
            f"- {page} page's default `{name}`: p50 {m['single_image']['p50_ms']:.2f} ms without TTA, "
            f"{'within' if within_goal(m) else 'NOT within'} the {GOALS['p50_ms']:.0f} ms goal"
            + (f" (flip TTA: {m['single_image_tta']['p50_ms']:.2f} ms)." if "single_image_tta" in m else ".")
        )
    lines += [
        (
            f"- Memory goal ≤ {GOALS['rss_mb']:.0f} MB for both pages' models plus TensorFlow: "
            f"{'met' if serve <= GOALS['rss_mb'] else 'NOT met'} — peak RSS {serve:.0f} MB "
            f"({mem['serving_process']['what']}; loading took {mem['serving_process']['load_seconds']:.1f} s)."
        ),
        (
            f"- This benchmark's own process ({mem['benchmark_process']['what']}) peaked at "
            f"{mem['benchmark_process']['peak_rss_mb']:.0f} MB."
        ),
        "",
    ]
    worst = max(defaults, key=lambda n: entry["models"][n]["single_image"]["p50_ms"])
    b = entry["models"][worst]["single_image_breakdown"]
    forward, bare = b["forward_p50_ms"], b["compiled_forward_p50_ms"]
    runtime = entry["models"][worst]["runtime"]
    if abs(forward - bare) <= 0.15 * bare:
        compared = "so the library adds little"
    else:
        compared = f"so the library's forward through {runtime} is {bare / forward:.1f}× as fast as Keras'"
    lines += [
        (
            f"What limits latency: for `{worst}`, the slower page default, turning the picture into a sample takes "
            f"{b['preprocess_p50_ms']:.1f} ms and the forward pass {forward:.1f} ms (bare Keras "
            f"`predict_on_batch`: {bare:.1f} ms, {compared})."
        ),
        "",
    ]
    return lines


def _bf16_runtime(entry: dict) -> str:
    return "/".join(sorted({m["bf16"]["runtime"] for m in entry["models"].values() if "bf16" in m}))


def _default_precision(entry: dict) -> str:
    """What the models without a bf16 block computed in: the inference default of that run."""
    found = {m["precision"] for m in entry["models"].values() if "bf16" in m}
    return "/".join(sorted(found)) or "fp32"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("CNN_DATA_DIR"))
    parser.add_argument(
        "--models",
        nargs="+",
        help="shipped models to measure (default: every one; the pages' defaults are always included)",
    )
    parser.add_argument("--calls", type=int, default=CALLS, help=f"timed calls per latency (at least {MIN_CALLS})")
    parser.add_argument(
        "--batch-images",
        type=int,
        default=BATCH_IMAGES,
        help=f"test images for the throughput (default: the first {BATCH_IMAGES:,})",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.calls < MIN_CALLS:
        parser.error(f"--calls must be at least {MIN_CALLS}")
    from cnn_core.base.runtime import configure_threads

    known = shipped_models()
    unknown = [m for m in args.models or () if m not in known]
    if unknown:
        parser.error(f"not shipped: {', '.join(unknown)} (shipped: {', '.join(known)})")
    configure_threads()
    models = None
    if args.models:  # the pages' defaults stay in: the report is about them
        models = list(dict.fromkeys([*page_defaults().values(), *args.models]))
    command = " ".join(
        ["python -m benchmarks.inference", *map(shlex.quote, argv if argv is not None else sys.argv[1:])]
    )
    previous = _machines.load(args.out / "inference.json", BENCHMARK)
    entry = run(models, args.data_dir, args.calls, args.batch_images, command, log=lambda text: print(text, flush=True))
    doc = _machines.merge(previous, BENCHMARK, entry)
    validate_results(doc)
    _machines.write(args.out, "inference", doc, render_markdown(doc))
    print(render_markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
