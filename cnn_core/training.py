"""Training: data → model → fit → evaluate → card, with progress events, a stop
signal, atomic per-epoch checkpoints and resume.

    config = resolve_config("mnist", "seed", epochs=3, subset=6000)
    result = train(config, name="demo", listener=print)

Progress events are plain dicts handed to `listener(event)`:
    {"type": "start", ...}  once, with sizes and steps
    {"type": "batch", "epoch", "step", "steps", "loss", "accuracy", "lr",
     "images_per_sec", "elapsed", "eta"}  after every batch
    {"type": "epoch", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr",
     "images_per_sec", "seconds", "elapsed", "eta"}  after every epoch
    {"type": "end", "status", "name", "test_accuracy"?}  once
The CLI draws a progress bar from them; the app draws live curves.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .datasets import Dataset, load_dataset, split_validation, take_subset
from .distributed import cluster_info, prepare_fit, stop_agreement
from .errors import ConfigError, ModelStoreError
from .cards import (STATUS_EARLY_STOPPED, STATUS_FINISHED, STATUS_NOTHING_SAVED, STATUS_RUNNING,
                    STATUS_STOPPED, display_status)
from .evaluation import evaluate
from .inference import load_inference_model
from .precision import model_precision, resolve_precision
from .recipes import validate_config
from .runtime import configure_threads, git_commit, library_versions, machine_info, now_iso
from .store import ModelStore, runs_store, shipped_store, validate_name




class StopRequested(Exception):
    """Raised inside fit() at the batch after a stop was requested."""


@dataclass
class TrainResult:
    name: str
    status: str
    card: dict | None
    store: ModelStore
    message: str


# -- data ----------------------------------------------------------------------------

def make_tf_dataset(x: np.ndarray, y: np.ndarray, info, batch_size: int, augment: dict | None,
                    shuffle: bool, seed: int):
    """uint8 arrays → batched, augmented, prefetched tf.data pipeline of (pixels, one-hot)."""
    import tensorflow as tf
    from .augment import build_augmenter

    # The set stays uint8 and each batch is cast to float32 (the raw 0..255 pixels the models
    # rescale internally): a float32 copy of the whole set, held again by the shuffle buffer,
    # cost 1.27 GB more peak memory on CIFAR-10 (benchmarks/memory.py), for the same values.
    x = np.asarray(x)
    if x.ndim == len(info.input_shape):  # (N,H,W) grey → add the channel axis
        x = x[..., None]
    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    augmenter = build_augmenter(augment, seed) if augment else None
    num_classes = info.num_classes

    def to_example(images, labels):
        images = tf.cast(images, tf.float32)
        if augmenter is not None:
            images = augmenter(images, training=True)
        return images, tf.one_hot(labels, num_classes)

    # Augmenting whole batches is far cheaper than per image on a CPU.
    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def prepare_data(config: dict, data_dir=None, data: Dataset | None = None):
    """(dataset, train/validation split after subsetting) exactly as the config says."""
    data = data or load_dataset(config["dataset"], data_dir)
    val_size = min(config["val_size"], len(data.x_train) // 5) if config["subset"] else config["val_size"]
    split = split_validation(data.x_train, data.y_train, val_size, config["seed"])
    split.x_train, split.y_train = take_subset(split.x_train, split.y_train, config["subset"], config["seed"])
    if config["subset"] and len(split.x_val) > max(1000, config["subset"] // 2):
        # A quick demo on a subset does not need thousands of validation images per epoch.
        split.x_val, split.y_val = take_subset(split.x_val, split.y_val, max(1000, config["subset"] // 2),
                                               config["seed"])
    return data, split


# -- model + optimizer ---------------------------------------------------------------------

def make_optimizer(config: dict, steps_per_epoch: int):
    import keras

    if config["optimizer"] == "adam":
        return keras.optimizers.Adam(learning_rate=config["lr"])
    if config["optimizer"] == "sgd_nesterov":
        total = max(1, steps_per_epoch * config["epochs"])
        warmup = max(1, int(total * config.get("warmup_fraction", 0.2)))
        # Linear warm-up from lr/10 to lr, then cosine decay to 0: a smooth one-cycle.
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config["lr"] / 10, decay_steps=max(1, total - warmup), alpha=0.0,
            warmup_target=config["lr"], warmup_steps=warmup)
        opt = keras.optimizers.SGD(learning_rate=schedule, momentum=config.get("momentum", 0.9), nesterov=True,
                                   weight_decay=config.get("weight_decay") or None)
        if config.get("weight_decay"):
            # Decay only the conv/dense kernels: shrinking BN scales and biases hurts.
            opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
        return opt
    raise ConfigError(f"Unknown optimizer '{config['optimizer']}'.")


def compile_model(model, config: dict, steps_per_epoch: int):
    import keras

    model.compile(optimizer=make_optimizer(config, steps_per_epoch),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.get("label_smoothing", 0.0)),
                  metrics=["accuracy"])
    return model


def current_lr(model) -> float:
    import keras

    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


# -- distribution ---------------------------------------------------------------------------

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str | None = "default", devices: list[str] | None = None):
    """A tf.distribute strategy by name, or None for the default (one device).

    `mirrored`: synchronous data parallelism over the GPUs of one machine (all of them,
    or `devices`); `multi_worker`: the same across machines, each reading TF_CONFIG.
    """
    import tensorflow as tf

    if name in (None, "default"):
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"Unknown strategy '{name}'. Choose one of: {', '.join(STRATEGIES)}.")


def distribution_info(strategy) -> dict:
    if strategy is None:
        return {"strategy": "default", "replicas": 1}
    devices = list(getattr(strategy.extended, "worker_devices", ()) or ())
    return {"strategy": type(strategy).__name__, "replicas": int(strategy.num_replicas_in_sync),
            "devices": devices, **cluster_info(strategy)}


# -- callbacks --------------------------------------------------------------------------------

def _callback_classes():
    """Keras callback classes, defined lazily so importing cnn_core stays light."""
    import keras

    class ProgressEvents(keras.callbacks.Callback):
        def __init__(self, listener, steps, epochs, batch_size, train_size, start_epoch, prior_elapsed):
            super().__init__()
            self.listener, self.steps, self.epochs = listener, steps, epochs
            self.batch_size, self.train_size = batch_size, train_size
            self.start_epoch, self.prior_elapsed = start_epoch, prior_elapsed
            self.epoch_seconds: list[float] = []

        def emit(self, event):
            if self.listener is not None:
                self.listener(event)

        def on_train_begin(self, logs=None):
            self.t_start = time.perf_counter()

        def elapsed(self):
            return self.prior_elapsed + time.perf_counter() - self.t_start

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.t_epoch = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            spent = time.perf_counter() - self.t_epoch
            done = batch + 1
            seen = min(done * self.batch_size, self.train_size)
            per_step = spent / done
            remaining_steps = (self.steps - done) + (self.epochs - self.epoch - 1) * self.steps
            self.emit({"type": "batch", "epoch": self.epoch + 1, "epochs": self.epochs, "step": done,
                       "steps": self.steps, "loss": float(logs.get("loss", np.nan)),
                       "accuracy": float(logs.get("accuracy", np.nan)), "lr": current_lr(self.model),
                       "images_per_sec": seen / spent if spent > 0 else 0.0,
                       "elapsed": self.elapsed(), "eta": remaining_steps * per_step})

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            seconds = time.perf_counter() - self.t_epoch
            self.epoch_seconds.append(seconds)
            left = self.epochs - epoch - 1
            self.last_epoch_event = {
                "type": "epoch", "epoch": epoch + 1, "epochs": self.epochs,
                "loss": float(logs.get("loss", np.nan)), "accuracy": float(logs.get("accuracy", np.nan)),
                "val_loss": float(logs["val_loss"]) if "val_loss" in logs else None,
                "val_accuracy": float(logs["val_accuracy"]) if "val_accuracy" in logs else None,
                "lr": current_lr(self.model), "seconds": seconds,
                "images_per_sec": self.train_size / seconds if seconds > 0 else 0.0,
                "elapsed": self.elapsed(), "eta": left * float(np.mean(self.epoch_seconds))}

    class StopOnSignal(keras.callbacks.Callback):
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

        def state(self):
            return {k: _plain(getattr(self, k, None)) for k in self.STATE}

    class ResumableEarlyStopping(RestoresState, keras.callbacks.EarlyStopping):
        STATE = ("wait", "best", "best_epoch")

    class ResumablePlateau(RestoresState, keras.callbacks.ReduceLROnPlateau):
        STATE = ("wait", "best", "cooldown_counter")

    class RunCheckpoint(keras.callbacks.Callback):
        """After every epoch: record history, save the best model and the last state."""

        def __init__(self, run: "_Run"):
            super().__init__()
            self.run = run

        def on_epoch_end(self, epoch, logs=None):
            self.run.on_epoch_end(epoch, logs or {})

    return ProgressEvents, StopOnSignal, ResumableEarlyStopping, ResumablePlateau, RunCheckpoint


def _plain(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else (1e300 if value > 0 else -1e300)
    return value


# -- the run --------------------------------------------------------------------------------

class _Run:
    """State of one training run, shared by the callbacks and the card writer."""

    def __init__(self, config, name, store, data, split, model, command, listener, state=None):
        self.config, self.name, self.store = config, name, store
        self.data, self.split, self.model = data, split, model
        self.command, self.listener = command, listener
        state = state or {}
        self.history: list[dict] = state.get("history", [])
        self.best = state.get("best", {"epoch": None, "val_accuracy": None})
        self.callback_state = state.get("callbacks", {})
        self.started = state.get("started", now_iso())
        self.prior_elapsed = float(state.get("train_seconds", 0.0))
        self.progress = None
        self.callbacks_with_state = {}
        self.distribution = {"strategy": "default", "replicas": 1}
        self.precision = "fp32"  # what the network computes in while training

    @property
    def has_validation(self) -> bool:
        return len(self.split.x_val) > 0

    def on_epoch_end(self, epoch: int, logs: dict):
        event = dict(self.progress.last_epoch_event)
        self.history.append({k: event[k] for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                                                    "lr", "seconds", "images_per_sec")})
        val_acc = event["val_accuracy"]
        improved = (not self.has_validation or self.best["val_accuracy"] is None
                    or (val_acc is not None and val_acc > self.best["val_accuracy"]))
        if improved:
            self.best = {"epoch": epoch + 1, "val_accuracy": val_acc}
            self.store.save_model(self.model, self.name)
        self.store.save_model(self.model, self.name, last=True)
        self.store.save_json(self.name, ".last.json", self.state())
        self.store.save_json(self.name, ".json", self.card(STATUS_RUNNING))
        if self.listener:
            self.listener(event)

    def train_seconds(self) -> float:
        return self.prior_elapsed + (sum(self.progress.epoch_seconds) if self.progress else 0.0)

    def state(self) -> dict:
        return {"name": self.name, "config": self.config, "epoch": len(self.history), "history": self.history,
                "best": self.best, "started": self.started, "train_seconds": self.train_seconds(),
                "command": self.command,
                "callbacks": {k: cb.state() for k, cb in self.callbacks_with_state.items()}}

    def card(self, status: str, evaluation: dict | None = None) -> dict:
        info = self.data.info
        seconds = self.train_seconds()
        images = len(self.split.x_train) * len(self.history)
        card = {
            "name": self.name,
            "dataset": info.name,
            "dataset_title": info.title,
            "class_names": list(info.class_names),
            "architecture": self.config["arch"],
            "recipe": self.config["recipe"],
            "params": int(self.model.count_params()),
            "hyperparameters": self.config,
            "augmentation": self.config["augment"],
            "precision": self.precision,
            "tta": bool(self.config.get("tta")),
            "train_size": int(len(self.split.x_train)),
            "val_size": int(len(self.split.x_val)),
            "trained_on": ("training split minus a held-out validation set (seed %d)" % self.config["seed"])
            if self.has_validation else "the full training set (fixed schedule, no validation decisions)",
            "epochs_planned": self.config["epochs"],
            "epochs_run": len(self.history),
            "best_epoch": self.best["epoch"],
            "best_val_accuracy": self.best["val_accuracy"],
            "status": status,
            "pid": os.getpid() if status == STATUS_RUNNING else None,
            "train_seconds": round(seconds, 2),
            "images_per_sec": round(images / seconds, 1) if seconds > 0 else None,
            "machine": machine_info(),
            "distribution": self.distribution,
            "versions": library_versions(),
            "dataset_sha256": self.data.sha256,
            "data_source": self.data.source_name,
            "command": self.command,
            "git_commit": git_commit(),
            "started": self.started,
            "updated": now_iso(),
            "history": self.history,
        }
        if evaluation is not None:
            card.update(test_accuracy=evaluation["accuracy"], test_loss=evaluation["loss"],
                        test_size=evaluation["test_size"], per_class_accuracy=evaluation["per_class_accuracy"])
        return card


def default_command() -> str:
    return " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable), "-m", "cnn_core", *sys.argv[1:]]) \
        if sys.argv and sys.argv[0].endswith(("__main__.py", "cnn_core")) else ""


def new_run_name(config: dict) -> str:
    return f"{config['dataset']}_{config['arch']}_{time.strftime('%Y%m%d-%H%M%S')}"


def _check_name_free(name: str, store: ModelStore, overwrite: bool):
    if shipped_store().has(name) and store.kind != "shipped":
        raise ModelStoreError(f"'{name}' is the name of a shipped model; choose another name.")
    if not overwrite and (store.has(name) or store.last_state_path(name).exists()):
        raise ModelStoreError(
            f"A run named '{name}' already exists in {store.root}. Use --resume {name} to continue it, "
            f"or pick another --name.")


def train(config: dict, name: str | None = None, *, listener=None, stop_event: threading.Event | None = None,
          store: ModelStore | None = None, data_dir=None, data: Dataset | None = None,
          command: str | None = None, resume: bool = False, overwrite: bool = False,
          strategy=None, extra_callbacks: list | None = None) -> TrainResult:
    """Train one model. With `resume=True`, continue run `name` from its last state.

    `strategy`: a tf.distribute strategy (or a name for `make_strategy`); the model is
    built, compiled or loaded in its scope and `batch_size` is the global batch, split
    across replicas. `extra_callbacks`: more Keras callbacks for fit(), run after the
    trainer's own (the benchmarks time and evaluate epochs with one).
    """
    configure_threads()
    if strategy is None or isinstance(strategy, str):
        strategy = make_strategy(strategy)
    store = store or runs_store()
    state = None
    if resume:
        if not name:
            raise ConfigError("Resuming needs the name of the run to continue.")
        validate_name(name)
        if not store.last_state_path(name).is_file():
            raise ModelStoreError(f"There is no interrupted run named '{name}' in {store.root} to resume.")
        from .store import read_json

        state = read_json(store.last_state_path(name))
        saved = state["config"]
        if config.get("epochs") and config["epochs"] != saved["epochs"]:
            saved = {**saved, "epochs": config["epochs"]}  # extend (or shorten) a run
        config = saved
    else:
        name = validate_name(name) if name else new_run_name(config)
        _check_name_free(name, store, overwrite)
    # One process at a time per run name: two processes training the same name would write
    # their checkpoints and cards over each other.
    with store.run_lock(name):
        return _train_named(config, name, state, store, strategy, listener=listener, stop_event=stop_event,
                            data_dir=data_dir, data=data, command=command, extra_callbacks=extra_callbacks)


def _train_named(config: dict, name: str, state: dict | None, store: ModelStore, strategy, *, listener,
                 stop_event, data_dir, data, command, extra_callbacks) -> TrainResult:
    import keras
    from .models import build_model

    validate_config(config)
    keras.utils.set_random_seed(config["seed"])
    data, split = prepare_data(config, data_dir, data)
    if len(split.x_train) == 0:
        raise ConfigError("No training images left after the validation split and subset.")
    steps = int(np.ceil(len(split.x_train) / config["batch_size"]))
    start_epoch = int(state["epoch"]) if state else 0
    if start_epoch >= config["epochs"]:
        raise ConfigError(f"Run '{name}' already completed {start_epoch} of {config['epochs']} epochs; "
                          f"pass a larger --epochs to continue it.")

    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if state:  # a resumed run keeps the precision it started with (its model file has it)
            model = store.load_model(name, last=True)
        else:
            model = compile_model(build_model(config["arch"], config["dataset"], name=name,
                                              precision=resolve_precision(config.get("precision"))), config, steps)
    run = _Run(config, name, store, data, split, model, command if command is not None else default_command(),
               listener, state)
    run.distribution = distribution_info(strategy)
    run.precision = model_precision(model)

    ProgressEvents, StopOnSignal, EarlyStop, Plateau, RunCheckpoint = _callback_classes()
    run.progress = ProgressEvents(listener, steps, config["epochs"], config["batch_size"], len(split.x_train),
                                  start_epoch, run.prior_elapsed)
    callbacks = [run.progress, StopOnSignal(stop_event, stop_agreement(strategy))]
    if run.has_validation and config.get("schedule") == "plateau":
        run.callbacks_with_state["plateau"] = Plateau(
            restored=run.callback_state.get("plateau"), monitor="val_loss", factor=config["plateau_factor"],
            patience=config["plateau_patience"], min_lr=config["min_lr"], verbose=0)
    if run.has_validation and config.get("early_stopping_patience"):
        run.callbacks_with_state["early_stopping"] = EarlyStop(
            restored=run.callback_state.get("early_stopping"), monitor="val_accuracy",
            patience=config["early_stopping_patience"], restore_best_weights=False, verbose=0)
    callbacks += list(run.callbacks_with_state.values()) + [RunCheckpoint(run)] + list(extra_callbacks or [])

    train_ds = make_tf_dataset(split.x_train, split.y_train, data.info, config["batch_size"],
                               config["augment"], shuffle=True, seed=config["seed"] + start_epoch)
    val_ds = make_tf_dataset(split.x_val, split.y_val, data.info, 512, None, shuffle=False, seed=0) \
        if run.has_validation else None
    train_ds, val_ds = prepare_fit(model, strategy, train_ds, val_ds)  # a no-op on one machine

    if listener:
        listener({"type": "start", "name": name, "dataset": config["dataset"], "arch": config["arch"],
                  "epochs": config["epochs"], "start_epoch": start_epoch, "steps": steps,
                  "train_size": len(split.x_train), "val_size": len(split.x_val),
                  "params": int(model.count_params()), "replicas": run.distribution["replicas"],
                  "precision": run.precision})
    status = STATUS_FINISHED
    warnings.filterwarnings("ignore", message=".*shuffle=True.*tf.data.Dataset")  # we shuffle in tf.data
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=config["epochs"], initial_epoch=start_epoch,
                  callbacks=callbacks, verbose=0)
        early = run.callbacks_with_state.get("early_stopping")
        if early is not None and early.stopped_epoch > 0:
            status = STATUS_EARLY_STOPPED
    except StopRequested:
        status = STATUS_STOPPED
    except KeyboardInterrupt:
        status = STATUS_STOPPED

    if not run.history:
        message = "Training was stopped before the first epoch finished, so nothing was saved."
        if listener:
            listener({"type": "end", "status": STATUS_NOTHING_SAVED, "name": name, "message": message})
        return TrainResult(name, STATUS_NOTHING_SAVED, None, store, message)

    # The checkpoint chosen on validation, not the last epoch, evaluated as it will be served.
    best_model = load_inference_model(store, name)
    evaluation = evaluate(best_model, data, tta=bool(config.get("tta")), model_name=name, seed=config["seed"])
    card = run.card(status, evaluation)
    card["ood"] = _ood_calibration(best_model, config, data)
    store.save_json(name, ".eval.json", evaluation)
    store.save_json(name, ".json", card)
    message = (f"Run '{name}' {status.replace('_', ' ')} after {len(run.history)} epoch(s): "
               f"test accuracy {evaluation['accuracy']:.2%} (best epoch {run.best['epoch']}).")
    if listener:
        listener({"type": "end", "status": status, "name": name, "test_accuracy": evaluation["accuracy"],
                  "message": message})
    return TrainResult(name, status, card, store, message)


def _ood_calibration(model, config: dict, data: Dataset) -> dict | None:
    """Out-of-distribution threshold from the validation split (None without one)."""
    from .inference import Predictor
    from .ood import calibration

    try:
        predictor = Predictor(config.get("name", "run"), model, {"hyperparameters": config}, data.info,
                              bool(config.get("tta")))
        return calibration(predictor, data)
    except ConfigError:  # no validation split, or too small a one to calibrate on
        return None


__all__ = ["train", "TrainResult", "StopRequested", "make_tf_dataset", "prepare_data", "display_status"]
