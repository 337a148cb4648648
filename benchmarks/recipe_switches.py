"""What each of the original notebook's "improvements to try" buys: the seed recipe trained on one
short schedule with every switch of cnn_core.train.switches off, then with each switch on alone, over
several seeds; test accuracy (mean, spread) and training time per switch.

    python -m benchmarks.recipe_switches --dataset cifar10 --epochs 5 --subset 10000 --seeds 0 1 2

Results go to benchmarks/results/recipe_switches.{json,md} (per machine: the times only compare
within one machine) and, for the Compare page, beside the shipped models as
DATASET.recipe_switches.json (cnn_core.studio.benchmark_figures). The document is rewritten after every
run, marked `complete: false` until the last, so a stopped benchmark keeps what it measured.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _machines

HERE = Path(__file__).resolve().parent
BENCHMARK = "recipe_switches"
BASE = "none"  # the row with every switch off
RECIPE = "seed"  # the original's recipe: the one the switches come from


def summarise(runs: list[dict]) -> list[dict]:
    """One row per switch (the base first): test accuracy mean, sample spread, range and the change of
    the mean from the base, with the mean training seconds. `clear` says whether the switch's range
    and the base's do not overlap: with 3 seeds, an overlap means the effect is within seed noise."""
    by_switch: dict[str, list[dict]] = {}
    for run in runs:
        by_switch.setdefault(run["switch"], []).append(run)
    base = [r["test_accuracy"] for r in by_switch.get(BASE, [])]
    rows = []
    for switch, group in by_switch.items():
        accuracies = [r["test_accuracy"] for r in group]
        row = {
            "switch": switch,
            "seeds": sorted(r["seed"] for r in group),
            "mean": statistics.fmean(accuracies),
            "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "min": min(accuracies),
            "max": max(accuracies),
            "train_seconds": statistics.fmean(r["train_seconds"] for r in group),
            "params": group[0]["params"],
        }
        if base and switch != BASE:
            row["delta"] = row["mean"] - statistics.fmean(base)
            row["clear"] = row["min"] > max(base) or row["max"] < min(base)
        rows.append(row)
    return sorted(rows, key=lambda row: (row["switch"] != BASE, _order(row["switch"])))


def _order(switch: str) -> int:
    from cnn_core.train.switches import switch_names

    return switch_names().index(switch) if switch in switch_names() else -1


