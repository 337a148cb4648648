"""A background training job per server process, safe to share between threads.

The app keeps one `TrainingJobs` per server (via `st.cache_resource`): a run trains in a
separate process at lower priority (`os.nice`), not in the server, so pages stay responsive
while it trains; the process sends its progress events back through a pipe, and a thread of
the server keeps the latest state (every batch's point for the live curves), so a reload or a
second tab picks the run up where it is. If the server dies, the training process notices, stops
at the next batch and keeps the best model so far (`python -m cnn_core train --resume NAME`
continues it). When the server shuts down (SIGTERM, Ctrl-C), the run stops within SHUTDOWN_SECONDS with
its finished epochs on disk and its end-of-run work deferred (its card says how to finish it), so a
container restart never waits on a training run. Every visitor sees the same job; only the owner token that started it can stop it; a second
start while one is active is refused with a clear message; the owner may also change the
run's learning rate mid-run (`change_lr`, cnn_core.train.lr_control). On a public server,
`ServerCaps` (from CNN_MAX_EPOCHS / CNN_MAX_SUBSET / CNN_MAX_BATCH_SIZE) bounds what one
run may ask for.
"""

from __future__ import annotations

import atexit
import copy
import multiprocessing
import multiprocessing.util  # its exit handler is registered first, so it runs after ours (below)
import os
import secrets
import signal
import sys
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field

from cnn_core.base.errors import CnnError, ConfigError, TrainingBusyError
from cnn_core.service.curves import BatchCurve

# How much lower than the server a training process runs (os.nice): the server's page scripts
# and predictions come first, training takes what CPU is left.
TRAINING_NICENESS = 10
# A training process costs memory a thread does not: its own TensorFlow runtime and data. Server plus a
# CIFAR-10 run in its own process can end within a few MiB of Community Cloud's 2.7 GB (`wide`,
# benchmarks/results/memory.md), leaving no margin. So below this much memory runs train in a thread of
# the server instead. CNN_TRAINING_PROCESS=on/off decides it by hand.
PROCESS_MIN_MEMORY_MB = 4096
TRAINING_PROCESS_ENV = "CNN_TRAINING_PROCESS"
# How long a server going away waits for its run to stop: a stop takes effect at the next batch, and a
# shut-down run only writes its card (cnn_core.train.training: shutdown_event). Container platforms give a
# process a few seconds after SIGTERM before they kill it.
SHUTDOWN_SECONDS = 4.0


def train_in_a_process(environ=None, memory_mb: float | None = None) -> bool:
    """Whether the app's runs train in their own process: CNN_TRAINING_PROCESS=on|off, else (auto) when the
    machine's memory limit (cnn_core.base.runtime.memory_limit_mb) holds a second TensorFlow runtime."""
    from cnn_core.base.runtime import memory_limit_mb

    environ = os.environ if environ is None else environ
    raw = (environ.get(TRAINING_PROCESS_ENV) or "auto").strip().lower()
    if raw in ("on", "1", "true", "yes"):
        return True
    if raw in ("off", "0", "false", "no"):
        return False
    if raw != "auto":
        raise ConfigError(
            f"{TRAINING_PROCESS_ENV} must be on, off or auto (got '{raw}'); fix it in the server's settings."
        )
    memory_mb = memory_limit_mb() if memory_mb is None else memory_mb
    return memory_mb is None or memory_mb >= PROCESS_MIN_MEMORY_MB


# What one visitor's run may ask for on a server, unless CNN_MAX_EPOCHS / CNN_MAX_SUBSET /
# CNN_MAX_BATCH_SIZE say otherwise. Memory, not time, sets them: the server plus a run on the whole
# CIFAR-10 training set stays within Streamlit Community Cloud's 2.7 GB (benchmarks/results/
# memory.md), and batches of 512 would add ≈ 330-400 MB of activations over 256 (the largest
# batch any recipe uses), which that margin does not hold.
DEFAULT_MAX_EPOCHS = 30
DEFAULT_MAX_SUBSET: int | None = None
DEFAULT_MAX_BATCH_SIZE: int | None = 256
UNCAPPED = ("all", "none", "unlimited")
BATCH_SIZES_OFFERED = (32, 64, 128, 256, 512)
LARGEST_TRAINING_SPLIT = 60_000  # MNIST's and Fashion-MNIST's; CIFAR-10 has 50,000


