"""The CIFAR-10 pace to beat: the airbench94 CPU port (`../shared/peers/airbench94_cpu.py`), run in
its own Python (PyTorch never enters this project's requirements) on the same machine and data.

The port prints one JSON line per epoch, `{"epoch", "clock_s", "test_acc"}` (training clock,
evaluation excluded, test accuracy without TTA), then one JSON line with the whole result
(`log`, `tta_test_acc`, `clock_s_with_tta`, `precision`, `torch`, ...). `run_peer` streams the
first kind to the log as they come and turns the output into a run record for
`benchmarks.time_to_accuracy`: the same clock rules as ours (training only, evaluation excluded).

    python -m venv /tmp/peer && /tmp/peer/bin/pip install torch numpy
    python -m benchmarks.time_to_accuracy --datasets cifar10 --recipes \\
        --peer-python /tmp/peer/bin/python --peer-epochs 3 9.9
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SCRIPT = REPO.parent / "shared" / "peers" / "airbench94_cpu.py"
PEER_DATASET = "cifar10"
# Which peer run each CIFAR-10 target is measured against (issue: 85% within the time of the
# peer's `--epochs 3` run; 94% within the time of its full `--epochs 9.9` run).
PEER_RUN_FOR_TARGET = {0.85: "3", 0.94: "9.9"}


def run_key(epochs: float) -> str:
    """How a peer run is named in the results: its --epochs as written (3, 9.9)."""
    return f"{epochs:g}"


def parse_output(stdout: str) -> dict:
    """The port's final JSON result from its printed output (the last JSON line that has `log`)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            record = json.loads(line)
            if "log" in record:
                return record
    raise ValueError("the peer printed no final result line (a JSON object with 'log')")


def as_run(result: dict, command: str) -> dict:
    """A peer result as a run record: its epochs on the training clock, and its final TTA accuracy."""
    epochs = [
        {"epoch": int(e["epoch"]), "train_seconds": float(e["clock_s"]), "test_accuracy": float(e["test_acc"])}
        for e in result["log"]
    ]
    return {
        "peer": result["peer"],
        "command": command,
        "epochs_planned": float(result["epochs"]),
        "threads": int(result["threads"]),
        "precision": result["precision"],
        "torch": result["torch"],
        "epochs": epochs,
        "total_train_seconds": epochs[-1]["train_seconds"],
        "final_test_accuracy": epochs[-1]["test_accuracy"],
        "tta_test_accuracy": float(result["tta_test_acc"]),
        "train_seconds_with_tta": float(result["clock_s_with_tta"]),
    }


def recorded_command(args: list[str]) -> str:
    """The peer's command as the results keep it: paths relative to this repository (no machine's
    folders), the interpreter by its name."""
    import os

    def shown(arg: str) -> str:
        return os.path.relpath(arg, REPO) if os.path.isabs(arg) and os.path.exists(arg) else arg

    return " ".join([Path(args[0]).name, *(shown(a) for a in args[1:])])


def run_peer(
    python: str, script: Path, data_dir: str, epochs: float, *, threads: int, precision: str = "auto", log=print
) -> dict:
    """Run the port once; each epoch's line is logged as it arrives."""
    args = [
        python,
        str(script),
        str(data_dir),
        "--epochs",
        run_key(epochs),
        "--threads",
        str(threads),
        "--precision",
        precision,
    ]
    command = " ".join(args)
    log(f"peer: {command}")
    command = recorded_command(args)
    lines = []
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            lines.append(line)
            if line.startswith('{"epoch"'):
                log(f"  peer {line.strip()}")
    if process.returncode != 0:
        raise RuntimeError(f"the peer exited with code {process.returncode}:\n{''.join(lines[-20:])}")
    return as_run(parse_output("".join(lines)), command)


def validate_run(run: dict, where: str, need) -> None:
    """Raise (through `need(ok, where, message)`) unless a peer run record is self-consistent."""
    for key in (
        "peer",
        "command",
        "precision",
        "epochs",
        "total_train_seconds",
        "tta_test_accuracy",
        "train_seconds_with_tta",
        "source",
    ):
        need(key in run, where, f"missing '{key}'")
    need(len(run["epochs"]) >= 1, f"{where}.epochs", "must list at least one epoch")
    clocks = [e["train_seconds"] for e in run["epochs"]]
    need(clocks == sorted(clocks) and clocks[0] > 0, f"{where}.epochs", "the clock must grow from above 0")
    need(
        [e["epoch"] for e in run["epochs"]] == list(range(1, len(clocks) + 1)),
        f"{where}.epochs",
        "must be numbered from 1",
    )
    need(run["total_train_seconds"] == clocks[-1], f"{where}.total_train_seconds", "must be the last epoch's clock")
    need(
        run["train_seconds_with_tta"] >= clocks[-1],
        f"{where}.train_seconds_with_tta",
        "must include the training clock",
    )
