"""How many of a model's most suspicious test labels are really wrong, as a person judges them.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.label_audit [--model NAME ...] [--top 50] [--out DIR]

For each model (default: the shipped MNIST and CIFAR-10 judges) it takes the model's audit of its test set
(`python -m cnn_core labels --model NAME`, computed here if it is missing), draws the `--top` most disputed
images as a contact sheet (rank, test-set index, given label → the model's answer), and counts the verdicts a
person gave them in trained_models/label_verdicts.json: "label" (the label is wrong), "model" (the model is
wrong), "unsure" (ambiguous: both fit, or neither). Writes benchmarks/results/label_audit.{json,md} and one
PNG per model. Published audits for comparison (Northcutt, Athalye & Mueller, "Pervasive label errors in test
sets", NeurIPS 2021 datasets track): about 15 label errors in the MNIST test set and about 54 in CIFAR-10's.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from cnn_core.studio.label_issues import VERDICTS, load_audit, load_verdicts, tally

OUT = Path(__file__).resolve().parent / "results"
DEFAULT_MODELS = ("mnist_fast30", "cifar10_airbench18_s2")
PUBLISHED = {"mnist": 15, "cifar10": 54}  # Northcutt et al. 2021, label errors found in the test set
COLUMNS = 10


def audit_of(name: str) -> dict:
    """The model's saved test-set audit, or a new one (not saved: the CLI saves audits)."""
    audit = load_audit("test", model=name)
    if audit is None:
        from cnn_core.data.datasets import load_dataset
        from cnn_core.predict.inference import load_predictor
        from cnn_core.studio.label_issues import test_audit

        predictor = load_predictor(name, calibrated=True)
        audit = test_audit(predictor, load_dataset(predictor.info.name))
    return audit


def contact_sheet(audit: dict, x_test, top: int, verdicts: dict[int, str], path: Path) -> None:
    """The `top` most disputed images in a grid: rank, #index, given → model's answer, verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnn_core.data.datasets import dataset_info

    names = dataset_info(audit["dataset"]).class_names
    rows = math.ceil(top / COLUMNS)
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(COLUMNS * 1.6, rows * 1.95))
    for ax in axes.flat:
        ax.axis("off")
    for rank, (ax, row) in enumerate(zip(axes.flat, audit["suspects"][:top], strict=False), 1):
        ax.imshow(x_test[row["index"]], cmap="gray" if x_test.ndim == 3 else None, interpolation="nearest")
        verdict = verdicts.get(row["index"])
        ax.set_title(
            f"{rank}. #{row['index']}{' *' if row['flagged'] else ''}\n{names[row['given']][:9]}"
            f" → {names[row['suggested']][:9]}\n{'' if verdict is None else verdict}",
            fontsize=7,
            color={"label": "#c00", "model": "#06c"}.get(verdict, "#000"),
        )
    fig.suptitle(
        f"{audit['dataset']} test set, judged by {audit['judged_by']}: the {top} most disputed labels "
        "(given → model's answer; * = flagged by confident learning)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def audit_row(name: str, top: int, out: Path) -> dict:
    from cnn_core.data.datasets import load_dataset

    audit = audit_of(name)
    verdicts = load_verdicts(audit["dataset"], "test")
    counts = tally(audit["suspects"], verdicts, top)
    picture = out / f"label_audit_{audit['dataset']}.png"
    contact_sheet(audit, load_dataset(audit["dataset"]).x_test, top, verdicts, picture)
    print(f"Wrote {picture}")
    return {
        "model": name,
        "dataset": audit["dataset"],
        "top": top,
        "heldout_accuracy": audit["heldout_accuracy"],
        "disputed": audit["disputed"],
        "flagged": audit["flagged"],
        "estimated_label_errors": audit["estimated_label_errors"],
        "verdicts": counts,
        "flagged_in_top": sum(r["flagged"] for r in audit["suspects"][:top]),
        "published_label_errors": PUBLISHED.get(audit["dataset"]),
        "contact_sheet": picture.name,
        "judged": {str(r["index"]): verdicts[r["index"]] for r in audit["suspects"][:top] if r["index"] in verdicts},
    }


def markdown(doc: dict) -> str:
    lines = [
        "# Suspicious test labels: how many of the top are real label errors",
        "",
        (
            f"`{doc['command']}` at commit {doc['git_commit']}, {doc['date']}. Verdicts: a person looking at each "
            "image (trained_models/label_verdicts.json). The ranking is by the probability the calibrated model "
            "gives the given label; * = flagged by confident learning."
        ),
        "",
        (
            "| model | top | the label is wrong | the model is wrong | ambiguous | not judged | CL-flagged in top "
            "| CL estimate (whole test set) | published audit |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["models"]:
        v = r["verdicts"]
        lines.append(
            f"| {r['model']} ({r['heldout_accuracy']:.2%}) | {r['top']} | {v['label']} | {v['model']} | "
            f"{v['unsure']} | {v['not judged']} | {r['flagged_in_top']} | {r['estimated_label_errors']} | "
            f"{r['published_label_errors'] or '—'} |"
        )
    lines += ["", *[f"![{r['dataset']}]({r['contact_sheet']})" for r in doc["models"]], ""]
    return "\n".join(lines)


def validate_results(doc: dict) -> None:
    """Raise ValueError unless `doc` has the shape this script writes."""
    for key in ("command", "git_commit", "date", "models"):
        if key not in doc:
            raise ValueError(f"missing '{key}'")
    for row in doc["models"]:
        if sum(row["verdicts"].values()) != row["top"] or set(row["verdicts"]) != {*VERDICTS, "not judged"}:
            raise ValueError(f"{row['model']}: the verdicts must count each of the top {row['top']} once")
        if not 0 <= row["flagged_in_top"] <= row["top"] or not 0 < row["heldout_accuracy"] <= 1:
            raise ValueError(f"{row['model']}: figures out of range")


def main(argv=None) -> None:
    import sys

    from cnn_core.base.runtime import git_commit, now_iso

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="a model whose test-set audit to count (repeat)")
    parser.add_argument("--top", type=int, default=50)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "label_audit",
        "command": "python -m benchmarks.label_audit " + " ".join(argv or sys.argv[1:]),
        "git_commit": git_commit(),
        "date": now_iso(),
        "models": [audit_row(name, args.top, args.out) for name in args.model or DEFAULT_MODELS],
    }
    validate_results(doc)
    (args.out / "label_audit.json").write_text(json.dumps(doc, indent=1))
    (args.out / "label_audit.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