def _env_cap(environ, name: str, default: int | None, allow_uncapped: bool) -> int | None:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    if allow_uncapped and raw.lower() in UNCAPPED:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        also = " or 'all'" if allow_uncapped else ""
        raise ConfigError(f"{name} must be a whole number ≥ 1{also} (got '{raw}'); fix it in the server's settings.")
    return value


@dataclass(frozen=True)
class ServerCaps:
    """Upper bounds for runs started on this server (None: no bound)."""

    max_epochs: int | None = DEFAULT_MAX_EPOCHS
    max_subset: int | None = DEFAULT_MAX_SUBSET  # training images; None allows the whole split
    max_batch_size: int | None = DEFAULT_MAX_BATCH_SIZE

    @classmethod
    def from_env(cls, environ=None) -> ServerCaps:
        """Caps from CNN_MAX_EPOCHS, CNN_MAX_SUBSET and CNN_MAX_BATCH_SIZE ('all' lifts the last
        two); an invalid value raises ConfigError rather than silently serving without a cap."""
        environ = os.environ if environ is None else environ
        return cls(
            _env_cap(environ, "CNN_MAX_EPOCHS", DEFAULT_MAX_EPOCHS, allow_uncapped=False),
            _env_cap(environ, "CNN_MAX_SUBSET", DEFAULT_MAX_SUBSET, allow_uncapped=True),
            _env_cap(environ, "CNN_MAX_BATCH_SIZE", DEFAULT_MAX_BATCH_SIZE, allow_uncapped=True),
        )

    def batch_size_choices(self, recipe_default: int) -> tuple[list[int], int]:
        """(the batch sizes a form offers, the one it starts on): common sizes and the recipe's, within the cap."""
        cap = self.max_batch_size
        offered = set(BATCH_SIZES_OFFERED) | {recipe_default} | ({cap} if cap else set())
        choices = sorted(b for b in offered if not cap or b <= cap)
        return choices, min(recipe_default, cap or recipe_default)

    @property
    def subset_limit(self) -> int:
        """The most training images a form offers: the cap, else the largest training split."""
        return self.max_subset or LARGEST_TRAINING_SPLIT

    def subset_for(self, images: int) -> int | None:
        """A form's image count as a run's `subset`: None (the whole split) at the limit of an uncapped server."""
        return None if images >= self.subset_limit and self.max_subset is None else int(images)

    def check(self, config: dict) -> None:
        """Raise ConfigError naming the cap when `config` asks for more than this server allows."""
        if self.max_epochs is not None and config["epochs"] > self.max_epochs:
            raise ConfigError(
                f"This server allows at most {self.max_epochs} epochs per run (CNN_MAX_EPOCHS); "
                f"{config['epochs']} were asked for."
            )
        subset = config.get("subset")
        if self.max_subset is not None and (subset is None or subset > self.max_subset):
            asked = "the whole training set" if subset is None else f"{subset:,}"
            raise ConfigError(
                f"This server allows at most {self.max_subset:,} training images per run "
                f"(CNN_MAX_SUBSET); {asked} were asked for."
            )
        if self.max_batch_size is not None and config["batch_size"] > self.max_batch_size:
            raise ConfigError(
                f"This server allows batches of at most {self.max_batch_size} images "
                f"(CNN_MAX_BATCH_SIZE); {config['batch_size']} were asked for."
            )


def fraction_done(batch: dict) -> float:
    """How far a run is, 0..1, from its latest batch event: batches done over all batches of all epochs."""
    done = (batch["epoch"] - 1) * batch["steps"] + batch["step"]
    return min(done / (batch["epochs"] * batch["steps"]), 1.0)


@dataclass
class JobSnapshot:
    """A consistent copy of a job's state, for rendering."""

    job_id: str
    name: str | None
    config: dict
    state: str  # "running", "stopping", "done", "failed"
    started: float
    epochs: list[dict] = field(default_factory=list)
    last_batch: dict | None = None
    start_event: dict | None = None
    result_status: str | None = None
    message: str | None = None
    error: str | None = None
    lr_changes: list[dict] = field(default_factory=list)  # the `lr_change` events, in order
    warnings: list[str] = field(default_factory=list)  # the `warning` events' messages (refused lr changes)
    batches: list[dict] = field(default_factory=list)  # per-batch points (cnn_core.service.curves.BatchCurve)
    pid: int | None = None  # the training process's, while it runs in one

    @property
    def active(self) -> bool:
        return self.state in ("running", "stopping")

    @property
    def progress(self) -> float | None:
        """Share of the run's batches done (0..1); None before the first batch."""
        return None if self.last_batch is None else fraction_done(self.last_batch)


