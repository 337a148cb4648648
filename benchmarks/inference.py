"""Inference speed and memory of the shipped models, through the functions the app calls.

    CNN_DATA_DIR=../shared/datasets python benchmarks/inference.py

- Single-image latency, warm, in process: `Predictor.predict_image` (what the Photo and
  Draw pages call: picture → the sample the network sees → probabilities), p50/p95 over
  many calls after a warm-up; without TTA, and for the photo model with its flip TTA too.
- Batch throughput: `Predictor.predict_samples` on the whole test set.
- Memory: peak RSS of a fresh process that loads both models and serves single-image
  predictions (what an app process holds), and of this benchmark process (which also
  holds both test sets and ran the batch predictions).

Writes `benchmarks/results/inference.{json,md}`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS_DIR = REPO / "benchmarks" / "results"
SCHEMA_VERSION = 1
MODELS = ("mnist_fast30", "cifar10_wide40")  # what the Draw and Photo pages open with
GOALS = {"p50_ms": 5.0, "rss_mb": 1200.0}
WARMUP, CALLS = 30, 300


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def test_picture(dataset: str, data):
    """A picture like the app receives: a 280×280 RGBA canvas drawing for digits, an
    uploaded photo file's decoded image for CIFAR-10."""
    import numpy as np
    from PIL import Image

    if dataset == "mnist":
        digit = Image.fromarray(data.x_test[0]).resize((280, 280), Image.NEAREST)
        grey = np.asarray(digit)
        return np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    from cnn_core.preprocess import load_image

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
    return {"calls": calls, "warmup_calls": warmup, "p50_ms": float(np.percentile(times, 50)),
            "p95_ms": float(np.percentile(times, 95)), "mean_ms": float(times.mean()),
            "min_ms": float(times.min())}


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

    from cnn_core.preprocess import to_model_input

    sample = predictor.sample_from_image(picture)
    x = to_model_input(sample[None], predictor.info)

    def compiled():
        probs = predictor.model.predict_on_batch(x)
        if predictor.tta:
            probs = (probs + predictor.model.predict_on_batch(x[:, :, ::-1, :])) / 2.0
        return np.asarray(probs)

    np.testing.assert_allclose(compiled(), predictor.predict_samples(sample[None]), atol=1e-4)
    return {"preprocess_p50_ms": _p50(lambda: predictor.sample_from_image(picture), warmup, calls),
            "forward_p50_ms": _p50(lambda: predictor.predict_samples(sample[None]), warmup, calls),
            "compiled_forward_p50_ms": _p50(compiled, warmup, calls)}


def throughput(predictor, samples, repeats=2) -> dict:
    predictor.predict_samples(samples[:1024])  # warm
    best = None
    for _ in range(repeats):
        t = time.perf_counter()
        predictor.predict_samples(samples)
        seconds = time.perf_counter() - t
        best = seconds if best is None else min(best, seconds)
    return {"images": int(len(samples)), "seconds": best, "images_per_sec": len(samples) / best}


SERVE_SCRIPT = r"""
import json, sys, time, resource
sys.path.insert(0, sys.argv[1])
import numpy as np
from cnn_core.inference import load_predictor
t = time.perf_counter()
predictors = [load_predictor(name) for name in sys.argv[2:]]
load_seconds = time.perf_counter() - t
rng = np.random.default_rng(0)
for p in predictors:
    shape = p.info.raw_shape
    for _ in range(50):
        picture = rng.integers(0, 256, size=(96, 96, 3), dtype=np.uint8)
        p.predict_image(picture)
rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS:")][0].split()[1]
print("RESULT " + json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                              "rss_mb": int(rss) / 1024.0, "load_seconds": load_seconds}))
"""


def serving_process_memory(models) -> dict:
    proc = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, str(REPO), *models], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return {**json.loads(line[len("RESULT "):]), "models": list(models),
            "what": "fresh process: import TensorFlow, load both models, 50 photo-sized predictions each"}


