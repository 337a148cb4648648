"""What test-time augmentation and small ensembles buy, measured on the test sets.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.tta_ensembles
    python -m benchmarks.tta_ensembles --models mnist_fast30 mnist_seed --limit 500 --out /tmp/x   # smoke

Evaluates every shipped model (or those named) at each TTA level up to its card's (off and level 1
at least; digits, whose views are shifts alone, at every level), and every ensemble of two or more
of them of one dataset (at the first member's card level, as the pages and `python -m cnn_core
evaluate --model A --model B` do): each model's probabilities are predicted once per level and
averaged for the ensembles. Writes benchmarks/results/tta_ensembles.json and .md; the Compare page
shows the JSON's rows. Accuracy and loss do not depend on the machine and sit at the top of the
document; the seconds each evaluation took do, and are kept per machine (`benchmarks/_machines.py`)
so another CPU's timings are added beside these.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

from benchmarks import _machines

HERE = Path(__file__).resolve().parent

BENCHMARK = "tta_ensembles"


def row_label(row: dict) -> str:
    """One row's name, for its timings: 'cifar10: cifar10_fast + cifar10_wide40, TTA flip'."""
    from cnn_core.predict.inference import tta_label

    return f"{row['dataset']}: {' + '.join(row['models'])}, TTA {tta_label(row['tta'], row['dataset'])}"


def _labels(row: dict) -> tuple[str, str]:
    """The row's label and the one runs before TTA levels keyed its seconds by ('TTA on'/'off')."""
    old = f"{row['dataset']}: {' + '.join(row['models'])}, TTA {'on' if row['tta'] else 'off'}"
    from cnn_core.data.datasets import dataset_info

    flip_or_off = row["tta"] == 0 or (row["tta"] == 1 and dataset_info(row["dataset"]).mirrorable)
    return row_label(row), old if flip_or_off else row_label(row)


def levels_for(card: dict) -> range:
    """The TTA levels measured for one model alone: off and level 1 always, and every level up to the
    one its card was measured with; every level for digits, whose shift-only views are cheap."""
    from cnn_core.data.datasets import dataset_info
    from cnn_core.predict.inference import TTA_LEVELS, tta_level

    if not dataset_info(card["dataset"]).mirrorable:
        return range(len(TTA_LEVELS))
    return range(max(1, tta_level(card.get("tta"))) + 1)


class _Probabilities:
    """Each model's test-set probabilities per TTA level, predicted once (through the same
    `Predictor` the CLI's `evaluate` and the pages use) and reused by every ensemble: an
    ensemble's probabilities are its members' averaged (`Predictor.predict_samples`), so this
    gives what evaluating the ensemble would, without predicting each member again."""

    def __init__(self, samples):
        from cnn_core.predict.inference import load_predictor

        self.samples, self.load, self.cache, self.seconds, self.loaded = samples, load_predictor, {}, {}, {}

    def predictor(self, name: str):
        if name not in self.loaded:
            self.loaded[name] = self.load(name)
        return self.loaded[name]

    def __call__(self, name: str, level: int):
        from cnn_core.predict.inference import ensemble_of

        if (name, level) not in self.cache:
            predictor = ensemble_of([self.predictor(name)], tta=level)
            t0 = time.perf_counter()
            self.cache[name, level] = predictor.predict_samples(self.samples)
            self.seconds[name, level] = time.perf_counter() - t0
        return self.cache[name, level]


def measure(names: list[str], data_dir: str | None, limit: int | None, log=print) -> tuple[list[dict], dict, int]:
    """(accuracy rows, prediction seconds per row label, test images per dataset)."""
    import numpy as np

    from cnn_core.analysis.evaluation import cross_entropy
    from cnn_core.base.store import shipped_store
    from cnn_core.data.datasets import load_dataset
    from cnn_core.predict.inference import tta_label

    store = shipped_store()
    by_dataset: dict[str, list[str]] = {}
    for name in names:
        by_dataset.setdefault(store.load_card(name)["dataset"], []).append(name)
    rows, seconds, sizes = [], {}, set()
    for dataset, members in sorted(by_dataset.items()):
        data = load_dataset(dataset, data_dir)
        x, y = (data.x_test[:limit], data.y_test[:limit]) if limit else (data.x_test, data.y_test)
        sizes.add(len(y))
        probabilities = _Probabilities(x)
        # Alone at each level; together (two or more) at the first member's level, as `load_ensemble` does.
        combos = [([n], level) for n in members for level in levels_for(store.load_card(n))]
        combos += [(list(c), None) for k in range(2, len(members) + 1) for c in itertools.combinations(members, k)]
        for combo, level in combos:
            level = probabilities.predictor(combo[0]).tta if level is None else level
            probs = np.mean([probabilities(m, level) for m in combo], axis=0)
            row = {
                "dataset": dataset,
                "models": combo,
                "tta": level,
                "accuracy": float(np.mean(probs.argmax(axis=1) == y)),
                "loss": cross_entropy(probs, y),
            }
            rows.append(row)
            seconds[row_label(row)] = round(sum(probabilities.seconds[m, level] for m in combo), 2)
            log(f"{dataset:14} {'+'.join(combo):60} TTA {tta_label(level, dataset):26} {row['accuracy']:.2%}")
    return rows, seconds, min(sizes)