def run_one(dataset: str, switch: str, seed: int, schedule: dict, data, store, log=print) -> dict:
    """Train the seed recipe once with `switch` on (BASE: none) and return its row."""
    from cnn_core.train.recipes import resolve_config
    from cnn_core.train.training import train

    config = resolve_config(dataset, RECIPE, seed=seed, switches=[] if switch == BASE else [switch], **schedule)
    started = time.perf_counter()
    result = train(
        config,
        f"{switch}_{seed}",
        store=store,
        data=data,
        overwrite=True,
        command=f"(benchmarks.recipe_switches) {switch}, seed {seed}",
    )
    card = result.card
    row = {
        "switch": switch,
        "seed": seed,
        "test_accuracy": card["test_accuracy"],
        "val_accuracy": card["best_val_accuracy"],
        "epochs": card["epochs_run"],
        "train_seconds": round(card["train_seconds"], 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "params": card["params"],
    }
    log(f"{dataset} {switch:16} seed {seed}: test {row['test_accuracy']:.2%}, {row['train_seconds']:.0f} s training")
    return row


def _validate_entry(entry: dict, where: str) -> None:
    for key in ("command", "git_commit", "date", "datasets"):
        _machines.need(key in entry, where, f"missing '{key}'")
    for dataset, result in entry["datasets"].items():
        here = f"{where}.datasets[{dataset}]"
        for key in ("schedule", "runs", "summary", "complete"):
            _machines.need(key in result, here, f"missing '{key}'")
        _machines.need(result["runs"], here, "no runs")
        for run in result["runs"]:
            _machines.need(
                0 <= run["test_accuracy"] <= 1 and run["train_seconds"] > 0,
                f"{here}.runs",
                "accuracy must lie in [0, 1] and seconds be > 0",
            )
        _machines.need(
            result["summary"] == summarise(result["runs"]), f"{here}.summary", "does not follow from the runs"
        )


def validate_results(doc: dict) -> None:
    """Raise ValueError unless `doc` is a well-formed recipe-switches document."""
    _machines.validate(doc, BENCHMARK, _validate_entry)


def _percent(value: float) -> str:
    return f"{value:.2%}"


def render_markdown(doc: dict, notes: str = "") -> str:
    from cnn_core.train.switches import SWITCHES

    lines = [
        "# The original's improvements, one switch at a time",
        "",
        (
            f"The `{RECIPE}` recipe (the original notebook's) trained with every switch off (`{BASE}`) and with "
            "each switch on alone, over the same seeds; test accuracy on the whole test set. A switch is "
            "**clear** when its range of accuracies and the base's do not overlap; otherwise its effect is "
            "within what the seed alone changes."
        ),
        "",
    ]
    for key, entry in _machines.entries(doc):
        lines += _machines.describe(key, entry)
        lines.append(f"- Command: `{entry['command']}` (commit {entry['git_commit']}, {entry['date']})")
        for dataset, result in entry["datasets"].items():
            schedule = result["schedule"]
            lines += [
                "",
                f"### {dataset}: {schedule['epochs']} epochs on {schedule['subset']:,} training images, "
                f"{schedule['val_size']:,} held out" + ("" if result["complete"] else " (incomplete)"),
                "",
                "| switch | seeds | test accuracy, mean ± sd | range | change | clear | training s | parameters |",
                "|---|---|---|---|---:|---|---:|---:|",
            ]
            for row in result["summary"]:
                title = SWITCHES[row["switch"]].title if row["switch"] in SWITCHES else "none (the seed recipe)"
                change = f"{row['delta'] * 100:+.2f} pts" if "delta" in row else "–"
                clear = ("yes" if row["clear"] else "no") if "clear" in row else "–"
                lines.append(
                    f"| {title} | {len(row['seeds'])} | {_percent(row['mean'])} ± {row['std'] * 100:.2f} | "
                    f"{_percent(row['min'])}–{_percent(row['max'])} | {change} | {clear} | "
                    f"{row['train_seconds']:.0f} | {row['params']:,} |"
                )
        lines.append("")
    return "\n".join(lines) + f"\n{_machines.NOTES_MARKER}{notes}"


def _entry(previous: dict | None, machine: dict, command: str, commit: str | None, dataset: str, result: dict) -> dict:
    earlier = _machines.entry_for(previous, machine) or {}
    datasets = {**earlier.get("datasets", {}), dataset: result}
    return {
        "machine": machine,
        "command": command,
        "git_commit": commit,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "datasets": datasets,
    }


def write_beside_models(doc: dict, machine: dict, store=None) -> list:
    """This machine's results per dataset into DATASET.recipe_switches.json beside the shipped models:
    what the Compare page shows (the app never reads benchmarks/)."""
    from cnn_core.base.store import SHIPPED_DIR, ModelStore
    from cnn_core.studio.benchmark_figures import write_switch_figures

    store = store or ModelStore(SHIPPED_DIR, "shipped", writable=True)  # the app reads it read-only
    entry = _machines.entry_for(doc, machine)
    source = {
        "command": entry["command"],
        "git_commit": entry["git_commit"],
        "date": entry["date"],
        "machine": _machines.key_of(machine),
    }
    return [
        write_switch_figures(dataset, result, source, store)
        for dataset, result in entry["datasets"].items()
        if result["complete"]
    ]


def main(argv=None) -> int:
    from cnn_core.train.switches import switch_names

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("mnist", "fashion_mnist", "cifar10"), default="cifar10")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run (default 5)")
    parser.add_argument("--subset", type=int, default=10000, help="training images per run (default 10000)")
    parser.add_argument("--val-size", type=int, default=2000, help="images held out for validation (default 2000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--switches",
        nargs="+",
        choices=switch_names(),
        default=list(switch_names()),
        help="the switches to measure (default: all seven); the base always runs",
    )
    parser.add_argument("--data-dir", default=os.environ.get("CNN_DATA_DIR"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error("use at least 2 seeds (3 or more to tell an effect from seed noise)")

    from cnn_core.base.runtime import git_commit, import_tensorflow_quietly
    from cnn_core.base.store import ModelStore
    from cnn_core.data.datasets import load_dataset

    import_tensorflow_quietly()
    command = " ".join(["python -m benchmarks.recipe_switches", *(argv if argv is not None else sys.argv[1:])])
    commit = git_commit()  # the code that runs: taken at the start, as later commits do not change it
    previous = _machines.load(args.out / f"{BENCHMARK}.json", BENCHMARK)
    notes = _machines.read_notes(args.out / f"{BENCHMARK}.md")
    machine, data = _machines.this_machine(), load_dataset(args.dataset, args.data_dir)
    schedule = {"epochs": args.epochs, "subset": args.subset, "val_size": args.val_size}
    runs_dir = Path(tempfile.mkdtemp(prefix="recipe_switches_"))
    store, runs = ModelStore(runs_dir, "runs", writable=True), []
    plan = [(switch, seed) for seed in args.seeds for switch in (BASE, *args.switches)]  # seeds outermost: a
    try:  # stopped run is balanced
        for number, (switch, seed) in enumerate(plan, start=1):
            runs.append(
                run_one(
                    args.dataset,
                    switch,
                    seed,
                    schedule,
                    data,
                    store,
                    log=lambda text, number=number: print(f"[{number}/{len(plan)}] {text}", flush=True),
                )
            )
            result = {"schedule": schedule, "runs": runs, "summary": summarise(runs), "complete": number == len(plan)}
            doc = _machines.merge(previous, BENCHMARK, _entry(previous, machine, command, commit, args.dataset, result))
            validate_results(doc)
            _machines.write(args.out, BENCHMARK, doc, render_markdown(doc, notes))
    finally:
        shutil.rmtree(runs_dir, ignore_errors=True)
    print(render_markdown(doc))
    if args.out.resolve() == (HERE / "results").resolve():  # a smoke run (--out elsewhere) leaves the models alone
        for path in write_beside_models(doc, machine):
            print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
