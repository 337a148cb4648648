"""How well the out-of-distribution warning separates real images from images of other kinds.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.ood [--model NAME ...] [--limit N] [--out DIR]

For every shipped model whose card carries an "ood" calibration (threshold set on its
validation split by `python -m cnn_core calibrate` or at the end of training), it scores:

- its own test set (in-distribution): how often the warning fires, and how accurate the
  model is on the images it flags vs the ones it lets through;
- the test images of the other datasets, turned into this model's input through the same
  preprocessing path an upload takes (MNIST digits and Fashion-MNIST clothes become 32×32
  colour for CIFAR-10, CIFAR-10 photos become 28×28 grey for the others), and uniform noise:
  how often the warning fires (detection rate) and the AUROC of the score.

Writes benchmarks/results/ood.json and ood.md (the notes below the marker are kept); `--model`
re-measures those models and keeps the other rows of the document there. It holds
rates and AUROCs, no timings, so it is one document for every machine. Each model's row also goes
beside the model, into trained_models/NAME.ood.json (cnn_core.benchmark_figures): the Photo page
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


def score_model(name: str, limit: int, seed: int = 0, test_limit: int | None = None) -> dict:
    from cnn_core.datasets import load_dataset
    from cnn_core.inference import load_predictor
    from cnn_core.ood import auroc, max_softmax, through_preprocessing
    from cnn_core.store import shipped_store

    predictor = load_predictor(name, store=shipped_store())
    card, dataset = predictor.card, predictor.info.name
    ood = card.get("ood")
    if not ood:
        raise SystemExit(f"{name} has no out-of-distribution calibration in its card; "
                         f"run `python -m cnn_core calibrate --model {name}` on its run first.")
    threshold = ood["threshold"]
    data = load_dataset(dataset)
    x_test, y_test = data.x_test[:test_limit], data.y_test[:test_limit]  # None: the whole set
    probs = predictor.predict_samples(x_test)
    in_scores = max_softmax(probs)
    flagged = in_scores < threshold
    correct = probs.argmax(1) == y_test
    rng = np.random.default_rng(seed)
    off_sets = {}
    for other in DATASETS:
        if other == dataset:
            continue
        x = load_dataset(other).x_test
        x = x[rng.permutation(len(x))[:limit]]
        off_sets[f"{other} test images"] = through_preprocessing(x, dataset)
    shape = predictor.info.raw_shape
    off_sets["uniform noise"] = rng.integers(0, 256, size=(NOISE_IMAGES, *shape), dtype=np.uint8)
    off = {}
    for label, x in off_sets.items():
        scores = max_softmax(predictor.predict_samples(x))
        off[label] = {"images": int(len(x)), "auroc": round(auroc(in_scores, scores), 4),
                      "flagged": round(float(np.mean(scores < threshold)), 4),
                      "median_score": round(float(np.median(scores)), 4)}
        print(f"{name:20} vs {label:28} AUROC {off[label]['auroc']:.3f}  flagged {off[label]['flagged']:.1%}",
              flush=True)
    return {"model": name, "dataset": dataset, "tta": predictor.tta, "score": ood["score"],
            "threshold": threshold, "pass_rate": ood["pass_rate"], "calibrated_on": ood["calibrated_on"],
            "val_flagged": ood["val_flagged"],
            "in_distribution": {"images": int(len(in_scores)), "flagged": round(float(flagged.mean()), 4),
                                "accuracy_flagged": round(float(correct[flagged].mean()), 4) if flagged.any() else None,
                                "accuracy_passed": round(float(correct[~flagged].mean()), 4),
                                "median_score": round(float(np.median(in_scores)), 4)},
            "off_distribution": off}


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
        need(0 < row["threshold"] < 1, "threshold must be a probability")
        need(0 < row["pass_rate"] < 1, "pass rate must be a fraction")
        ind = row["in_distribution"]
        need(ind["images"] > 0 and 0 <= ind["flagged"] <= 1, "bad in-distribution block")
        need(row["off_distribution"], "no off-distribution sets")
        for label, block in row["off_distribution"].items():
            need(block["images"] > 0, f"{label}: no images")
            need(0 <= block["auroc"] <= 1 and 0 <= block["flagged"] <= 1, f"{label}: rates must lie in [0, 1]")


def render_markdown(doc: dict) -> str:
    lines = ["# Out-of-distribution warning", "",
             f"`{doc['command']}`, commit `{doc['git_commit']}`, {doc['date']}. Score: the top softmax probability "
             "(with the model's TTA); an image is flagged when it falls below the threshold calibrated on the "
             "model's validation split.", ""]
    for row in doc["models"]:
        ind = row["in_distribution"]
        acc_flagged = f"{ind['accuracy_flagged']:.1%}" if ind["accuracy_flagged"] is not None else "–"
        by = _measured_by(row, doc)
        lines += [f"## {row['model']} ({row['dataset']})", "",
                  *([] if by["command"] == doc["command"] and by["git_commit"] == doc["git_commit"] else
                    [f"- Measured by `{by['command']}`, commit `{by['git_commit']}`, {by['date']}."]),
                  f"- Threshold {row['threshold']:.3f}, calibrated on the {row['calibrated_on']} so that "
                  f"{row['pass_rate']:.0%} pass ({row['val_flagged']:.1%} of them flagged).",
                  f"- Its own test set ({ind['images']:,} images): flagged {ind['flagged']:.1%}; accuracy on flagged "
                  f"images {acc_flagged}, on the rest {ind['accuracy_passed']:.1%}.", "",
                  "| off-distribution images | count | AUROC | flagged at the threshold | median score |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {label} | {b['images']:,} | {b['auroc']:.3f} | {b['flagged']:.1%} | {b['median_score']:.3f} |"
                  for label, b in row["off_distribution"].items()]
        lines.append("")
    return "\n".join(lines) + "\n" + NOTES_MARKER + "\n"


def main(argv=None):
    from cnn_core.runtime import git_commit, import_tensorflow_quietly, machine_info
    from cnn_core.store import shipped_store

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="shipped model (default: every calibrated one)")
    parser.add_argument("--limit", type=int, default=5000, help="off-distribution images per other dataset")
    parser.add_argument("--test-limit", type=int, help="score the first N of the model's own test images "
                                                        "(default: all; for smoke tests)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    import_tensorflow_quietly()
    store = shipped_store()
    names = args.model or [n for n in store.names() if store.load_card(n).get("ood")]
    source = {"command": " ".join(["python -m benchmarks.ood", *(argv if argv is not None else sys.argv[1:])]),
              "git_commit": git_commit(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    rows = [{**score_model(n, args.limit, test_limit=args.test_limit), "measured_by": source} for n in names]
    result = args.out / "ood.json"
    doc = {**source, "machine": machine_info(), "models": merged_rows(result, rows)}
    validate_results(doc)
    args.out.mkdir(parents=True, exist_ok=True)
    result.write_text(json.dumps(doc, indent=2))
    md_path = result.with_suffix(".md")
    notes = md_path.read_text().split(NOTES_MARKER, 1)[1] if md_path.is_file() and NOTES_MARKER in md_path.read_text() \
        else ""
    md_path.write_text(render_markdown(doc) + notes)
    print(f"Wrote {result} and {md_path}")
    if args.out.resolve() == RESULTS_DIR.resolve():
        for path in write_beside_models(doc):
            print(f"Wrote {path}")


def merged_rows(previous_path: Path, rows: list[dict]) -> list[dict]:
    """This run's rows plus the rows of a previous document at `previous_path` for the models not
    measured now (still shipped, calibrated as they were), in model-name order: a run for one new
    model leaves the others' figures in place. Each row keeps the command that measured it."""
    from cnn_core.store import shipped_store

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
            kept.append({**row, "measured_by": row.get("measured_by") or
                         {key: previous[key] for key in ("command", "git_commit", "date")}})
    return sorted(rows + kept, key=lambda row: row["model"])


def _measured_by(row: dict, doc: dict) -> dict:
    return row.get("measured_by") or {key: doc[key] for key in ("command", "git_commit", "date")}


def write_beside_models(doc: dict, store=None) -> list[Path]:
    """Every model's row into NAME.ood.json beside the model (the shipped store by default)."""
    from cnn_core.benchmark_figures import write_ood_figures
    from cnn_core.store import SHIPPED_DIR, ModelStore

    store = store or ModelStore(SHIPPED_DIR, "shipped", writable=True)  # the app reads it read-only
    return [write_ood_figures({k: v for k, v in row.items() if k != "measured_by"}, _measured_by(row, doc), store)
            for row in doc["models"]]


if __name__ == "__main__":
    main()
