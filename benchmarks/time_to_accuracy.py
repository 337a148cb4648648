"""Time to accuracy: the original recipe against the fast ones, on one machine, in one command.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.time_to_accuracy
    python -m benchmarks.time_to_accuracy --reuse-original         # keep this machine's `seed` runs
    python -m benchmarks.time_to_accuracy --datasets mnist --recipes seed turbo fast

Every recipe trains through `cnn_core.train.training.train` (the library's own trainer, the
one the CLI and the app use), with one extra callback that times each epoch and then
evaluates on the whole test set with `cnn_core.predict.inference.predict_proba` (flip TTA when
the recipe uses it). The training clock is the sum of the epochs' times, from the
start of an epoch to its end: the optimisation steps, the recipe's own validation pass
and the library's per-epoch checkpoint. The test-set evaluation runs after the clock
stops, and data loading and model building run before it starts.

Writes `benchmarks/results/time_to_accuracy.{json,md,png}`, one entry per machine
(`benchmarks/_machines.py`): a run on another CPU is added beside the committed ones, and
speed-ups are computed only between runs of one machine. Within this machine's entry, runs
of (dataset, recipe) pairs that are not run again are kept, each with its own `source`
(command, commit, machine), so the expensive original-recipe run can be done once and
reused. Text after the notes marker in the markdown is kept when it is rewritten.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _machines, peer

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS_DIR = REPO / "benchmarks" / "results"
BENCHMARK = "time_to_accuracy"
SCHEMA_VERSION = _machines.SCHEMA_VERSION
TARGETS = {"mnist": 0.99, "cifar10": 0.85}
# The summary's targets per dataset: the runs' own target, and for CIFAR-10 also 94% (TTA allowed),
# the accuracy the peer's full run is compared at.
SUMMARY_TARGETS = {"mnist": (0.99,), "cifar10": (0.85, 0.94)}
# The goals on a 2-core CPU: (seconds of training to the target, speed-up over `seed`).
GOALS = {"mnist": (30.0, 20.0), "cifar10": (480.0, 10.0)}
BASELINE = "seed"
PEER_PYTHON_SHOWN = "PEER_VENV/bin/python"  # how --peer-python is recorded
DEFAULT_RECIPES = ("seed", "turbo")
NOTES_MARKER = _machines.NOTES_MARKER
CLOCK = (
    "sum over epochs of the time from the start of an epoch to its end inside Keras fit(): "
    "optimisation steps, the recipe's validation pass (seed only) and the library's per-epoch "
    "checkpoint; the per-epoch test evaluation, data loading and model building are excluded"
)


# -- running ------------------------------------------------------------------------------------


def _epoch_clock_class():
    import keras

    from cnn_core.predict.inference import predict_proba

    class EpochClock(keras.callbacks.Callback):
        """Times every epoch, then (clock stopped) measures test accuracy; may stop training."""

        def __init__(self, data, tta, target, stop_at_target=False, max_train_seconds=None, log=print):
            super().__init__()
            self.data, self.tta, self.target = data, tta, target
            self.stop_at_target, self.max_train_seconds, self.log = stop_at_target, max_train_seconds, log
            self.epochs: list[dict] = []
            self.train_seconds = 0.0
            self.stopped_by: str | None = None

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.t0
            self.train_seconds += seconds
            t_eval = time.perf_counter()
            probs = predict_proba(self.model, self.data.x_test, self.data.info, tta=self.tta)
            accuracy = float((probs.argmax(axis=1) == self.data.y_test).mean())
            logs = logs or {}
            record = {
                "epoch": epoch + 1,
                "train_seconds": round(self.train_seconds, 3),
                "epoch_seconds": round(seconds, 3),
                "test_accuracy": accuracy,
                "eval_seconds": round(time.perf_counter() - t_eval, 3),
                "train_loss": _num(logs.get("loss")),
                "train_accuracy": _num(logs.get("accuracy")),
                "val_accuracy": _num(logs.get("val_accuracy")),
            }
            self.epochs.append(record)
            self.log(
                f"  epoch {record['epoch']}: {seconds:6.1f}s (clock {self.train_seconds:7.1f}s)  "
                f"test accuracy {accuracy:.4f}  [eval {record['eval_seconds']:.1f}s, not on the clock]"
            )
            if self.stop_at_target and accuracy >= self.target:
                self.stopped_by = "target"
                self.model.stop_training = True
            elif self.max_train_seconds is not None and self.train_seconds >= self.max_train_seconds:
                self.stopped_by = "time_cap"
                self.model.stop_training = True

    return EpochClock


def _num(value):
    return None if value is None else float(value)


def run_recipe(
    dataset: str,
    recipe: str,
    data,
    *,
    stop_at_target: bool = False,
    max_train_seconds=None,
    epochs=None,
    subset=None,
    seed: int = 0,
    log=print,
) -> dict:
    """Train one recipe through the library's trainer; every epoch timed and tested."""
    from cnn_core.base.store import ModelStore
    from cnn_core.predict.inference import tta_level
    from cnn_core.train.recipes import resolve_config
    from cnn_core.train.training import train

    config = resolve_config(dataset, recipe, epochs=epochs, subset=subset, seed=seed)
    target = TARGETS.get(dataset, 1.0)
    clock = _epoch_clock_class()(data, tta_level(config.get("tta")), target, stop_at_target, max_train_seconds, log)
    log(
        f"{dataset} / {recipe}: up to {config['epochs']} epochs, batch {config['batch_size']}, "
        f"target {target:.1%}" + (f", capped at {max_train_seconds:.0f}s of training" if max_train_seconds else "")
    )
    load_before, usage_before, wall_before = os.getloadavg(), _cpu_seconds(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tta_bench_") as tmp:
        store = ModelStore(Path(tmp), "runs", writable=True)
        result = train(
            config, f"bench_{dataset}_{recipe}", store=store, data=data, command="benchmark", extra_callbacks=[clock]
        )
    wall = time.perf_counter() - wall_before
    card = result.card
    # How much of the machine this run had: its CPU seconds over wall seconds × usable
    # cores (about 1 when nothing else ran), and the 1-minute load average around it.
    contention = {
        "cpu_share": round((_cpu_seconds() - usage_before) / (wall * card["machine"]["cores"]), 3),
        "load_average_before": round(load_before[0], 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "wall_seconds": round(wall, 1),
    }
    reached = next((e for e in clock.epochs if e["test_accuracy"] >= target), None)
    capped = clock.stopped_by == "time_cap" and reached is None
    return {
        "recipe": recipe,
        "arch": config["arch"],
        "config": config,
        "params": card["params"],
        "train_size": card["train_size"],
        "val_size": card["val_size"],
        "subset": subset,
        "tta": tta_level(config.get("tta")),
        "epochs_planned": config["epochs"],
        "stop_rule": {"stop_at_target": stop_at_target, "max_train_seconds": max_train_seconds},
        "status": "capped" if capped else ("stopped_at_target" if clock.stopped_by == "target" else card["status"]),
        "epochs": clock.epochs,
        "time_to_target": reached["train_seconds"] if reached else None,
        "epoch_to_target": reached["epoch"] if reached else None,
        "best_test_accuracy": max(e["test_accuracy"] for e in clock.epochs),
        "final_test_accuracy": clock.epochs[-1]["test_accuracy"],
        "total_train_seconds": clock.epochs[-1]["train_seconds"],
        "contention": contention,
    }


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ratio_entry(baseline: dict | None, run: dict) -> dict:
    """Speed-up of `run` over the baseline in time to the target; a lower bound when the
    baseline stopped (capped) before reaching it."""
    if baseline is None or run["time_to_target"] is None:
        return {"baseline": BASELINE, "value": None, "kind": "not_reached" if baseline else "no_baseline"}
    if baseline["time_to_target"] is not None:
        return {"baseline": BASELINE, "value": baseline["time_to_target"] / run["time_to_target"], "kind": "exact"}
    return {
        "baseline": BASELINE,
        "value": baseline["total_train_seconds"] / run["time_to_target"],
        "kind": "lower_bound",
    }


def assemble(previous: dict | None, new_runs: dict, command: str, source: dict) -> dict:
    """The results document: this machine's entry (its new runs plus its earlier runs not
    redone) beside the other machines' entries, kept as they were."""
    from cnn_core.base.runtime import now_iso

    datasets = {}
    old = (_machines.entry_for(previous, source["machine"]) or {}).get("datasets", {})
    for dataset in sorted(set(old) | set(new_runs)):
        runs = {name: dict(run) for name, run in old.get(dataset, {}).get("runs", {}).items()}
        for name, run in new_runs.get(dataset, {}).items():
            if not name.startswith("_"):
                runs[name] = {**run, "source": source}
        base = runs.get(BASELINE)
        test_size = new_runs.get(dataset, {}).get("_test_size") or old.get(dataset, {}).get("test_size")
        peer_runs = dict(old.get(dataset, {}).get("peer", {}))
        peer_runs.update(
            {key: {**run, "source": source} for key, run in new_runs.get(dataset, {}).get("_peer", {}).items()}
        )
        datasets[dataset] = {
            "target": TARGETS[dataset],
            "test_size": test_size,
            "runs": runs,
            "speedup": {name: ratio_entry(base, run) for name, run in runs.items() if name != BASELINE},
            **({"peer": peer_runs} if peer_runs else {}),
        }
    entry = {
        "machine": source["machine"],
        "command": command,
        "git_commit": source["git_commit"],
        "versions": source["versions"],
        "created": now_iso(),
        "datasets": datasets,
    }
    return with_summaries(_machines.merge(previous, BENCHMARK, entry, shared={"clock": CLOCK}))


def _first_at(epochs: list[dict], target: float) -> float | None:
    reached = next((e for e in epochs if e["test_accuracy"] >= target), None)
    return reached["train_seconds"] if reached else None


def summary_rows(machine_key: str, datasets: dict) -> list[dict]:
    """One row per dataset and target: our fastest recipe's time to it, the peer's (the time of the
    peer run the target is compared with; null where the peer does not apply, i.e. MNIST, or was
    not run here) and the original recipe's, and the ratios (ours / theirs: below 1 is faster)."""
    rows = []
    for dataset, block in datasets.items():
        for target in SUMMARY_TARGETS[dataset]:
            ours = sorted(
                (t, name)
                for name, run in block["runs"].items()
                if name != BASELINE and (t := _first_at(run["epochs"], target)) is not None
            )
            seed_run = block["runs"].get(BASELINE)
            peer_run = block.get("peer", {}).get(peer.PEER_RUN_FOR_TARGET.get(target, ""))
            ours_s, ours_recipe = ours[0] if ours else (None, None)
            seed_s = _first_at(seed_run["epochs"], target) if seed_run else None
            peer_s = peer_run["total_train_seconds"] if peer_run else None
            rows.append(
                {
                    "machine": machine_key,
                    "dataset": dataset,
                    "target": target,
                    "ours_s": ours_s,
                    "ours_recipe": ours_recipe,
                    "peer_s": peer_s,
                    "peer_run": f"--epochs {peer_run['epochs_planned']:g}" if peer_run else None,
                    "peer_accuracy": peer_run["tta_test_accuracy"] if peer_run else None,
                    "seed_s": seed_s,
                    "ratio_vs_peer": ours_s / peer_s if ours_s is not None and peer_s else None,
                    "ratio_vs_seed": ours_s / seed_s if ours_s is not None and seed_s else None,
                }
            )
    return rows


# -- schema -----------------------------------------------------------------------------------

RUN_KEYS = {
    "recipe": str,
    "arch": str,
    "config": dict,
    "params": int,
    "train_size": int,
    "val_size": int,
    "tta": int,
    "epochs_planned": int,
    "stop_rule": dict,
    "status": str,
    "epochs": list,
    "best_test_accuracy": float,
    "final_test_accuracy": float,
    "total_train_seconds": float,
    "source": dict,
}
EPOCH_KEYS = {
    "epoch": int,
    "train_seconds": float,
    "epoch_seconds": float,
    "test_accuracy": float,
    "eval_seconds": float,
}
SOURCE_KEYS = {"command": str, "machine": dict, "versions": dict, "created": str}


def _typed(obj: dict, keys: dict, where: str):
    _machines.need(isinstance(obj, dict), where, "must be an object")
    for key, kind in keys.items():
        _machines.need(key in obj, where, f"missing '{key}'")
        value = obj[key]
        ok = (
            isinstance(value, (int, float)) and not isinstance(value, bool)
            if kind is float
            else isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        )
        _machines.need(ok, f"{where}.{key}", f"must be {kind.__name__}, got {type(value).__name__}")


def validate_results(doc: dict) -> None:
    """Raise ValueError unless `doc` is a well-formed, self-consistent results document."""
    _typed(doc, {"clock": str}, "results")
    _machines.validate(doc, BENCHMARK, _validate_machine)


def _validate_machine(entry: dict, where_machine: str) -> None:
    """One machine's runs: well-formed, all measured on that machine, speed-ups among them."""
    _typed(entry, {"command": str, "machine": dict, "versions": dict, "created": str, "datasets": dict}, where_machine)
    _machines.need(
        "git_commit" in entry and (entry["git_commit"] is None or isinstance(entry["git_commit"], str)),
        f"{where_machine}.git_commit",
        "must be a string or null",
    )
    _machines.need(len(entry["datasets"]) > 0, f"{where_machine}.datasets", "must not be empty")
    key = _machines.key_of(entry["machine"])
    datasets, summary = entry["datasets"], entry.get("summary")
    for dataset, block in datasets.items():
        where = f"{where_machine}.datasets.{dataset}"
        _machines.need(dataset in TARGETS, where, f"unknown dataset (known: {', '.join(TARGETS)})")
        _typed(block, {"target": float, "test_size": int, "runs": dict, "speedup": dict}, where)
        _machines.need(block["target"] == TARGETS[dataset], f"{where}.target", f"must be {TARGETS[dataset]}")
        _machines.need(len(block["runs"]) > 0 or block.get("peer"), f"{where}.runs", "must not be empty")
        for name, run in block.get("peer", {}).items():
            _machines.need(dataset == peer.PEER_DATASET, f"{where}.peer", "the peer trains CIFAR-10 only")
            peer.validate_run(run, f"{where}.peer.{name}", _machines.need)
            _machines.need(
                _machines.key_of(run["source"]["machine"]) == key,
                f"{where}.peer.{name}.source",
                "must be measured on the entry's machine",
            )
        for name, run in block["runs"].items():
            rw = f"{where}.runs.{name}"
            _typed(run, RUN_KEYS, rw)
            _machines.need(run["recipe"] == name, f"{rw}.recipe", "must equal its key")
            _typed(run["source"], SOURCE_KEYS, f"{rw}.source")
            _machines.need("git_commit" in run["source"], f"{rw}.source", "missing 'git_commit'")
            _machines.need(run["train_size"] > 0 and run["params"] > 0, rw, "sizes must be positive")
            _machines.need(len(run["epochs"]) >= 1, f"{rw}.epochs", "must list at least one epoch")
            clock = 0.0
            for i, epoch in enumerate(run["epochs"]):
                ew = f"{rw}.epochs[{i}]"
                _typed(epoch, EPOCH_KEYS, ew)
                _machines.need(epoch["epoch"] == i + 1, f"{ew}.epoch", f"must be {i + 1}")
                _machines.need(0.0 <= epoch["test_accuracy"] <= 1.0, f"{ew}.test_accuracy", "must be in [0, 1]")
                _machines.need(epoch["epoch_seconds"] > 0, f"{ew}.epoch_seconds", "must be positive")
                clock += epoch["epoch_seconds"]
                _machines.need(
                    abs(epoch["train_seconds"] - clock) <= 0.01 * (i + 1),
                    f"{ew}.train_seconds",
                    "must be the running sum of epoch_seconds",
                )
            _machines.need(len(run["epochs"]) <= run["epochs_planned"], f"{rw}.epochs", "more epochs than planned")
            reached = next((e for e in run["epochs"] if e["test_accuracy"] >= block["target"]), None)
            _machines.need(
                run.get("time_to_target") == (reached["train_seconds"] if reached else None),
                f"{rw}.time_to_target",
                "must be the clock at the first epoch reaching the target",
            )
            _machines.need(
                run.get("epoch_to_target") == (reached["epoch"] if reached else None),
                f"{rw}.epoch_to_target",
                "must be the first epoch reaching the target",
            )
            accs = [e["test_accuracy"] for e in run["epochs"]]
            _machines.need(
                run["best_test_accuracy"] == max(accs), f"{rw}.best_test_accuracy", "must be the best epoch's"
            )
            _machines.need(
                run["final_test_accuracy"] == accs[-1], f"{rw}.final_test_accuracy", "must be the last epoch's"
            )
            _machines.need(
                run["total_train_seconds"] == run["epochs"][-1]["train_seconds"],
                f"{rw}.total_train_seconds",
                "must be the clock after the last epoch",
            )
        elsewhere = sorted({_machines.key_of(r["source"]["machine"]) for r in block["runs"].values()} - {key})
        _machines.need(
            not elsewhere,
            f"{where}.runs",
            f"speed-ups need every run on the same machine as its entry (found runs of {elsewhere} under '{key}')",
        )
        base = block["runs"].get(BASELINE)
        for name, speedup in block["speedup"].items():
            sw = f"{where}.speedup.{name}"
            _machines.need(name in block["runs"] and name != BASELINE, sw, "must name a non-baseline run")
            expected = ratio_entry(base, block["runs"][name])
            _machines.need(speedup.get("kind") == expected["kind"], f"{sw}.kind", f"must be '{expected['kind']}'")
            _machines.need(
                (speedup.get("value") is None) == (expected["value"] is None)
                and (expected["value"] is None or abs(speedup["value"] - expected["value"]) < 1e-9),
                f"{sw}.value",
                "must be the baseline's time over the run's time to the target",
            )
    # Last: a broken run above is reported as itself, not as the summary it would change.
    _machines.need(
        summary == summary_rows(key, datasets), f"{where_machine}.summary", "must be what the runs give (summary_rows)"
    )


# -- reports -----------------------------------------------------------------------------------


def _fmt_seconds(s):
    if s is None:
        return "not reached"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.2f} min ({s:.0f} s)"


def _fmt_contention(c):
    if not c:
        return "–"
    return f"{c['cpu_share']:.0%}, {c['load_average_before']:.1f}→{c['load_average_after']:.1f}"


def render_markdown(doc: dict, notes: str = "") -> str:
    lines = [
        "# Time to accuracy",
        "",
        (
            "Generated by `python -m benchmarks.time_to_accuracy`; data in `time_to_accuracy.json`, "
            "plot in `time_to_accuracy.png`. One section per machine (CPU model | usable cores | CPU flags): "
            "times and speed-ups compare runs of one machine only."
        ),
        "",
        f"- Training clock: {doc['clock']}.",
        (
            "- CPU share: the run's CPU seconds over its wall time × usable cores (near 100% when it had the "
            "machine to itself); load: the 1-minute load average before → after it."
        ),
        "",
    ]
    for key, entry in _machines.entries(doc):
        lines += _machines.describe(key, entry)
        lines += [
            f"- Latest command: `{entry['command']}`",
            (
                f"- Commit: `{entry['git_commit']}`; TensorFlow {entry['versions'].get('tensorflow')}, "
                f"Keras {entry['versions'].get('keras')}"
            ),
            "",
        ]
        lines += _render_machine(entry)
    lines += [NOTES_MARKER, notes.strip("\n"), ""]
    return "\n".join(lines)


def _fmt_ratio(value):
    return "–" if value is None else f"{value:.2f}×"


def _render_summary(entry: dict) -> list[str]:
    lines = [
        "### Summary: time to each target on this machine (ratio below 1 = ours is faster)",
        "",
        "| dataset | target | ours (recipe) | peer (run) | original | ours / peer | ours / original |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in entry["summary"]:
        ours = "not reached" if row["ours_s"] is None else f"{_fmt_seconds(row['ours_s'])} ({row['ours_recipe']})"
        peer_s = (
            ("n/a" if row["dataset"] != peer.PEER_DATASET else "not run here")
            if row["peer_s"] is None
            else f"{_fmt_seconds(row['peer_s'])} ({row['peer_run']}, {row['peer_accuracy']:.2%} with TTA)"
        )
        seed_s = "not reached" if row["seed_s"] is None else _fmt_seconds(row["seed_s"])
        lines.append(
            f"| {row['dataset']} | {row['target']:.0%} | {ours} | {peer_s} | {seed_s} | "
            f"{_fmt_ratio(row['ratio_vs_peer'])} | {_fmt_ratio(row['ratio_vs_seed'])} |"
        )
    return lines + [""]


def _render_peer(block: dict) -> list[str]:
    lines = [
        "Peer (airbench94 CPU port, run beside ours on this machine; its own clock, evaluation excluded):",
        "",
        "| run | precision | test accuracy by epoch (no TTA) | clock at the end | final with TTA |",
        "|---|---|---|---:|---:|",
    ]
    for name, run in block["peer"].items():
        accs = " ".join(f"{100 * e['test_accuracy']:.1f}" for e in run["epochs"])
        lines.append(
            f"| `--epochs {name}` | {run['precision']} | {accs}% | {_fmt_seconds(run['total_train_seconds'])}"
            f" | {run['tta_test_accuracy']:.2%} ({_fmt_seconds(run['train_seconds_with_tta'])}) |"
        )
    return (
        lines
        + [""]
        + [
            f"- peer `--epochs {name}`: `{run['command']}` (torch {run['torch']}), {run['source']['created']}."
            for name, run in block["peer"].items()
        ]
        + [""]
    )


def _render_machine(entry: dict) -> list[str]:
    lines = _render_summary(entry)
    for dataset, block in entry["datasets"].items():
        goal_s, goal_x = GOALS[dataset]
        lines += [
            (
                f"### {dataset}: time to {block['target']:.1%} test accuracy "
                f"(goal ≤ {_fmt_seconds(goal_s)}, ≥ {goal_x:.0f}× the original)"
            ),
            "",
            (
                "| recipe | arch | params | train / val images | epochs run (planned) | time to target | "
                "at epoch | best test acc | s / epoch | speed-up vs seed | stopped because | CPU share, load |"
            ),
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for name, run in block["runs"].items():
            sp = block["speedup"].get(name)
            if sp is None:
                speed = "(baseline)"
            elif sp["value"] is None:
                speed = "–"
            else:
                speed = ("≥ " if sp["kind"] == "lower_bound" else "") + f"{sp['value']:.1f}×"
            per_epoch = run["total_train_seconds"] / len(run["epochs"])
            lines.append(
                f"| {name} | {run['arch']} | {run['params']:,} | {run['train_size']:,} / {run['val_size']:,} | "
                f"{len(run['epochs'])} ({run['epochs_planned']}) | {_fmt_seconds(run['time_to_target'])} | "
                f"{run['epoch_to_target'] or '–'} | {run['best_test_accuracy']:.2%} | {per_epoch:.1f} | {speed} | "
                f"{run['status'].replace('_', ' ')} | {_fmt_contention(run.get('contention'))} |"
            )
        lines.append("")
        for name, sp in block["speedup"].items():
            run = block["runs"][name]
            t = run["time_to_target"]
            met_time = t is not None and t <= goal_s
            met_x = sp["value"] is not None and sp["value"] >= goal_x
            lines.append(
                f"- `{name}`: time goal {'met' if met_time else 'NOT met'} ({_fmt_seconds(t)} vs "
                f"≤ {_fmt_seconds(goal_s)}); speed-up goal {'met' if met_x else 'NOT met'}"
                + (
                    ""
                    if sp["value"] is None
                    else f" ({'≥ ' if sp['kind'] == 'lower_bound' else ''}{sp['value']:.1f}× vs ≥ {goal_x:.0f}×)"
                )
                + "."
            )
        for name, run in block["runs"].items():
            src = run["source"]
            lines.append(
                f"- `{name}` run from `{src['command']}` at commit `{src.get('git_commit')}` on "
                f"{src['created']}" + (" (subset of the training set)" if run.get("subset") else "") + "."
            )
        lines.append("")
        if block.get("peer"):
            lines += _render_peer(block)
    return lines


def plot(doc: dict, path: Path):
    """One row of panels per machine, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    machines = list(_machines.entries(doc))
    cols = max(len(entry["datasets"]) for _, entry in machines)
    fig, axes = plt.subplots(len(machines), cols, figsize=(6.5 * cols, 4.5 * len(machines)), squeeze=False)
    for row, (key, entry) in zip(axes, machines, strict=False):
        for ax in row[len(entry["datasets"]) :]:
            ax.set_visible(False)
        for ax, (dataset, block) in zip(row, entry["datasets"].items(), strict=False):
            curves = [(f"{name} ({run['arch']})", run) for name, run in block["runs"].items()]
            curves += [(f"peer airbench94 --epochs {name}", run) for name, run in block.get("peer", {}).items()]
            for label, run in curves:
                xs = [e["train_seconds"] for e in run["epochs"]]
                ys = [100 * e["test_accuracy"] for e in run["epochs"]]
                ax.plot(xs, ys, marker="o", ms=3, label=label, ls="--" if label.startswith("peer") else "-")
                reached = _first_at(run["epochs"], block["target"])
                if reached is not None:
                    ax.axvline(reached, color=ax.lines[-1].get_color(), ls=":", lw=1)
            ax.axhline(100 * block["target"], color="grey", ls="--", lw=1, label=f"target {block['target']:.0%}")
            ax.axvline(GOALS[dataset][0], color="red", ls="--", lw=0.8, label=f"goal {GOALS[dataset][0]:.0f} s")
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel("training time, seconds (log scale; evaluation excluded)")
            ax.set_ylabel("test accuracy, %")
            lo = min(100 * e["test_accuracy"] for _, run in curves for e in run["epochs"])
            ax.set_ylim(max(lo - 2, 100 * block["target"] - 25), 100)
            ax.set_title(f"{dataset}: time to {block['target']:.0%}\n{key}", fontsize=9)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Test accuracy vs training time, per machine")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def with_summaries(doc: dict) -> dict:
    """Every machine's `summary` rows, derived from its runs (so entries written before the
    summary existed get theirs too)."""
    for key, entry in _machines.entries(doc):
        entry["summary"] = summary_rows(key, entry["datasets"])
    return doc


def write_outputs(doc: dict, out_dir: Path):
    doc = with_summaries(doc)
    validate_results(doc)
    notes = _machines.read_notes(Path(out_dir) / "time_to_accuracy.md")
    _machines.write(out_dir, "time_to_accuracy", doc, render_markdown(doc, notes))
    plot(doc, Path(out_dir) / "time_to_accuracy.png")
    if Path(out_dir).resolve() == RESULTS_DIR.resolve():  # the committed results: the app's labels too
        write_beside_models(doc)


def recipe_figures(doc: dict, dataset: str) -> dict:
    """Per machine, each recipe's run as the Train page shows it: its last epoch's test accuracy,
    its training clock and its epochs (cnn_core.studio.benchmark_figures.write_recipe_times)."""
    machines = {}
    for key, entry in doc["machines"].items():
        runs = entry.get("datasets", {}).get(dataset, {}).get("runs", {})
        recipes = {
            recipe: {
                "train_seconds": run["total_train_seconds"],
                "test_accuracy": run["final_test_accuracy"],
                "epochs": len(run["epochs"]),
                "tta": run["tta"],
            }
            for recipe, run in runs.items()
        }
        if recipes:
            machines[key] = {"machine": entry["machine"], "recipes": recipes}
    return machines


def write_beside_models(doc: dict, store=None) -> list[Path]:
    """Every dataset's recipe figures into DATASET.recipe_times.json in the shipped store."""
    from cnn_core.base.store import SHIPPED_DIR, ModelStore
    from cnn_core.studio.benchmark_figures import write_recipe_times

    store = store or ModelStore(SHIPPED_DIR, "shipped", writable=True)  # the app reads it read-only
    source = {"command": "python -m benchmarks.time_to_accuracy", "results": "benchmarks/results/time_to_accuracy.json"}
    return [
        write_recipe_times(dataset, machines, source, store)
        for dataset in TARGETS
        if (machines := recipe_figures(doc, dataset))
    ]


# -- command line ---------------------------------------------------------------------------------


def main(argv=None) -> int:
    from cnn_core.train.recipes import recipe_names

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(TARGETS), default=["mnist", "cifar10"])
    parser.add_argument(
        "--recipes",
        nargs="*",
        default=list(DEFAULT_RECIPES),
        choices=recipe_names(),
        help="recipes to run (default: seed turbo); the first listed runs first; none: only the peer",
    )
    parser.add_argument("--peer-python", help="a Python with torch (outside this project) to run the CIFAR-10 peer")
    parser.add_argument(
        "--peer-script",
        type=Path,
        default=peer.DEFAULT_SCRIPT,
        help="the airbench94 CPU port (default: ../shared/peers/airbench94_cpu.py)",
    )
    parser.add_argument(
        "--peer-epochs",
        type=float,
        nargs="+",
        default=[3.0],
        help="the peer's --epochs, one run each (default 3; 9.9 is its full schedule)",
    )
    parser.add_argument("--peer-precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument(
        "--reuse-original",
        action="store_true",
        help=f"do not rerun `{BASELINE}` where the results already hold its run on this machine",
    )
    parser.add_argument(
        "--original-max-minutes",
        type=float,
        default=None,
        help=f"stop `{BASELINE}` after this much training (default: uncapped); "
        "a capped run reports a lower bound on the speed-up",
    )
    parser.add_argument(
        "--original-until-target",
        action="store_true",
        help=f"stop `{BASELINE}` at the first epoch that reaches the target (its time to the "
        "target is unchanged: its schedule reacts to validation only)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="plan every recipe for N epochs (its schedule spans them, as the peer's --peer-epochs)",
    )
    parser.add_argument("--subset", type=int, help="train on N images (for smoke tests only)")
    parser.add_argument("--test-limit", type=int, help="test on the first N test images (for smoke tests only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=os.environ.get("CNN_DATA_DIR"))
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    from cnn_core.base.runtime import configure_threads, git_commit, library_versions, now_iso
    from cnn_core.data.datasets import load_dataset
    from cnn_core.nets.models import ARCHITECTURES

    unknown = [r for r in args.recipes if r not in ARCHITECTURES]
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(ARCHITECTURES)}")
    configure_threads()
    json_path = args.out / "time_to_accuracy.json"
    previous = _machines.load(json_path, BENCHMARK)
    # The peer's interpreter is a machine's own folder: recorded as a placeholder, not a path.
    typed = [PEER_PYTHON_SHOWN if args.peer_python and a == args.peer_python else a for a in (argv or sys.argv[1:])]
    command = " ".join(["python -m benchmarks.time_to_accuracy", *(shlex.quote(a) for a in typed)])
    source = {
        "command": command,
        "git_commit": git_commit(),
        "machine": _machines.this_machine(),
        "versions": library_versions(),
        "created": now_iso(),
    }
    new_runs: dict = {}
    for dataset in args.datasets:
        data = load_dataset(dataset, args.data_dir)
        if args.test_limit:
            data = dataclasses.replace(
                data, x_test=data.x_test[: args.test_limit], y_test=data.y_test[: args.test_limit]
            )
        new_runs[dataset] = {"_test_size": len(data.y_test)}
        if args.peer_python and dataset == peer.PEER_DATASET:
            _run_peers(args, new_runs, previous, command, source)
        for recipe in args.recipes:
            mine = _machines.entry_for(previous, source["machine"]) or {}
            have_old = recipe in mine.get("datasets", {}).get(dataset, {}).get("runs", {})
            if recipe == BASELINE and args.reuse_original and have_old:
                print(f"{dataset} / {recipe}: reusing the run in {json_path}", flush=True)
                continue
            is_base = recipe == BASELINE
            run = run_recipe(
                dataset,
                recipe,
                data,
                seed=args.seed,
                epochs=args.epochs,
                subset=args.subset,
                stop_at_target=is_base and args.original_until_target,
                max_train_seconds=(args.original_max_minutes * 60 if is_base and args.original_max_minutes else None),
                log=lambda text: print(text, flush=True),
            )
            new_runs[dataset][recipe] = run
            # Write after every run so an interrupted benchmark keeps what it measured.
            # Read again just before writing: another benchmark process may have written since.
            doc = assemble(_machines.load(json_path, BENCHMARK), new_runs, command, source)
            write_outputs(doc, args.out)
            print(
                f"  -> time to {TARGETS[dataset]:.1%}: {_fmt_seconds(run['time_to_target'])}; "
                f"best {run['best_test_accuracy']:.2%}; wrote {args.out}",
                flush=True,
            )
    return 0


def _run_peers(args, new_runs: dict, previous, command: str, source: dict) -> None:
    """The peer's runs, written after each like ours (the peer reads cifar10.npz itself)."""
    from cnn_core.base.runtime import machine_info
    from cnn_core.data.datasets import resolve_data_dir

    if args.subset or args.test_limit:
        raise SystemExit("The peer always trains on the full data; run it without --subset or --test-limit.")
    data_dir = resolve_data_dir(args.data_dir)
    if data_dir is None or not (data_dir / "cifar10.npz").is_file():
        raise SystemExit("The peer reads cifar10.npz from a folder: pass --data-dir or set CNN_DATA_DIR.")
    for epochs in args.peer_epochs:
        run = peer.run_peer(
            args.peer_python,
            args.peer_script,
            data_dir,
            epochs,
            threads=machine_info()["cores"],
            precision=args.peer_precision,
            log=lambda text: print(text, flush=True),
        )
        new_runs[peer.PEER_DATASET].setdefault("_peer", {})[peer.run_key(epochs)] = run
        write_outputs(
            assemble(_machines.load(args.out / "time_to_accuracy.json", BENCHMARK), new_runs, command, source), args.out
        )


if __name__ == "__main__":
    sys.exit(main())