def run(models=MODELS, data_dir=None, calls=CALLS) -> dict:
    from cnn_core.datasets import load_dataset
    from cnn_core.inference import load_predictor
    from cnn_core.runtime import git_commit, library_versions, machine_info, now_iso

    memory = serving_process_memory(models)  # first, before this process grows
    results = {}
    for name in models:
        predictor = load_predictor(name)
        data = load_dataset(predictor.info.name, data_dir)
        plain = dataclasses.replace(predictor, tta=False)
        picture = test_picture(predictor.info.name, data)
        entry = {"dataset": predictor.info.name, "picture": _describe(picture), "params": int(predictor.model.count_params()),
                 "card_tta": predictor.tta,
                 "single_image": latency(plain, picture, calls=calls),
                 "single_image_breakdown": breakdown(plain, picture, calls=calls),
                 "batch": throughput(plain, data.x_test)}
        if predictor.tta:
            entry["single_image_tta"] = latency(predictor, picture, calls=calls)
            entry["batch_tta"] = throughput(predictor, data.x_test)
        results[name] = entry
    return {"schema_version": SCHEMA_VERSION, "benchmark": "inference",
            "command": " ".join(["python benchmarks/inference.py", *map(shlex.quote, sys.argv[1:])]),
            "git_commit": git_commit(), "machine": machine_info(), "versions": library_versions(),
            "created": now_iso(), "goals": GOALS, "models": results,
            "memory": {"serving_process": memory,
                       "benchmark_process": {"peak_rss_mb": _peak_rss_mb(), "rss_mb": _current_rss_mb(),
                                             "what": "this process: both models, both test sets, batch "
                                                     "predictions of 10,000 images"}}}


def validate_results(doc: dict) -> None:
    """Raise ValueError unless `doc` is a well-formed inference results document."""
    def need(ok, where, message):
        if not ok:
            raise ValueError(f"{where}: {message}")

    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v

    for key, kind in {"schema_version": int, "benchmark": str, "command": str, "machine": dict,
                      "versions": dict, "created": str, "models": dict, "memory": dict}.items():
        need(isinstance(doc.get(key), kind), f"inference.{key}", f"must be {kind.__name__}")
    need(doc["schema_version"] == SCHEMA_VERSION and doc["benchmark"] == "inference", "inference", "wrong kind")
    need(set(doc["models"]) == set(MODELS), "inference.models", f"must hold exactly {', '.join(MODELS)}")
    for name, entry in doc["models"].items():
        for part in ("single_image", "batch") + (("single_image_tta", "batch_tta") if entry.get("card_tta") else ()):
            block = entry.get(part)
            where = f"inference.models.{name}.{part}"
            need(isinstance(block, dict), where, "missing")
            if part.startswith("single"):
                for key in ("p50_ms", "p95_ms", "mean_ms", "min_ms"):
                    need(number(block.get(key)) and block[key] > 0, f"{where}.{key}", "must be a positive number")
                need(block["min_ms"] <= block["p50_ms"] <= block["p95_ms"], where, "needs min ≤ p50 ≤ p95")
                need(isinstance(block.get("calls"), int) and block["calls"] >= 20, f"{where}.calls", "too few calls")
            else:
                need(isinstance(block.get("images"), int) and block["images"] > 0, f"{where}.images", "must be > 0")
                need(number(block.get("seconds")) and block["seconds"] > 0, f"{where}.seconds", "must be > 0")
                need(abs(block["images_per_sec"] - block["images"] / block["seconds"]) < 1e-6 * block["images_per_sec"],
                     f"{where}.images_per_sec", "must be images / seconds")
        parts = entry.get("single_image_breakdown")
        need(isinstance(parts, dict) and all(number(parts.get(k)) and parts[k] > 0 for k in
                                             ("preprocess_p50_ms", "forward_p50_ms", "compiled_forward_p50_ms")),
             f"inference.models.{name}.single_image_breakdown", "needs three positive p50s")
    for proc in ("serving_process", "benchmark_process"):
        block = doc["memory"].get(proc)
        need(isinstance(block, dict) and number(block.get("peak_rss_mb")) and block["peak_rss_mb"] > 0,
             f"inference.memory.{proc}.peak_rss_mb", "must be a positive number")
        need(block["rss_mb"] <= block["peak_rss_mb"] + 1, f"inference.memory.{proc}", "RSS above its peak")


