"""The trainer's Keras callbacks: progress events, the stop signal, resumable early
stopping and plateau rules, learning-rate changes asked mid-run, and the per-epoch checkpoint."""

from __future__ import annotations

import threading
import time

import keras
import numpy as np

from cnn_core.base.errors import ConfigError
from cnn_core.base.store import to_json_value
from cnn_core.train.lr_control import ControlFile
from cnn_core.train.optimizer import change_lr, current_lr, current_muon_lr


class StopRequested(Exception):
    """Raised inside fit() at the batch after a stop was requested."""


class ProgressEvents(keras.callbacks.Callback):
    """Turns fit()'s batches and epochs into the trainer's progress events (cnn_core.train.training)."""

    def __init__(self, listener, steps: int, epochs: int, batch_size: int, train_size: int, prior_elapsed: float):
        super().__init__()
        self.listener, self.steps, self.epochs = listener, steps, epochs
        self.batch_size, self.train_size, self.prior_elapsed = batch_size, train_size, prior_elapsed
        self.epoch_seconds: list[float] = []
        self.last_epoch_event: dict | None = None

    def _emit(self, event: dict) -> None:
        if self.listener is not None:
            self.listener(event)

    def on_train_begin(self, logs=None):
        self.t_start = time.perf_counter()

    def elapsed(self) -> float:
        """Training seconds of the whole run, earlier sessions of a resumed run included."""
        return self.prior_elapsed + time.perf_counter() - self.t_start

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.t_epoch = time.perf_counter()
        self.running = {"seen": 0, "loss": 0.0, "accuracy": 0.0}  # the epoch's means so far, and over how many

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        spent = time.perf_counter() - self.t_epoch
        done = batch + 1
        seen = min(done * self.batch_size, self.train_size)
        remaining_steps = (self.steps - done) + (self.epochs - self.epoch - 1) * self.steps
        loss, accuracy = float(logs.get("loss", np.nan)), float(logs.get("accuracy", np.nan))
        self._emit(
            {
                "type": "batch",
                "epoch": self.epoch + 1,
                "epochs": self.epochs,
                "step": done,
                "steps": self.steps,
                "loss": loss,
                "accuracy": accuracy,
                "batch_loss": self._this_batch("loss", loss, seen),
                "batch_accuracy": self._this_batch("accuracy", accuracy, seen),
                "lr": current_lr(self.model),
                "images_per_sec": seen / spent if spent > 0 else 0.0,
                "elapsed": self.elapsed(),
                "eta": remaining_steps * spent / done,
            }
        )
        self.running = {"seen": seen, "loss": loss, "accuracy": accuracy}

    def _this_batch(self, metric: str, mean: float, seen: int) -> float:
        """This batch's own value of `metric`: Keras logs the epoch's running mean (weighted by
        images), so the batch's share is the growth of the running total over the images it added."""
        before, new_images = self.running, seen - self.running["seen"]
        if new_images <= 0:
            return mean
        value = (mean * seen - before[metric] * before["seen"]) / new_images
        # Float32 running means leave a rounding error: keep a share a share and a loss non-negative.
        return min(max(value, 0.0), 1.0) if metric == "accuracy" else max(value, 0.0)

    def on_epoch_end(self, epoch, logs=None):
        # Not emitted here: the checkpoint callback emits it once the epoch is saved.
        logs = logs or {}
        seconds = time.perf_counter() - self.t_epoch
        self.epoch_seconds.append(seconds)
        self.last_epoch_event = {
            "type": "epoch",
            "epoch": epoch + 1,
            "epochs": self.epochs,
            "loss": float(logs.get("loss", np.nan)),
            "accuracy": float(logs.get("accuracy", np.nan)),
            "val_loss": float(logs["val_loss"]) if "val_loss" in logs else None,
            "val_accuracy": float(logs["val_accuracy"]) if "val_accuracy" in logs else None,
            "lr": current_lr(self.model),
            "seconds": seconds,
            "images_per_sec": self.train_size / seconds if seconds > 0 else 0.0,
            "elapsed": self.elapsed(),
            "eta": (self.epochs - epoch - 1) * float(np.mean(self.epoch_seconds)),
        }


class StopOnSignal(keras.callbacks.Callback):
    """Stops fit() at the next batch once `event` is set (the Stop button, Ctrl-C in a job)."""

    def __init__(self, event: threading.Event | None, agree=None):
        super().__init__()
        self.event, self.agree = event, agree  # agree: distributed.stop_agreement

    def on_train_batch_end(self, batch, logs=None):
        requested = self.event is not None and self.event.is_set()
        if self.agree is not None:
            requested = self.agree(requested)
        if requested:
            raise StopRequested()