class _Job:
    def __init__(self, config: dict, name: str | None, owner: str, store=None):
        self.id = secrets.token_hex(8)
        self.config, self.name, self.owner, self.store = config, name, owner, store
        self.stop_event = threading.Event()
        self.shutdown_event = threading.Event()  # set with stop_event when the server goes away
        self.state = "running"
        self.started = time.time()
        self.epochs: list[dict] = []
        self.last_batch = None
        self.start_event = None
        self.result_status = None
        self.message = None
        self.error = None
        self.lr_changes: list[dict] = []
        self.warnings: list[str] = []
        self.curve = BatchCurve()
        self.thread: threading.Thread | None = None  # the worker (in-process) or the relay from the process
        self.process: multiprocessing.Process | None = None


class TrainingJobs:
    """At most one active training run; the latest finished one stays visible."""

    def __init__(
        self, train_fn=None, caps: ServerCaps | None = None, isolate: bool = True, niceness: int = TRAINING_NICENESS
    ):
        """`caps`: bounds every start is checked against (the app passes the server's); None: none.
        `isolate`: train in a separate process (the app); False trains in a thread of this one
        (a test that patches this process). `train_fn` (default cnn_core.train.training.train) must be
        importable by name when isolated."""
        self._train = train_fn
        self._caps = caps
        self._isolate, self._niceness = isolate, niceness
        self._lock = threading.Lock()
        self._job: _Job | None = None
        _EVERY_JOBS.add(self)

    def start(self, config: dict, name: str | None, owner: str, **train_kwargs) -> str:
        """Start a run in a worker thread; returns its job id. Raises TrainingBusyError, or
        ConfigError when the config exceeds this server's caps."""
        if self._caps is not None:
            self._caps.check(config)
        with self._lock:
            if self._job is not None and self._job.state in ("running", "stopping"):
                raise TrainingBusyError(
                    f"A training run ('{self._job.name or 'starting'}') is already in progress on this server. "
                    "Wait for it to finish; only one run at a time is allowed."
                )
            job = _Job(copy.deepcopy(config), name, owner, train_kwargs.get("store"))
            self._job = job
        if self._isolate:
            self._start_process(job, train_kwargs)
        else:
            job.thread = threading.Thread(
                target=self._run, args=(job, train_kwargs), name=f"train-{job.id}", daemon=True
            )
            job.thread.start()
        return job.id

    def _start_process(self, job: _Job, train_kwargs: dict) -> None:
        from cnn_core.base.store import runs_store

        # The store is resolved here, so that a server whose runs live in a temporary folder
        # (a read-only disk) has its training process write into that same folder.
        job.store = train_kwargs.setdefault("store", job.store or runs_store())
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no copy of the server's threads
        receiver, sender = context.Pipe(duplex=False)
        job.stop_event, job.shutdown_event = context.Event(), context.Event()
        job.process = context.Process(
            target=train_in_child,
            name=f"train-{job.id}",
            daemon=True,
            args=(self._train, job.config, job.name, sender, job.stop_event, self._niceness, train_kwargs),
            kwargs={"shutdown_event": job.shutdown_event},
        )
        job.process.start()
        sender.close()  # the child holds the only writing end: its exit closes the pipe
        job.thread = threading.Thread(target=self._relay, args=(job, receiver), name=f"relay-{job.id}", daemon=True)
        job.thread.start()

    def _listener(self, job: _Job):
        def on_event(event: dict):
            with self._lock:
                kind = event["type"]
                if kind == "start":
                    job.start_event, job.name = event, event["name"]
                elif kind == "batch":
                    job.last_batch = event
                    job.curve.add(event)
                elif kind == "epoch":
                    job.epochs.append(event)
                elif kind == "end":
                    job.result_status, job.message = event["status"], event.get("message")
                elif kind == "lr_change":
                    job.lr_changes.append(event)
                elif kind == "warning":
                    job.warnings.append(event["message"])

        return on_event

    def _relay(self, job: _Job, receiver) -> None:
        """Hand the training process's events to the job until it ends, then record how it ended."""
        on_event, outcome = self._listener(job), None
        while True:
            try:
                event = receiver.recv()
            except (EOFError, OSError):
                break
            if event["type"] in ("result", "error"):
                outcome = event
            else:
                on_event(event)
        receiver.close()
        job.process.join()
        with self._lock:
            if outcome is not None and outcome["type"] == "result":
                job.name, job.result_status, job.message = outcome["name"], outcome["status"], outcome["message"]
                job.state = "done"
            else:
                job.state = "failed"
                job.error = outcome["message"] if outcome else _died_message(job, job.process.exitcode)

    def _run(self, job: _Job, train_kwargs: dict):
        # Linux gives each thread its own priority, inherited by the threads it starts (TensorFlow's pools,
        # where this run is the server's first TensorFlow work): the run takes the CPU time the visitors'
        # reruns leave, as a training process does.
        _lower_priority(self._niceness)
        try:
            result = (self._train or _default_train())(
                job.config,
                job.name,
                listener=self._listener(job),
                stop_event=job.stop_event,
                shutdown_event=job.shutdown_event,
                **train_kwargs,
            )
            with self._lock:
                job.name, job.result_status, job.message = result.name, result.status, result.message
                job.state = "done"
        except CnnError as err:
            with self._lock:
                job.state, job.error = "failed", str(err)
        except Exception as err:  # noqa: BLE001 - any training failure keeps the server alive and is shown
            with self._lock:
                job.state = "failed"
                job.error = f"Training failed unexpectedly: {type(err).__name__}: {err}"
            traceback.print_exc()

    def stop(self, job_id: str, owner: str) -> bool:
        """Ask the run to stop at its next batch. Only its owner may; returns True if asked."""
        with self._lock:
            job = self._job
            if job is None or job.id != job_id or job.owner != owner or job.state != "running":
                return False
            job.state = "stopping"
            job.stop_event.set()
            return True

    def shutdown(self, timeout: float = SHUTDOWN_SECONDS) -> bool:
        """End the active run because this server is going away: it stops at its next batch and writes its card
        with the end-of-run work deferred. Waits up to `timeout` seconds; a training process still alive then is
        killed (its finished epochs are on disk, saved atomically). True when the run ended in time (or none ran)."""
        with self._lock:
            job = self._job
            if job is None or job.state not in ("running", "stopping"):
                return True
            job.state = "stopping"
            job.shutdown_event.set()
            job.stop_event.set()
        deadline = time.monotonic() + timeout
        if job.process is not None:
            job.process.join(timeout)
            if job.process.is_alive():
                job.process.kill()
                job.process.join(1.0)
        if job.thread is not None:
            job.thread.join(max(0.0, deadline - time.monotonic()))
        return time.monotonic() <= deadline and not (job.thread is not None and job.thread.is_alive())

    def change_lr(self, job_id: str, owner: str, *, multiply: float | None = None, set_to: float | None = None):
        """Ask the running job to multiply its learning rate by `multiply`, or set it to `set_to`, from
        its next batch (cnn_core.train.lr_control.request_lr_change); returns the control file's path. Only
        its owner may; otherwise, or when the run is not training, a ConfigError says why."""
        from cnn_core.train.lr_control import request_lr_change

        with self._lock:
            job = self._job
            if job is None or job.id != job_id or job.state != "running":
                raise ConfigError("That run is not training any more; its learning rate cannot be changed.")
            if job.owner != owner:
                raise ConfigError("Only the browser tab that started this run can change its learning rate.")
            if job.name is None:
                raise ConfigError("The run is still starting; its learning rate can be changed from its first batch.")
            name, store = job.name, job.store
        return request_lr_change(name, multiply=multiply, set_to=set_to, store=store)

    def is_owner(self, job_id: str | None, owner: str | None) -> bool:
        with self._lock:
            return bool(self._job and job_id and self._job.id == job_id and self._job.owner == owner)

    def snapshot(self) -> JobSnapshot | None:
        with self._lock:
            job = self._job
            if job is None:
                return None
            return JobSnapshot(
                job.id,
                job.name,
                copy.deepcopy(job.config),
                job.state,
                job.started,
                list(job.epochs),
                job.last_batch,
                job.start_event,
                job.result_status,
                job.message,
                job.error,
                list(job.lr_changes),
                list(job.warnings),
                job.curve.points(),
                job.process.pid if job.process is not None and job.state != "done" else None,
            )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current job's thread ends (tests, shutdown). True when it ended."""
        job = self._job
        if job is None or job.thread is None:
            return True
        job.thread.join(timeout)
        return not job.thread.is_alive()


