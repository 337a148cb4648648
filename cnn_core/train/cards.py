"""Model cards: the JSON record saved beside every model, and how its status reads.

A card says what a model is (dataset, architecture, recipe), how it was made (the exact
command, data checksum, machine, library versions, time) and how well it does (test
accuracy, per-class accuracy, the training history). The trainer writes it after every
epoch; the CLI, the app and the benchmarks only read it.
"""

from __future__ import annotations

import os
import shlex
import sys
import time

from cnn_core.base.runtime import git_commit, library_versions, machine_info, now_iso
from cnn_core.base.store import process_alive
from cnn_core.data.datasets import Dataset
from cnn_core.predict.inference import tta_level

STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
STATUS_EARLY_STOPPED = "early_stopped"
STATUS_STOPPED = "stopped"
STATUS_NOTHING_SAVED = "stopped_before_first_epoch"


def model_card(
    *,
    name: str,
    status: str,
    config: dict,
    data: Dataset,
    train_size: int,
    val_size: int,
    params: int,
    precision: str,
    history: list[dict],
    best: dict,
    train_seconds: float,
    distribution: dict,
    command: str,
    started: str,
    lr_changes: list | None = None,
    evaluation: dict | None = None,
) -> dict:
    """The card of a run as it stands (`evaluation`: its test-set result, once there is one; `lr_changes`:
    the learning-rate changes asked mid-run and applied, cnn_core.train.lr_control)."""
    info = data.info
    images_seen = train_size * len(history)
    card = {
        "name": name,
        "dataset": info.name,
        "dataset_title": info.title,
        "class_names": list(info.class_names),
        "architecture": config["arch"],
        "recipe": config["recipe"],
        "params": int(params),
        "hyperparameters": config,
        "augmentation": config["augment"],
        "switches": list(
            config.get("switches", [])
        ),  # the original's improvements switched on (cnn_core.train.switches)
        "precision": precision,
        "tta": tta_level(config.get("tta")),
        "train_size": int(train_size),
        "val_size": int(val_size),
        "trained_on": f"training split minus a held-out validation set (seed {config['seed']})"
        if val_size
        else "the full training set (fixed schedule, no validation decisions)",
        "epochs_planned": config["epochs"],
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "best_val_accuracy": best["val_accuracy"],
        "status": status,
        "pid": os.getpid() if status == STATUS_RUNNING else None,
        "train_seconds": round(train_seconds, 2),
        "images_per_sec": round(images_seen / train_seconds, 1) if train_seconds > 0 else None,
        "machine": machine_info(),
        "distribution": distribution,
        "versions": library_versions(),
        "dataset_sha256": data.sha256,
        "data_source": data.source_name,
        "command": command,
        "git_commit": git_commit(),
        "started": started,
        "updated": now_iso(),
        "lr_changes": list(lr_changes or []),
        "history": history,
    }
    if evaluation is not None:
        card.update(
            test_accuracy=evaluation["accuracy"],
            test_loss=evaluation["loss"],
            test_size=evaluation["test_size"],
            per_class_accuracy=evaluation["per_class_accuracy"],
        )
    return card


def deferred_end_commands(name: str, epochs: int) -> dict:
    """The commands that finish a run whose end-of-run work a shutdown deferred: `continue` trains on to the
    planned epochs and evaluates at the end; `evaluate` ends the run where it stopped (a resume with no epoch
    left to train does only the end-of-run work: test-set evaluation, detector, temperature)."""
    return {
        "continue": f"python -m cnn_core train --resume {name}",
        "evaluate": f"python -m cnn_core train --resume {name} --epochs {epochs}",
    }


def deferred_end_note(card: dict) -> str | None:
    """What to tell about a run whose end-of-run work a shutdown deferred (None for any other card)."""
    end = card.get("end_of_run") or {}
    if not end.get("deferred"):
        return None
    return (
        f"`{card['name']}` was stopped by a server shutdown after {card['epochs_run']} epoch(s), before its "
        f"end-of-run work (test-set evaluation, out-of-distribution detector, temperature). Finish it as it is "
        f"with `{end['evaluate']}`, or train on with `{end['continue']}`."
    )


def display_status(card: dict) -> str:
    """The card's status, with runs whose process died shown as 'interrupted'."""
    status = card.get("status", "unknown")
    if status == STATUS_RUNNING and not process_alive(card.get("pid")):
        return "interrupted"
    return status


def default_command() -> str:
    """This process's command line when it is the CLI (`python -m cnn_core ...`), else ''."""
    if not (sys.argv and sys.argv[0].endswith(("__main__.py", "cnn_core"))):
        return ""
    return " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable), "-m", "cnn_core", *sys.argv[1:]])


def new_run_name(config: dict) -> str:
    return f"{config['dataset']}_{config['arch']}_{time.strftime('%Y%m%d-%H%M%S')}"
