"""Training: data → model → fit → evaluate → card, with progress events, a stop signal,
atomic per-epoch checkpoints and resume.

    config = resolve_config("mnist", "seed", epochs=3, subset=6000)
    result = train(config, name="demo", listener=print)

Progress events are plain dicts handed to `listener(event)`:
    {"type": "start", ...}  once, with sizes and steps
    {"type": "batch", "epoch", "step", "steps", "loss", "accuracy", "batch_loss", "batch_accuracy",
     "lr", "images_per_sec", "elapsed", "eta"}  after every batch (loss and accuracy: the epoch's
        running means, as Keras logs them; batch_*: that batch's own values)
    {"type": "epoch", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr",
     "images_per_sec", "seconds", "elapsed", "eta"}  after every epoch
    {"type": "lr_change", "step", "epoch", "batch", "asked", "lr_before", "lr_after", "factor"}
        when a learning-rate change asked mid-run was applied (cnn_core.train.lr_control)
    {"type": "warning", "message"}  when one was refused
    {"type": "end", "status", "name", "test_accuracy"?}  once
The CLI draws a progress bar from them; the app draws live curves.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from dataclasses import dataclass

import keras
import numpy as np

from cnn_core.analysis.evaluation import evaluate
from cnn_core.base.errors import ConfigError, ModelStoreError
from cnn_core.base.runtime import configure_threads, now_iso
from cnn_core.base.store import ModelStore, read_json, runs_store, shipped_store, validate_name
from cnn_core.data.augment import AlternatingFlip
from cnn_core.data.datasets import Dataset, Split, prepare_data
from cnn_core.data.pipeline import make_tf_dataset
from cnn_core.data.preprocess import INFERENCE_BATCH
from cnn_core.nets.initialisers import initialise_from_data
from cnn_core.nets.models import architecture_switches, build_model
from cnn_core.nets.precision import model_precision, resolve_precision
from cnn_core.predict.calibration import calibrate_temperature
from cnn_core.predict.inference import load_inference_model, predict_proba, tta_level
from cnn_core.predict.ood import calibrate, save_detector
from cnn_core.train import callbacks as cb
from cnn_core.train.cards import (
    STATUS_EARLY_STOPPED,
    STATUS_FINISHED,
    STATUS_NOTHING_SAVED,
    STATUS_RUNNING,
    STATUS_STOPPED,
    default_command,
    deferred_end_commands,
    model_card,
    new_run_name,
)
from cnn_core.train.distributed import distribution_info, make_strategy, prepare_fit, stop_agreement
from cnn_core.train.lr_control import control_path
from cnn_core.train.optimizer import compile_model, jit_compiles, make_lr_changeable
from cnn_core.train.recipes import validate_config
from cnn_core.train.snapshots import EpochSnapshots, load_snapshots

VALIDATION_BATCH_SIZE = INFERENCE_BATCH  # images per validation step (its memory: see INFERENCE_BATCH)


@dataclass
class TrainResult:
    name: str
    status: str
    card: dict | None
    store: ModelStore
    message: str


def train(
    config: dict,
    name: str | None = None,
    *,
    listener=None,
    stop_event: threading.Event | None = None,
    shutdown_event: threading.Event | None = None,
    store: ModelStore | None = None,
    data_dir=None,
    data: Dataset | None = None,
    command: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    strategy=None,
    extra_callbacks: list | None = None,
    probe: np.ndarray | None = None,
) -> TrainResult:
    """Train one model. With `resume=True`, continue run `name` from its last state.

    `strategy`: a tf.distribute strategy (or a name for `make_strategy`); the model is
    built, compiled or loaded in its scope and `batch_size` is the global batch, split
    across replicas. `extra_callbacks`: more Keras callbacks for fit(), run after the
    trainer's own (the benchmarks time and evaluate epochs with one). `probe`: a uint8 sample
    shaped like the dataset's images (the user's drawing or photo) whose feature maps each epoch's
    snapshot keeps (cnn_core.train.snapshots); default the first validation image.
    `shutdown_event`: set (with `stop_event`) when the process running this is going away: the run stops at
    the next batch like any stop, but defers its end-of-run work (test-set evaluation, detector, temperature),
    which takes far longer than a server's shutdown may; its card says how to finish it.
    """
    configure_threads()
    if strategy is None or isinstance(strategy, str):
        strategy = make_strategy(strategy)
    store = store or runs_store()
    state = None
    if resume:
        config, state = _resumed(config, name, store)
    else:
        name = validate_name(name) if name else new_run_name(config)
        _check_name_free(name, store, overwrite)
    # One process at a time per run name: two processes training the same name would write
    # their checkpoints and cards over each other.
    with store.run_lock(name):
        run = _Run(config, name, store, command if command is not None else default_command(), listener, state)
        run.probe = probe
        stops = {"stop_event": stop_event, "shutdown_event": shutdown_event}
        return run.train(strategy, **stops, data_dir=data_dir, data=data, extra_callbacks=extra_callbacks or [])


def _resumed(config: dict, name: str | None, store: ModelStore) -> tuple[dict, dict]:
    """The saved config (with a new `epochs`, if given, to extend or shorten the run) and state."""
    if not name:
        raise ConfigError("Resuming needs the name of the run to continue.")
    validate_name(name)
    if not store.last_state_path(name).is_file():
        raise ModelStoreError(f"There is no interrupted run named '{name}' in {store.root} to resume.")
    state = read_json(store.last_state_path(name))
    saved = state["config"]
    if config.get("epochs") and config["epochs"] != saved["epochs"]:
        saved = {**saved, "epochs": config["epochs"]}
    return saved, state


def _check_name_free(name: str, store: ModelStore, overwrite: bool) -> None:
    if shipped_store().has(name) and store.kind != "shipped":
        raise ModelStoreError(f"'{name}' is the name of a shipped model; choose another name.")
    if not overwrite and (store.has(name) or store.last_state_path(name).exists()):
        raise ModelStoreError(
            f"A run named '{name}' already exists in {store.root}. Use --resume {name} to continue it, "
            f"or pick another --name."
        )


class _Run:
    """One training run: what it trains on, its model, and the state saved after every epoch
    (history, best epoch, the stateful callbacks' counters) so that it can resume."""

    def __init__(self, config: dict, name: str, store: ModelStore, command: str, listener, state: dict | None):
        self.config, self.name, self.store = config, name, store
        self.command, self.listener = command, listener
        state = state or {}
        self.start_epoch = int(state.get("epoch", 0))
        self.history: list[dict] = state.get("history", [])
        self.best = state.get("best", {"epoch": None, "val_accuracy": None})
        self.restored_callbacks = state.get("callbacks", {})
        self.started = state.get("started", now_iso())
        self.prior_seconds = float(state.get("train_seconds", 0.0))
        # A shutdown stopped it before its end-of-run work: resuming it with no epoch left does only that.
        self.end_deferred = bool(state.get("end_deferred"))
        self.data: Dataset | None = None
        self.split: Split | None = None
        self.model: keras.Model | None = None
        self.progress: cb.ProgressEvents | None = None
        self.stateful_callbacks: dict[str, cb.RestoresState] = {}
        self.distribution = distribution_info(None)
        self.alternating_flip: AlternatingFlip | None = None
        self.lr_control: cb.LearningRateControl | None = None
        self.probe: np.ndarray | None = None

    # -- the run, top to bottom ---------------------------------------------------------------

    def train(self, strategy, *, stop_event, shutdown_event, data_dir, data, extra_callbacks) -> TrainResult:
        config = self.config
        validate_config(config)
        keras.utils.set_random_seed(config["seed"])
        self.data, self.split = prepare_data(config, data_dir, data)
        if config["augment"]["flip"] and config.get("flip_schedule", "random") == "alternating":
            # Seeded by the run alone, so a resumed run goes on alternating the same images.
            self.alternating_flip = AlternatingFlip(len(self.split.x_train), config["seed"])
        steps = self._steps_per_epoch()
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            self.model = self._new_or_resumed_model(steps)
        self.distribution = distribution_info(strategy)
        callbacks = self._callbacks(steps, stop_event, strategy) + extra_callbacks
        train_ds, val_ds = prepare_fit(self.model, strategy, *self._datasets())  # a no-op on one machine
        self._emit(self._start_event(steps))
        status = self._fit(train_ds, val_ds, callbacks)
        self.lr_control.drop_late_request()
        if not self.history:
            return self._end_with_nothing_saved()
        if status == STATUS_STOPPED and shutdown_event is not None and shutdown_event.is_set():
            return self._end_deferred()
        return self._evaluate_and_save(status)

    def _steps_per_epoch(self) -> int:
        if len(self.split.x_train) == 0:
            raise ConfigError("No training images left after the validation split and subset.")
        if self.start_epoch >= self.config["epochs"] and not self.end_deferred:
            raise ConfigError(
                f"Run '{self.name}' already completed {self.start_epoch} of {self.config['epochs']} "
                f"epochs; pass a larger --epochs to continue it."
            )
        whole_batches, remainder = divmod(len(self.split.x_train), self.config["batch_size"])
        if jit_compiles(self.config):  # the last, smaller batch is dropped (see _datasets)
            if whole_batches == 0:
                raise ConfigError(
                    f"A compiled (jit) run needs at least one full batch of {self.config['batch_size']} "
                    f"images; it has {len(self.split.x_train)}. Lower the batch size."
                )
            return whole_batches
        return whole_batches + (remainder > 0)

    def _new_or_resumed_model(self, steps: int) -> keras.Model:
        if self.start_epoch:  # a resumed run keeps the precision it started with (its model file has it)
            model = self.store.load_model(self.name, last=True)
            make_lr_changeable(model.optimizer)  # a run saved before learning-rate changes existed
            return model
        config = self.config
        switches = architecture_switches(config)
        model = build_model(
            config["arch"],
            config["dataset"],
            name=self.name,
            precision=resolve_precision(config.get("precision")),
            **switches,
        )
        initialise_from_data(model, config["arch"], config["dataset"], self.split.x_train, **switches)
        return compile_model(model, config, steps)

    def _callbacks(self, steps: int, stop_event, strategy) -> list[keras.callbacks.Callback]:
        config, restored = self.config, self.restored_callbacks
        self.progress = cb.ProgressEvents(
            self.listener, steps, config["epochs"], config["batch_size"], len(self.split.x_train), self.prior_seconds
        )
        if self.has_validation and config["schedule"] == "plateau":
            self.stateful_callbacks["plateau"] = cb.ResumablePlateau(
                restored=restored.get("plateau"),
                monitor="val_loss",
                factor=config["plateau_factor"],
                patience=config["plateau_patience"],
                min_lr=config["min_lr"],
                verbose=0,
            )
        if self.has_validation and config.get("early_stopping_patience"):
            self.stateful_callbacks["early_stopping"] = cb.ResumableEarlyStopping(
                restored=restored.get("early_stopping"),
                monitor="val_accuracy",
                patience=config["early_stopping_patience"],
                restore_best_weights=False,
                verbose=0,
            )
        self.lr_control = self.stateful_callbacks["lr_control"] = cb.LearningRateControl(
            control_path(self.store, self.name), self.listener, restored=restored.get("lr_control")
        )
        lookahead = (
            [
                cb.Lookahead(
                    config["lookahead_every"],
                    config["lookahead_decay"],
                    config["lookahead_power"],
                    steps * config["epochs"],
                )
            ]
            if config.get("lookahead_every")
            else []
        )
        flips = [self.alternating_flip] if self.alternating_flip is not None else []
        return [
            self.progress,
            cb.StopOnSignal(stop_event, stop_agreement(strategy)),
            *lookahead,
            *flips,
            *self.stateful_callbacks.values(),
            self._snapshots(),
            cb.EpochCheckpoint(self.save_epoch),
        ]

    def _snapshots(self) -> EpochSnapshots:
        """Each epoch's replay material (cnn_core.train.snapshots), written before the epoch's event goes out."""
        split, info = self.split, self.data.info
        if self.probe is not None:
            probe, source = np.asarray(self.probe), "your image"
            if probe.dtype != np.uint8 or probe.shape != info.raw_shape:
                raise ConfigError(
                    f"The probe image must be a uint8 array of shape {info.raw_shape} for "
                    f"{info.title}; got {probe.dtype} {probe.shape}."
                )
        elif len(split.x_val):
            probe, source = split.x_val[0], "validation image #0"
        else:
            probe, source = self.data.x_test[0], "test image #0"
        restored = load_snapshots(self.store, self.name) if self.start_epoch else None
        return EpochSnapshots(self.store, self.name, info, split.x_val, split.y_val, probe, source, restored)

    def _datasets(self):
        config, split, info = self.config, self.split, self.data.info
        # Reshuffled per session from a seed that moves on with the epoch, so a resumed run
        # does not replay the order of its first epochs.
        train_ds = make_tf_dataset(
            split.x_train,
            split.y_train,
            info,
            config["batch_size"],
            config["augment"],
            shuffle=True,
            seed=config["seed"] + self.start_epoch,
            drop_remainder=jit_compiles(config),
            alternating_flip=self.alternating_flip,
            mixup=config.get("mixup", 0.0),
            cutmix=config.get("cutmix", 0.0),
        )
        val_ds = (
            make_tf_dataset(split.x_val, split.y_val, info, VALIDATION_BATCH_SIZE, None, shuffle=False, seed=0)
            if self.has_validation
            else None
        )
        return train_ds, val_ds

    def _fit(self, train_ds, val_ds, callbacks) -> str:
        warnings.filterwarnings("ignore", message=".*shuffle=True.*tf.data.Dataset")  # we shuffle in tf.data
        try:
            self.model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=self.config["epochs"],
                initial_epoch=self.start_epoch,
                callbacks=callbacks,
                verbose=0,
            )
        except (cb.StopRequested, KeyboardInterrupt):
            return STATUS_STOPPED
        early = self.stateful_callbacks.get("early_stopping")
        return STATUS_EARLY_STOPPED if early is not None and early.stopped_epoch > 0 else STATUS_FINISHED

    def _evaluate_and_save(self, status: str) -> TrainResult:
        # The checkpoint chosen on validation, not the last epoch, evaluated as it will be served.
        config, name = self.config, self.name
        best_model = load_inference_model(self.store, name)
        evaluation = evaluate(
            best_model, self.data, tta=tta_level(config.get("tta")), model_name=name, seed=config["seed"]
        )
        card = self.card(status, evaluation)
        card["ood"] = self._ood_calibration(best_model)
        card["calibration"] = self._temperature_scaling(best_model)
        self.store.save_json(name, ".eval.json", evaluation)
        self.store.save_json(name, ".json", card)
        message = (
            f"Run '{name}' {status.replace('_', ' ')} after {len(self.history)} epoch(s): "
            f"test accuracy {evaluation['accuracy']:.2%} (best epoch {self.best['epoch']})."
        )
        self._emit(
            {"type": "end", "status": status, "name": name, "test_accuracy": evaluation["accuracy"], "message": message}
        )
        return TrainResult(name, status, card, self.store, message)

    def _end_deferred(self) -> TrainResult:
        """A stop for a shutdown: the epochs' files are on disk already; the card (status `stopped`, no test
        figures) names the two commands that finish the run, and nothing slower is done."""
        name, epochs = self.name, len(self.history)
        finish = deferred_end_commands(name, epochs)
        card = {**self.card(STATUS_STOPPED), "end_of_run": {"deferred": True, **finish}}
        self.store.save_json(name, ".last.json", {**self.state(), "end_deferred": True})
        self.store.save_json(name, ".json", card)
        message = (
            f"Run '{name}' stopped after {epochs} epoch(s) because the server shut down; its evaluation is "
            f"deferred. Continue it with `{finish['continue']}`, or evaluate it as it is with `{finish['evaluate']}`."
        )
        self._emit({"type": "end", "status": STATUS_STOPPED, "name": name, "message": message})
        return TrainResult(name, STATUS_STOPPED, card, self.store, message)

    def _end_with_nothing_saved(self) -> TrainResult:
        message = "Training was stopped before the first epoch finished, so nothing was saved."
        self._emit({"type": "end", "status": STATUS_NOTHING_SAVED, "name": self.name, "message": message})
        return TrainResult(self.name, STATUS_NOTHING_SAVED, None, self.store, message)

    def _ood_calibration(self, model) -> dict | None:
        """The out-of-distribution detector, fitted on the training images and calibrated on the
        validation split, saved beside the model; its card entry (None without a split)."""
        try:
            detector, ood = calibrate(
                model, {"name": self.name, "hyperparameters": self.config}, self.data, split=self.split
            )
        except ConfigError:  # no validation split, or too small a one to calibrate on
            return None
        save_detector(self.store, self.name, detector)
        return ood

    def _temperature_scaling(self, model) -> dict | None:
        """Temperature scaling fitted on the validation split (None without one), with the test set's
        reliability before and after."""
        tta = tta_level(self.config.get("tta"))
        try:
            return calibrate_temperature(
                lambda x: predict_proba(model, x, self.data.info, tta=tta),
                {"hyperparameters": self.config, "tta": tta},
                self.data,
                self.split,
            )
        except ConfigError:
            return None

    # -- what is saved ----------------------------------------------------------------------

    @property
    def has_validation(self) -> bool:
        return len(self.split.x_val) > 0

    def save_epoch(self, epoch: int) -> None:
        """After every epoch: record it, save the best model so far, the last one and the state."""
        event = {**self.progress.last_epoch_event, **self.lr_control.epoch_summary(epoch)}
        self.history.append(
            {
                k: event[k]
                for k in (
                    "epoch",
                    "loss",
                    "accuracy",
                    "val_loss",
                    "val_accuracy",
                    "lr",
                    "lr_factor",
                    "lr_changes",
                    "seconds",
                    "images_per_sec",
                )
            }
        )
        val_acc = event["val_accuracy"]
        if (
            not self.has_validation
            or self.best["val_accuracy"] is None
            or (val_acc is not None and val_acc > self.best["val_accuracy"])
        ):
            self.best = {"epoch": epoch + 1, "val_accuracy": val_acc}
            self.store.save_model(self.model, self.name)
        self.store.save_model(self.model, self.name, last=True)
        self.store.save_json(self.name, ".last.json", self.state())
        self.store.save_json(self.name, ".json", self.card(STATUS_RUNNING))
        self._emit(event)

    def train_seconds(self) -> float:
        return self.prior_seconds + (sum(self.progress.epoch_seconds) if self.progress else 0.0)

    def state(self) -> dict:
        return {
            "name": self.name,
            "config": self.config,
            "epoch": len(self.history),
            "history": self.history,
            "best": self.best,
            "started": self.started,
            "train_seconds": self.train_seconds(),
            "command": self.command,
            "callbacks": {key: callback.state() for key, callback in self.stateful_callbacks.items()},
        }

    def card(self, status: str, evaluation: dict | None = None) -> dict:
        return model_card(
            name=self.name,
            status=status,
            config=self.config,
            data=self.data,
            train_size=len(self.split.x_train),
            val_size=len(self.split.x_val),
            params=self.model.count_params(),
            precision=model_precision(self.model),
            history=self.history,
            best=self.best,
            train_seconds=self.train_seconds(),
            distribution=self.distribution,
            command=self.command,
            started=self.started,
            lr_changes=self.lr_control.changes if self.lr_control else [],
            evaluation=evaluation,
        )

    def _start_event(self, steps: int) -> dict:
        return {
            "type": "start",
            "name": self.name,
            "dataset": self.config["dataset"],
            "arch": self.config["arch"],
            "epochs": self.config["epochs"],
            "start_epoch": self.start_epoch,
            "steps": steps,
            "train_size": len(self.split.x_train),
            "val_size": len(self.split.x_val),
            "params": int(self.model.count_params()),
            "replicas": self.distribution["replicas"],
            "precision": model_precision(self.model),
        }

    def _emit(self, event: dict) -> None:
        if self.listener is not None:
            self.listener(event)


__all__ = ["TrainResult", "train"]