class RestoresState:
    """Mixin for Keras callbacks whose counters must survive --resume: `state()` is saved
    every epoch and handed back as `restored`, re-applied after Keras resets them."""

    STATE: tuple = ()

    def __init__(self, restored: dict | None = None, **kw):
        super().__init__(**kw)
        self.restored = restored or {}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        for key, value in self.restored.items():
            setattr(self, key, value)

    def state(self) -> dict:
        return {key: to_json_value(getattr(self, key, None)) for key in self.STATE}


class ResumableEarlyStopping(RestoresState, keras.callbacks.EarlyStopping):
    STATE = ("wait", "best", "best_epoch")


class ResumablePlateau(RestoresState, keras.callbacks.ReduceLROnPlateau):
    STATE = ("wait", "best", "cooldown_counter")


class LearningRateControl(RestoresState, keras.callbacks.Callback):
    """Applies the run's learning-rate control file (cnn_core.train.lr_control) between batches, from the
    next batch on; reports each change (`lr_change` event) or refused request (`warning` event) to
    `listener`. Its cumulative `factor` and its `changes` survive --resume (the schedule's own factor
    is saved with the optimizer)."""

    STATE = ("factor", "changes")

    def __init__(self, path, listener=None, restored: dict | None = None):
        super().__init__(restored=restored)
        self.control, self.listener = ControlFile(path), listener
        self.factor, self.changes, self.epoch = 1.0, [], 0

    def _emit(self, event: dict) -> None:
        if self.listener is not None:
            self.listener(event)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        try:
            request = self.control.poll()
            if request is not None:
                self._apply(*request, batch)
        except ConfigError as err:
            self._emit({"type": "warning", "message": str(err)})

    def _apply(self, action: str, value: float, batch: int) -> None:
        model = self.model
        before, muon_before = current_lr(model), current_muon_lr(model)
        multiplier = change_lr(model, **{"multiply" if action == "multiply" else "set_to": value})
        self.factor *= multiplier
        change = {
            "step": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
            "epoch": self.epoch + 1,
            "batch": batch + 1,
            "asked": {action: value},
            "lr_before": before,
            "lr_after": current_lr(model),
            "factor": self.factor,
        }
        if muon_before is not None:
            change.update(muon_lr_before=muon_before, muon_lr_after=current_muon_lr(model))
        self.changes.append(change)
        self._emit({"type": "lr_change", **change})

    def epoch_summary(self, epoch: int) -> dict:
        """What an epoch's history entry records: the cumulative factor and the changes in that epoch."""
        return {"lr_factor": self.factor, "lr_changes": sum(c["epoch"] == epoch + 1 for c in self.changes)}

    def drop_late_request(self) -> None:
        """After the last batch: a request still waiting is removed, with a warning."""
        if self.control.path.exists():
            self.control.path.unlink(missing_ok=True)
            self._emit(
                {
                    "type": "warning",
                    "message": f"{self.control.path.name} arrived after the last batch; the change was ignored.",
                }
            )


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch, hands the epoch to `on_epoch_end(epoch)` (the run saves its
    best and last model, its state and its card there)."""

    def __init__(self, on_epoch_end):
        super().__init__()
        self.save_epoch = on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        self.save_epoch(epoch)


class Lookahead(keras.callbacks.Callback):
    """airbench's weight averaging: every `every` steps the running average of the weights (BN
    statistics included) moves toward the current weights, and the weights are reset to it. The
    average's memory grows with progress, decay·(step/total)^power: none at the start, most
    at the end. After the last step the weights are the average."""

    def __init__(self, every: int, decay: float, power: float, total_steps: int):
        super().__init__()
        self.every, self.decay, self.power, self.total_steps = every, decay, power, max(1, total_steps)
        self.averages: list | None = None

    def _float_variables(self) -> list:
        return [v for v in self.model.variables if "float" in str(v.dtype)]

    def on_train_begin(self, logs=None):
        self.averages = [keras.ops.copy(v.value) for v in self._float_variables()]

    def on_train_batch_end(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step % self.every == 0:
            keep = self.decay * min(1.0, step / self.total_steps) ** self.power
            for i, variable in enumerate(self._float_variables()):
                self.averages[i] = self.averages[i] + (1 - keep) * (variable.value - self.averages[i])
                variable.assign(self.averages[i])
        elif step >= self.total_steps and step > self.every:
            # The last few updates since the last average are dropped, as in airbench; a run shorter
            # than one averaging period has no average yet and keeps what it learnt.
            for variable, average in zip(self._float_variables(), self.averages, strict=False):
                variable.assign(average)
