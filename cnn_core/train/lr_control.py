"""Changing a run's learning rate while it trains: a control file beside its card.

    runs/NAME.lr.json     {"multiply": 0.5}    or    {"set": 0.01}

(in the runs folder, `CNN_RUNS_DIR`). Whoever asks for a change writes the file atomically with
`request_lr_change`: the CLI's `python -m cnn_core lr --run NAME --multiply 0.5 | --set 0.01`, the
Train page through `cnn_core.service.jobs.TrainingJobs.change_lr`, or anyone by hand (write a temporary file
and rename it over NAME.lr.json). The trainer's `callbacks.LearningRateControl` looks at the file's
modification time after every batch (a `stat`, nothing read while nothing is new); a new file is
taken (renamed away, so it applies exactly once), checked and applied from the next batch on:

- `multiply` X scales the learning rate by X: a schedule (one-cycle, triangle) is scaled as a whole
  from that step on, keeping its shape; the plateau rule's plain lr is multiplied;
- `set` X makes the next batch's learning rate X (the schedule's factor is chosen for it);
- every step size derived from the lr follows by the same factor: GroupedSGD's per-variable
  multipliers and MuonSGD's own step (`muon_lr` = its ratio × lr).

X must be a number greater than 0. Anything else (not JSON, another key, 0, a negative number, a
string, both keys) is taken and ignored, and reported as a `warning` event, never a crash. Each
change applied is an `lr_change` event, an entry of the card's `lr_changes` (`step`: the optimizer
step it applies from; `epoch`, `batch`; `asked`; `lr_before`, `lr_after`; `factor`: the run's
cumulative factor; `muon_lr_before`/`muon_lr_after` for Muon) and counts in its epoch's history
entry (`lr_factor`: the cumulative factor at the epoch's end, `lr_changes`: changes in that epoch).

One request waits at a time: a newer file written before the trainer took the last replaces it.
A request that arrives after the last batch is dropped with a warning.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from cnn_core.base.errors import ConfigError, ModelStoreError
from cnn_core.base.store import ModelStore, atomic_write_json, runs_store, validate_name
from cnn_core.train.cards import display_status

CONTROL_SUFFIX = ".lr.json"
ACTIONS = ("multiply", "set")


def control_path(store: ModelStore, name: str) -> Path:
    """Where run `name`'s control file goes: beside its card."""
    return store.path(name, CONTROL_SUFFIX)


def parse_request(request) -> tuple[str, float]:
    """("multiply" or "set", the number) from a request dict; ConfigError for anything else."""
    if not isinstance(request, dict) or len(request) != 1 or next(iter(request)) not in ACTIONS:
        raise ConfigError(f'A learning-rate change is {{"multiply": X}} or {{"set": X}}; got {request!r}.')
    ((action, value),) = request.items()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f'"{action}" needs a number greater than 0; got {value!r}.')
    return action, float(value)


def request_lr_change(
    name: str, *, multiply: float | None = None, set_to: float | None = None, store: ModelStore | None = None
) -> Path:
    """Ask run `name`, which must be training now, to multiply its learning rate by `multiply` or set it
    to `set_to` from its next batch: writes its control file and returns its path. ModelStoreError for
    an unknown run, ConfigError for a run not training or an impossible value (nothing written then)."""
    store = store or runs_store()
    if (multiply is None) == (set_to is None):
        raise ConfigError("Say how to change the learning rate: multiply it by a number, or set it to one.")
    action, value = parse_request({"multiply": multiply} if multiply is not None else {"set": set_to})
    _require_training(store, validate_name(name))
    path = control_path(store, name)
    atomic_write_json(path, {action: value})
    return path


def _require_training(store: ModelStore, name: str) -> None:
    if store.lock_holder(name) is not None:  # the run lock: held, by a live process, exactly while it trains
        return
    if store.card_path(name).is_file():
        status = display_status(store.load_card(name)).replace("_", " ")
        raise ConfigError(
            f"Run '{name}' is not training (its card says: {status}); its learning rate can be "
            f"changed only while it trains."
        )
    if store.last_state_path(name).is_file():
        raise ConfigError(f"Run '{name}' is not training; resume it (train --resume {name}) first.")
    raise ModelStoreError(f"There is no run named '{name}' in {store.root}.")


def take_request(path: Path) -> tuple[str, float] | None:
    """The request in `path`, taken: renamed away first (so it applies once, and a newer one written
    meanwhile waits for the next look), then read and removed. None when there is none; ConfigError
    for an invalid one (taken all the same) or one that cannot be taken."""
    taken = path.with_name(f".{path.name}.taken-{os.getpid()}")
    try:
        os.replace(path, taken)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ConfigError(f"{path.name} could not be taken ({err.strerror or err}); the change was ignored.") from None
    try:
        text = taken.read_text()
    finally:
        taken.unlink(missing_ok=True)
    try:
        request = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{path.name} is not valid JSON ({err}); the change was ignored.") from None
    try:
        return parse_request(request)
    except ConfigError as err:
        raise ConfigError(f"{path.name}: {err} The change was ignored.") from None


class ControlFile:
    """One run's control file, watched between batches: a `stat` per look, a read only when the file
    is new (a file that could not be taken is not tried again until it changes)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._tried: tuple | None = None

    def poll(self) -> tuple[str, float] | None:
        """A new request (see `take_request`), or None."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if key == self._tried:
            return None
        self._tried = key
        return take_request(self.path)


def describe_change(change: dict) -> str:
    """One line for a change applied: `epoch 2, batch 5: ×0.5 (lr 1.00e-02 → 5.00e-03)`."""
    ((action, value),) = change["asked"].items()
    asked = f"×{value:g}" if action == "multiply" else f"set to {value:.3g}"
    muon = (
        f"; Muon {change['muon_lr_before']:.2e} → {change['muon_lr_after']:.2e}"
        if change.get("muon_lr_before") is not None
        else ""
    )
    return (
        f"epoch {change['epoch']}, batch {change['batch']}: {asked} "
        f"(lr {change['lr_before']:.2e} → {change['lr_after']:.2e}{muon})"
    )