# Every TrainingJobs of this process, so that its exit ends their runs (below).
_EVERY_JOBS: weakref.WeakSet[TrainingJobs] = weakref.WeakSet()


@atexit.register
def shut_down_every_run() -> None:
    """The server is going away: every active run stops for the shutdown (TrainingJobs.shutdown). Called by
    the app's server when it shuts down (app_pages/_server.py: uvicorn ends a SIGTERM by raising it again,
    which skips exit handlers) and at this process's exit otherwise. Registered after multiprocessing's own
    exit handler, so it runs before that one joins the training processes, which would otherwise wait for a
    full end-of-run. A second call finds nothing left to stop."""
    for jobs in list(_EVERY_JOBS):
        jobs.shutdown()


def _default_train():
    from cnn_core.train.training import train

    return train


def _died_message(job: _Job, exitcode: int | None) -> str:
    how = (
        f"was killed (signal {-exitcode})" if exitcode is not None and exitcode < 0 else f"exited with code {exitcode}"
    )
    saved = (
        f" Epochs completed before it ended are saved: continue with `python -m cnn_core train --resume {job.name}`."
        if job.epochs and job.name
        else ""
    )
    return f"The training process {how} before the run ended (out of memory, or stopped from outside?).{saved}"


def train_in_child(
    train_fn,
    config: dict,
    name: str | None,
    sender,
    stop_event,
    niceness: int,
    train_kwargs: dict,
    shutdown_event=None,
) -> None:
    """The training process's body: train at lower priority (niceness, and Linux's SCHED_IDLE policy, under
    which the training threads only get CPU time that nothing else wants) and send every event to the server.

    A stop (the Stop button) ends the run at the next batch with the best model so far saved, as in-process
    runs do, and so does the server dying (no one waits on this process then). SIGTERM and Ctrl-C (a terminal's
    reaches the server and this process alike) are a shutdown: the same stop, with the end-of-run work deferred
    (`shutdown_event`), since the server's own exit waits on this process."""
    _lower_priority(niceness)
    shutdown_event = shutdown_event if shutdown_event is not None else threading.Event()
    stop = _stop_on_signals(stop_event, shutdown_event)

    def send(event: dict) -> None:
        try:
            sender.send(event)
        except (BrokenPipeError, ConnectionError, OSError):
            stop()

    try:
        result = (train_fn or _default_train())(
            config, name, listener=send, stop_event=stop_event, shutdown_event=shutdown_event, **train_kwargs
        )
        send({"type": "result", "name": result.name, "status": result.status, "message": result.message})
    except CnnError as err:
        send({"type": "error", "message": str(err)})
    except Exception as err:  # noqa: BLE001 - any training failure is reported to the page; traceback to the log
        traceback.print_exc()
        send({"type": "error", "message": f"Training failed unexpectedly: {type(err).__name__}: {err}"})
    finally:
        sender.close()
    if shutdown_event.is_set():
        # Its files are on disk and the server has its last event: skip the interpreter's teardown
        # (TensorFlow's takes seconds), which the server's own exit waits on.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _lower_priority(niceness: int) -> None:
    """Lower the calling thread's priority (on Linux, that thread's alone): `niceness` and SCHED_IDLE."""
    os.nice(niceness)
    if hasattr(os, "sched_setscheduler"):  # Linux: run only when the server and the browser leave a core idle
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass  # not allowed here: the lower niceness still applies


def _stop_on_signals(stop_event, shutdown_event):
    """The training process's stops: SIGTERM and Ctrl-C shut down; its server dying (killed, crashed) stops it
    cleanly rather than let it train for nobody. Returns the plain stop."""

    def stop(*_):
        stop_event.set()

    def shut_down(*_):
        shutdown_event.set()
        stop_event.set()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), stop()), daemon=True).start()
    return stop