def _validate_entry(entry: dict, where: str) -> None:
    for key in ("command", "git_commit", "date", "evaluation_seconds"):
        _machines.need(key in entry, where, f"missing '{key}'")
    _machines.need(
        entry["evaluation_seconds"] and all(v > 0 for v in entry["evaluation_seconds"].values()),
        f"{where}.evaluation_seconds",
        "needs positive seconds per evaluation",
    )


def validate_results(doc: dict) -> None:
    """Raise ValueError unless `doc` is a well-formed TTA/ensembles document."""
    for key in ("command", "git_commit", "date", "test_size", "rows"):
        _machines.need(key in doc, BENCHMARK, f"missing '{key}'")
    _machines.need(isinstance(doc["rows"], list) and doc["rows"], f"{BENCHMARK}.rows", "no rows")
    for row in doc["rows"]:
        _machines.need(
            0 <= row["accuracy"] <= 1 and row["loss"] >= 0,
            f"{BENCHMARK}.rows[{row_label(row)}]",
            "accuracy must lie in [0, 1] and loss be ≥ 0",
        )
    _machines.validate(doc, BENCHMARK, _validate_entry)


def render_markdown(doc: dict) -> str:
    from cnn_core.predict.inference import tta_label

    machines = list(_machines.entries(doc))
    lines = [
        "# Test-time augmentation and ensembles",
        "",
        f"`{doc['command']}`, commit {doc['git_commit']}, {doc['date']}; the first {doc['test_size']:,} images "
        "of each test set" + (" (the whole set)." if doc["test_size"] == 10_000 else "."),
        "",
        "| dataset | models | TTA | test accuracy | loss |"
        + "".join(f" seconds, machine {i + 1} |" for i in range(len(machines))),
        "|---|---|---|---|---|" + "---:|" * len(machines),
    ]
    for row in doc["rows"]:
        times = [
            next((entry["evaluation_seconds"][k] for k in _labels(row) if k in entry["evaluation_seconds"]), None)
            for _, entry in machines
        ]
        lines.append(
            f"| {row['dataset']} | {' + '.join(row['models'])} | {tta_label(row['tta'], row['dataset'])} | "
            f"{row['accuracy']:.2%} | {row['loss']:.4f} |"
            + "".join(" – |" if t is None else f" {t:.2f} |" for t in times)
        )
    lines += [
        "",
        (
            "Seconds of prediction over the test images (a model alone: its own; an ensemble: the sum of "
            "its members' at that level) compare only within one machine's column:"
        ),
        "",
    ]
    for i, (key, entry) in enumerate(machines):
        lines.append(
            f"- machine {i + 1}: `{key}`, timed by `{entry['command']}` (commit {entry['git_commit']}, "
            f"{entry['date']})"
            + (f"; flags {entry['machine']['flags_source']}" if entry["machine"].get("flags_source") else "")
            + (
                ""
                if entry.get("timing") == "prediction"
                else "; timed before the cached predictions: each row's whole evaluation, the report included"
            )
            + "."
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", help="shipped models to evaluate and combine (default: all)")
    parser.add_argument("--limit", type=int, help="the first N test images of each set (default: all)")
    parser.add_argument("--data-dir", default=os.environ.get("CNN_DATA_DIR"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)

    from cnn_core.base.runtime import git_commit, import_tensorflow_quietly
    from cnn_core.base.store import shipped_store

    shipped = shipped_store().names()
    unknown = [m for m in args.models or () if m not in shipped]
    if unknown:
        parser.error(f"not shipped: {', '.join(unknown)} (shipped: {', '.join(shipped)})")
    import_tensorflow_quietly()
    previous = _machines.load(args.out / f"{BENCHMARK}.json", BENCHMARK)
    command = " ".join(["python -m benchmarks.tta_ensembles", *(argv if argv is not None else sys.argv[1:])])
    rows, seconds, test_size = measure(
        args.models or shipped, args.data_dir, args.limit, log=lambda text: print(text, flush=True)
    )
    date, commit = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), git_commit()
    entry = {
        "machine": _machines.this_machine(),
        "command": command,
        "git_commit": commit,
        "date": date,
        "evaluation_seconds": seconds,
        "timing": "prediction",
    }
    doc = _machines.merge(
        previous,
        BENCHMARK,
        entry,
        shared={"command": command, "git_commit": commit, "date": date, "test_size": test_size, "rows": rows},
    )
    validate_results(doc)
    _machines.write(args.out, BENCHMARK, doc, render_markdown(doc))
    print(render_markdown(doc))
    if args.out.resolve() == (HERE / "results").resolve():  # a smoke run (--out elsewhere) leaves the models alone
        for path in write_beside_models(doc):
            print(f"Wrote {path}")
    return 0


def write_beside_models(doc: dict, store=None) -> list:
    """Each dataset's rows into DATASET.tta_ensembles.json beside the shipped models: what the
    Compare page shows (the app never reads benchmarks/)."""
    from cnn_core.base.store import SHIPPED_DIR, ModelStore
    from cnn_core.studio.benchmark_figures import write_ensemble_figures

    store = store or ModelStore(SHIPPED_DIR, "shipped", writable=True)  # the app reads it read-only
    source = {key: doc[key] for key in ("command", "git_commit", "date", "test_size")}
    datasets = sorted({row["dataset"] for row in doc["rows"]})
    return [
        write_ensemble_figures(
            dataset,
            [
                {key: row[key] for key in ("models", "tta", "accuracy", "loss")}
                for row in doc["rows"]
                if row["dataset"] == dataset
            ],
            source,
            store,
        )
        for dataset in datasets
    ]


if __name__ == "__main__":
    sys.exit(main())