def render_markdown(doc: dict) -> str:
    m = doc["machine"]
    mem = doc["memory"]
    lines = ["# Inference speed and memory", "",
             f"- Command: `{doc['command']}`", f"- Commit: `{doc['git_commit']}`",
             f"- Machine: {m['cpu']}, {m['cores']} cores usable; TensorFlow {doc['versions'].get('tensorflow')}",
             "- Latency: `Predictor.predict_image` (picture → 28×28 / 32×32 sample → probabilities), the call "
             "the Draw and Photo pages make; warm, in process, one picture per call.", "",
             "| model | params | TTA | p50 | p95 | mean | batch throughput (10,000 test images) |",
             "|---|---:|---|---:|---:|---:|---:|"]
    rows_breakdown = []
    for name, e in doc["models"].items():
        rows = [("off", e["single_image"], e["batch"])]
        if "single_image_tta" in e:
            rows.append(("flip", e["single_image_tta"], e["batch_tta"]))
        for tta, s, b in rows:
            lines.append(f"| {name} | {e['params']:,} | {tta} | {s['p50_ms']:.2f} ms | {s['p95_ms']:.2f} ms | "
                         f"{s['mean_ms']:.2f} ms | {b['images_per_sec']:,.0f} images/s |")
        b = e["single_image_breakdown"]
        rows_breakdown.append(f"| {name} | {b['preprocess_p50_ms']:.2f} ms | {b['forward_p50_ms']:.2f} ms | "
                              f"{b['compiled_forward_p50_ms']:.2f} ms |")
    lines += ["", "Where the time of one prediction (TTA off) goes, p50 of each part measured alone:", "",
              "| model | picture → sample | forward, as the library does it | "
              "bare Keras `predict_on_batch` |", "|---|---:|---:|---:|", *rows_breakdown]
    p50s = [e["single_image"]["p50_ms"] for e in doc["models"].values()]
    serve = mem["serving_process"]["peak_rss_mb"]
    lines += ["",
              f"- p50 goal ≤ {GOALS['p50_ms']:.0f} ms without TTA: "
              f"{'met' if max(p50s) <= GOALS['p50_ms'] else 'NOT met'} (worst p50 {max(p50s):.2f} ms).",
              f"- Memory goal ≤ {GOALS['rss_mb']:.0f} MB for both models plus TensorFlow: "
              f"{'met' if serve <= GOALS['rss_mb'] else 'NOT met'} — peak RSS {serve:.0f} MB "
              f"({mem['serving_process']['what']}; loading both took {mem['serving_process']['load_seconds']:.1f} s).",
              f"- This benchmark's own process, which also held both test sets and ran the batch predictions, "
              f"peaked at {mem['benchmark_process']['peak_rss_mb']:.0f} MB.", ""]
    worst = max(doc["models"], key=lambda n: doc["models"][n]["single_image"]["p50_ms"])
    b = doc["models"][worst]["single_image_breakdown"]
    lines += [f"What limits latency: for `{worst}`, turning the picture into a sample takes "
              f"{b['preprocess_p50_ms']:.1f} ms and the forward pass {b['forward_p50_ms']:.1f} ms (bare "
              f"`predict_on_batch`: {b['compiled_forward_p50_ms']:.1f} ms, so the library adds little). An eager "
              "`model(x)` call, which the library used before, paid ~10 ms of Keras 3 per-call overhead. "
              "Times are upper bounds when the machine is shared.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("CNN_DATA_DIR"))
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    from cnn_core.runtime import configure_threads
    from cnn_core.store import atomic_write

    configure_threads()
    doc = run(data_dir=args.data_dir, calls=args.calls)
    validate_results(doc)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "inference.json", lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1) + "\n"))
    atomic_write(args.out / "inference.md", lambda tmp: Path(tmp).write_text(render_markdown(doc)))
    print(render_markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
