"""How well the out-of-distribution warning separates real images from images of other kinds.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.ood [--model NAME ...] [--limit N] [--out DIR]

For every shipped model with an out-of-distribution detector (cnn_core.predict.ood: fitted on training
images and calibrated on its validation split by `python -m cnn_core calibrate` or at the end of
training), it scores:

- its own test set (in-distribution): how often the warning fires, and how accurate the
  model is on the images it flags vs the ones it lets through; for digit models also 1,000 test
  digits enlarged onto the 280×280 canvas and taken through the Draw page's path;
- the test images of the other datasets, turned into this model's input through the same
  preprocessing path an upload takes (MNIST digits and Fashion-MNIST clothes become 32×32
  colour for CIFAR-10, CIFAR-10 photos become 28×28 grey for the others), uniform noise and, for
  digit models, 1,000 scribbles and 1,000 nearly blank canvases (a few specks) drawn on the canvas
  (those the page refuses before the network counts as flagged): how often the warning fires
  (detection rate) and the AUROC of the score. All seeded; none of them is used to fit the detector.

The goal (issue "probe the model"): AUROC >= 0.95 against every kind, at most 2% of the model's
own test images flagged.

Writes benchmarks/results/ood.json and ood.md (the notes below the marker are kept); `--model`
re-measures those models and keeps the other rows of the document there. It holds
rates and AUROCs, no timings, so it is one document for every machine. Each model's row also goes
beside the model, into trained_models/NAME.ood.json (cnn_core.studio.benchmark_figures): the Photo page
shows it from there (`--out` elsewhere, as in smoke tests, leaves trained_models/ alone).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

RESULTS_DIR = HERE / "results"
NOTES_MARKER = "<!-- notes: everything below this line is kept when the script rewrites this file -->"
DATASETS = ("mnist", "fashion_mnist", "cifar10")
NOISE_IMAGES = 1000
CANVAS_IMAGES = 1000  # scribbles, nearly blank canvases and redrawn digits, each
CANVAS = 280  # the Draw page's canvas, in pixels
GOAL_AUROC = 0.95  # issue "probe the model": for every kind of image that is not the model's
GOAL_FLAGGED = 0.02  # ... while at most this share of its own test images is flagged


def _canvas(draw_on, rng) -> np.ndarray:
    """A 280×280 drawing canvas as the Draw page gets it (RGBA, white ink on black) with `draw_on`'s strokes."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 255))
    draw_on(ImageDraw.Draw(img), rng)
    return np.asarray(img)


def _scribble(draw, rng) -> None:
    """3-8 random strokes of 3-6 points each, 8-30 px wide: a tangle, not a digit."""
    for _ in range(rng.integers(3, 9)):
        points = [tuple(int(v) for v in rng.integers(0, CANVAS, 2)) for _ in range(rng.integers(3, 7))]
        draw.line(points, fill=(255, 255, 255, 255), width=int(rng.integers(8, 31)), joint="curve")


def _specks(draw, rng) -> None:
    """1-3 dots of 2-7 px radius anywhere: a canvas touched but not drawn on."""
    for _ in range(rng.integers(1, 4)):
        x, y = (int(v) for v in rng.integers(10, CANVAS - 10, 2))
        r = int(rng.integers(2, 8))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255, 255))


def canvas_samples(canvases: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Canvases through the Draw page's path: (the 28×28 samples, whether the page's own rules already
    refuse each one as blank or painted over before the network sees it)."""
    from cnn_core.data.preprocess import preprocessor, why_no_digit

    prep = preprocessor("mnist")
    samples = np.stack([prep.from_image(c) for c in canvases])
    refused = np.array(
        [why_no_digit(c, s, from_canvas=True) is not None for c, s in zip(canvases, samples, strict=False)]
    )
    return samples, refused


def redrawn_digits(digits: np.ndarray) -> list[np.ndarray]:
    """MNIST digits enlarged onto a 280×280 RGBA canvas, as if drawn there: real digits taking the canvas path."""
    from PIL import Image

    return [
        np.asarray(Image.fromarray(d).resize((CANVAS, CANVAS), Image.Resampling.BILINEAR).convert("RGBA"))
        for d in digits
    ]


def off_distribution_sets(dataset: str, limit: int, rng) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """{label: (samples as the model sees them, which ones the page refuses before the model or None)}:
    the other datasets' test images through the upload path, uniform noise and, for the digit model,
    scribbles and nearly blank canvases through the canvas path. Seeded; none of them fits the detector."""
    from cnn_core.data.datasets import dataset_info, load_dataset
    from cnn_core.predict.ood import through_preprocessing

    sets = {}
    for other in DATASETS:
        if other != dataset:
            x = load_dataset(other).x_test
            sets[f"{other} test images"] = (through_preprocessing(x[rng.permutation(len(x))[:limit]], dataset), None)
    shape = dataset_info(dataset).raw_shape
    sets["uniform noise"] = (rng.integers(0, 256, size=(NOISE_IMAGES, *shape), dtype=np.uint8), None)
    if dataset == "mnist":
        count = min(limit, CANVAS_IMAGES)  # a smoke test's small --limit keeps it quick
        sets["scribbles on the canvas"] = canvas_samples([_canvas(_scribble, rng) for _ in range(count)])
        sets["nearly blank canvases"] = canvas_samples([_canvas(_specks, rng) for _ in range(count)])
    return sets


def score_model(name: str, limit: int, seed: int = 0, test_limit: int | None = None) -> dict:
    from cnn_core.base.store import shipped_store
    from cnn_core.data.datasets import load_dataset
    from cnn_core.predict.inference import load_predictor
    from cnn_core.predict.ood import auroc, typicality

    predictor = load_predictor(name, store=shipped_store())
    card, dataset, detector = predictor.card, predictor.info.name, predictor.detector
    if detector is None:
        raise SystemExit(
            f"{name} has no out-of-distribution detector; run `python -m cnn_core calibrate --model "
            f"{name}` on its run first."
        )
    ood, threshold = card["ood"], detector.threshold
    data = load_dataset(dataset)
    x_test, y_test = data.x_test[:test_limit], data.y_test[:test_limit]  # None: the whole set

    lowest = float(sum(np.log(1 / (len(ref) + 1)) for ref in detector.reference))  # out at every layer

    def scores(samples, refused=None):
        s = typicality(predictor.model, detector, samples, predictor.info)
        return s if refused is None else np.where(refused, lowest, s)  # refused: the strangest possible

    in_scores = scores(x_test)
    flagged = in_scores < threshold
    correct = predictor.predict_samples(x_test).argmax(1) == y_test
    rng = np.random.default_rng(seed)
    in_distribution = {
        "images": len(in_scores),
        "flagged": round(float(flagged.mean()), 4),
        "accuracy_flagged": round(float(correct[flagged].mean()), 4) if flagged.any() else None,
        "accuracy_passed": round(float(correct[~flagged].mean()), 4),
        "median_score": round(float(np.median(in_scores)), 4),
    }
    if dataset == "mnist":
        digits = data.x_test[rng.permutation(len(data.x_test))[: min(limit, CANVAS_IMAGES)]]
        redrawn = scores(*canvas_samples(redrawn_digits(digits)))
        in_distribution["redrawn_on_canvas"] = {
            "images": len(redrawn),
            "flagged": round(float(np.mean(redrawn < threshold)), 4),
        }
    off = {}
    for label, (x, refused) in off_distribution_sets(dataset, limit, rng).items():
        s = scores(x, refused)
        off[label] = {
            "images": len(x),
            "auroc": round(auroc(in_scores, s), 4),
            "flagged": round(float(np.mean(s < threshold)), 4),
            "median_score": round(float(np.median(s)), 4),
        }
        print(
            f"{name:22} vs {label:26} AUROC {off[label]['auroc']:.3f}  flagged {off[label]['flagged']:.1%}", flush=True
        )
    return {
        "model": name,
        "dataset": dataset,
        "score": ood["score"],
        "layers": ood["layers"],
        "threshold": threshold,
        "pass_rate": ood["pass_rate"],
        "calibrated_on": ood["calibrated_on"],
        "fitted_on": ood["fitted_on"],
        "val_flagged": ood["val_flagged"],
        "in_distribution": in_distribution,
        "off_distribution": off,
    }


def validate_results(doc: dict) -> None:
    """Raise ValueError unless `doc` has the shape this script writes."""

    def need(ok, message):
        if not ok:
            raise ValueError(message)

    for key in ("command", "git_commit", "machine", "date", "models"):
        need(key in doc, f"missing '{key}'")
    need(isinstance(doc["models"], list) and doc["models"], "no models")
    for row in doc["models"]:
        need(row.get("dataset") in DATASETS, f"unknown dataset in {row.get('model')}")
        need(row["threshold"] < 0, "the threshold is a sum of log p-values, below 0")
        need(0 < row["pass_rate"] < 1, "pass rate must be a fraction")
        ind = row["in_distribution"]
        need(ind["images"] > 0 and 0 <= ind["flagged"] <= 1, "bad in-distribution block")
        need(row["off_distribution"], "no off-distribution sets")
        for label, block in row["off_distribution"].items():
            need(block["images"] > 0, f"{label}: no images")
            need(0 <= block["auroc"] <= 1 and 0 <= block["flagged"] <= 1, f"{label}: rates must lie in [0, 1]")


def meets_goal(row: dict) -> bool:
    """AUROC >= GOAL_AUROC against every kind and at most GOAL_FLAGGED of the own test images flagged."""
    return row["in_distribution"]["flagged"] <= GOAL_FLAGGED and all(
        b["auroc"] >= GOAL_AUROC for b in row["off_distribution"].values()
    )


def render_markdown(doc: dict) -> str:
    lines = [
        "# Out-of-distribution warning",
        "",
        (
            f"`{doc['command']}`, commit `{doc['git_commit']}`, {doc['date']}. Score: how far the picture's "
            "features lie from the nearest class at every stage of the network (class Gaussians of the training "
            "images' features, Mahalanobis distance per layer, Fisher's method over the layers' p-values against "
            "the validation split; `cnn_core/predict/ood.py`); an image is flagged when it falls below the threshold "
            "that lets 99% of the validation split pass."
        ),
        "",
        (
            f"Goal: AUROC ≥ {GOAL_AUROC} against every kind of image and at most {GOAL_FLAGGED:.0%} of the "
            "model's own test images flagged."
        ),
        "",
        "| model | own test images flagged | lowest AUROC | goal |",
        "|---|---:|---:|---|",
    ]
    lines += [
        f"| {row['model']} | {row['in_distribution']['flagged']:.1%} | "
        f"{min(b['auroc'] for b in row['off_distribution'].values()):.3f} | "
        f"{'met' if meets_goal(row) else 'not met'} |"
        for row in doc["models"]
    ]
    lines.append("")
    for row in doc["models"]:
        ind = row["in_distribution"]
        acc_flagged = f"{ind['accuracy_flagged']:.1%}" if ind["accuracy_flagged"] is not None else "–"
        by = _measured_by(row, doc)
        lines += [
            f"## {row['model']} ({row['dataset']})",
            "",
            *(
                []
                if by["command"] == doc["command"] and by["git_commit"] == doc["git_commit"]
                else [f"- Measured by `{by['command']}`, commit `{by['git_commit']}`, {by['date']}."]
            ),
            (
                f"- Fitted on {row['fitted_on']}; threshold {row['threshold']:.2f}, calibrated on the "
                f"{row['calibrated_on']} so that "
                f"{row['pass_rate']:.0%} pass ({row['val_flagged']:.1%} of them flagged)."
            ),
            (
                f"- Its own test set ({ind['images']:,} images): flagged {ind['flagged']:.1%}; accuracy on flagged "
                f"images {acc_flagged}, on the rest {ind['accuracy_passed']:.1%}."
            ),
            *(
                [
                    (
                        f"- {ind['redrawn_on_canvas']['images']:,} test digits enlarged onto the canvas and taken "
                        f"through the Draw page's path: flagged {ind['redrawn_on_canvas']['flagged']:.1%}."
                    )
                ]
                if "redrawn_on_canvas" in ind
                else []
            ),
            "",
            "| off-distribution images | count | AUROC | flagged at the threshold | median score |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {label} | {b['images']:,} | {b['auroc']:.3f} | {b['flagged']:.1%} | {b['median_score']:.3f} |"
            for label, b in row["off_distribution"].items()
        ]
        lines.append("")
    return "\n".join(lines) + "\n" + NOTES_MARKER + "\n"


def write_markdown(md_path: Path, doc: dict) -> Path:
    """The document as Markdown, keeping whatever the file had below the notes marker."""
    text = md_path.read_text() if md_path.is_file() else ""
    notes = text.split(NOTES_MARKER, 1)[1] if NOTES_MARKER in text else ""
    # The kept notes start with the newline that ended the marker's line: not a second one per rewrite.
    md_path.write_text((render_markdown(doc).removesuffix("\n") if notes else render_markdown(doc)) + notes)
    return md_path


def main(argv=None):
    from cnn_core.base.runtime import git_commit, import_tensorflow_quietly, machine_info
    from cnn_core.base.store import shipped_store
    from cnn_core.predict.ood import SCORE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="shipped model (default: every calibrated one)")
    parser.add_argument("--limit", type=int, default=5000, help="off-distribution images per other dataset")
    parser.add_argument(
        "--test-limit",
        type=int,
        help="score the first N of the model's own test images (default: all; for smoke tests)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    import_tensorflow_quietly()
    store = shipped_store()
    names = args.model or [n for n in store.names() if (store.load_card(n).get("ood") or {}).get("score") == SCORE]
    source = {
        "command": " ".join(["python -m benchmarks.ood", *(argv if argv is not None else sys.argv[1:])]),
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    rows = [{**score_model(n, args.limit, test_limit=args.test_limit), "measured_by": source} for n in names]
    result = args.out / "ood.json"
    doc = {**source, "machine": machine_info(), "models": merged_rows(result, rows)}
    validate_results(doc)
    args.out.mkdir(parents=True, exist_ok=True)
    result.write_text(json.dumps(doc, indent=2))
    md_path = write_markdown(result.with_suffix(".md"), doc)
    print(f"Wrote {result} and {md_path}")
    if args.out.resolve() == RESULTS_DIR.resolve():
        for path in write_beside_models(doc):
            print(f"Wrote {path}")


def merged_rows(previous_path: Path, rows: list[dict]) -> list[dict]:
    """This run's rows plus the rows of a previous document at `previous_path` for the models not
    measured now (still shipped, calibrated as they were), in model-name order: a run for one new
    model leaves the others' figures in place. Each row keeps the command that measured it."""
    from cnn_core.base.store import shipped_store

    measured = {row["model"] for row in rows}
    kept = []
    if previous_path.is_file():
        previous = json.loads(previous_path.read_text())
        store = shipped_store()
        for row in previous.get("models", []):
            if row["model"] in measured or row["model"] not in store.names():
                continue
            if (store.load_card(row["model"]).get("ood") or {}).get("threshold") != row["threshold"]:
                continue  # calibrated anew since: its old figures no longer apply
            kept.append(
                {
                    **row,
                    "measured_by": row.get("measured_by")
                    or {key: previous[key] for key in ("command", "git_commit", "date")},
                }
            )
    return sorted(rows + kept, key=lambda row: row["model"])


def _measured_by(row: dict, doc: dict) -> dict:
    return row.get("measured_by") or {key: doc[key] for key in ("command", "git_commit", "date")}


def write_beside_models(doc: dict, store=None) -> list[Path]:
    """Every model's row into NAME.ood.json beside the model (the shipped store by default)."""
    from cnn_core.base.store import SHIPPED_DIR, ModelStore
    from cnn_core.studio.benchmark_figures import write_ood_figures

    store = store or ModelStore(SHIPPED_DIR, "shipped", writable=True)  # the app reads it read-only
    return [
        write_ood_figures({k: v for k, v in row.items() if k != "measured_by"}, _measured_by(row, doc), store)
        for row in doc["models"]
    ]


if __name__ == "__main__":
    main()
