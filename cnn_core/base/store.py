"""Where models live, and how they are written so that a crash never leaves half a file.

Two stores: the shipped models in `trained_models/` (tracked, read-only at run time)
and new runs in the runs folder (`CNN_RUNS_DIR`, default `runs/`, git-ignored).
Per model name:

    NAME.keras        best weights so far (what `load_model` returns)
    NAME.json         the model card
    NAME.eval.json    saved evaluation (lets the app show results without the dataset)
    NAME.last.keras   last training state (weights + optimizer) for --resume
    NAME.last.json    last epoch, history and callback state for --resume
    NAME.lock         held while a process trains NAME (its pid inside)
    NAME.lr.json      a learning-rate change asked of the run while it trains (cnn_core.train.lr_control)
    NAME.snapshots.npz each epoch's validation predictions, first filters and probe feature maps (cnn_core.train.snapshots)

Every write goes to a temporary file in the same folder, is fsync'ed, then renamed
over the target with `os.replace` (atomic on POSIX): readers see the old file or
the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cnn_core.base.errors import ModelStoreError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the repository: cnn_core/base/store.py
SHIPPED_DIR = PACKAGE_ROOT / "trained_models"
RUNS_DIR_ENV = "CNN_RUNS_DIR"
# Seconds to sleep after a temporary file is written and before it is renamed into
# place: lets fault-injection tests kill the process exactly mid-save.
FAULT_PAUSE_ENV = "CNN_FAULT_PAUSE_AFTER_TEMP_WRITE"

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def validate_name(name: str) -> str:
    """Model names are plain words: no path separators, dots, '..', NUL or absolute paths."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = repr(name) if isinstance(name, str) else type(name).__name__
        raise ModelStoreError(
            f"Invalid model name {shown}: use 1-64 letters, digits, '_' or '-', starting with a letter or digit."
        )
    return name


def _describe_os_error(err: OSError, target: Path) -> str:
    if err.errno == errno.ENOSPC:
        return f"Could not save {target.name}: the disk is full. The previous version is unchanged."
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"Could not save {target.name}: {target.parent} is read-only. The previous version is unchanged."
    return f"Could not save {target.name}: {err.strerror or err}. The previous version is unchanged."


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pause_for_fault_injection() -> None:
    pause = os.environ.get(FAULT_PAUSE_ENV)
    if pause:
        time.sleep(float(pause))


# mkstemp creates files 0600; saved models and cards get the usual umask-based mode instead.
_UMASK = os.umask(0)
os.umask(_UMASK)
_TEMP_PID = re.compile(r"\.pid(\d+)\.")


def _remove_orphaned_temps(target: Path) -> None:
    """Delete temporary files of this model name left by a writer that was killed mid-save
    (the pid in their name is no longer running). Live writers' files are left alone."""
    name = target.name.split(".", 1)[0]
    for tmp in target.parent.glob(f".{glob.escape(name)}.*.tmp*"):
        match = _TEMP_PID.search(tmp.name)
        if match and int(match.group(1)) != os.getpid() and not process_alive(int(match.group(1))):
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass  # best effort: never let a leftover block a save


def atomic_write(target: Path, write) -> None:
    """Call `write(tmp_path)` then atomically move tmp_path over `target`.

    The temporary file keeps the target's suffix (Keras insists on `.keras`) and
    carries the writer's pid, so files orphaned by a killed writer can be cleaned up.
    """
    target = Path(target)
    _remove_orphaned_temps(target)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.stem}.pid{os.getpid()}.", suffix=f".tmp{target.suffix}", dir=target.parent
        )
        os.fchmod(fd, 0o666 & ~_UMASK)
        os.close(fd)
    except OSError as err:  # read-only or full disk, missing folder: before anything was written
        raise ModelStoreError(_describe_os_error(err, target)) from err
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _pause_for_fault_injection()
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ModelStoreError(_describe_os_error(err, target)) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(target: Path, data: dict) -> None:
    text = json.dumps(data, indent=2, default=to_json_value)
    atomic_write(target, lambda tmp: tmp.write_text(text))


def to_json_value(value):
    """`value` as JSON can hold it: numpy scalars and arrays as Python numbers and lists, and the
    infinities and NaN that strict JSON lacks as +-1e300 and None. Other Python values are kept;
    anything else is a TypeError (the `default=` contract of `json.dumps`)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else (1e300 if value > 0 else -1e300)
    if value is None or isinstance(value, (str, int, float, list, dict, tuple)):
        return value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ModelStoreError(f"{Path(path).name} does not exist.") from None
    except (OSError, ValueError) as err:
        raise ModelStoreError(f"{Path(path).name} is damaged and cannot be read ({err}).") from None


_JSON_READ: dict[str, tuple[tuple, dict]] = {}


def read_json_cached(path: Path) -> dict:
    """read_json, parsed again only when the file changes (its size or modification time): for files a
    server reads on every rerun, such as the benchmark figures beside the models. The result is shared
    between callers, which must not change it."""
    try:
        stat = Path(path).stat()
    except OSError:
        return read_json(path)  # says what is wrong
    version = (stat.st_mtime_ns, stat.st_size)
    known = _JSON_READ.get(str(path))
    if known is not None and known[0] == version:
        return known[1]
    value = read_json(path)
    _JSON_READ[str(path)] = (version, value)
    return value


def _lock_exclusively(target: Path, name: str):
    """NAME.lock opened and exclusively flock'ed, or a ModelStoreError naming the holder."""
    import fcntl  # POSIX only: imported here so that predictions still work where it is missing

    while True:
        with contextlib.ExitStack() as closing:  # the handle is closed on every way out but the return
            try:
                # "a+": created when missing; never truncates a holder's pid
                handle = closing.enter_context(open(target, "a+"))
            except OSError as err:
                raise ModelStoreError(_describe_os_error(err, target)) from err
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()
                raise ModelStoreError(_busy_message(name, holder)) from None
            # A holder that finished between our open and our flock removed the file we opened: then
            # the lock is on a file no one else will open, so lock the one now at the path instead.
            with contextlib.suppress(FileNotFoundError):
                if os.path.samestat(os.fstat(handle.fileno()), os.stat(target)):
                    closing.pop_all()  # the caller holds the lock from here on
                    return handle


def _busy_message(name: str, holder: str) -> str:
    if holder == str(os.getpid()):
        return f"Run '{name}' is already being trained in this process."
    who = f"process {holder}" if holder.isdigit() else "another process"
    return f"Run '{name}' is being trained right now by {who}; wait for it to finish, or pick another --name."


@dataclass(frozen=True)
class ModelStore:
    root: Path
    kind: str  # "shipped" or "runs"
    writable: bool
    ephemeral: bool = False  # runs in a temporary folder: lost when the server restarts

    def path(self, name: str, suffix: str) -> Path:
        return self.root / f"{validate_name(name)}{suffix}"

    def model_path(self, name: str) -> Path:
        return self.path(name, ".keras")

    def card_path(self, name: str) -> Path:
        return self.path(name, ".json")

    def eval_path(self, name: str) -> Path:
        return self.path(name, ".eval.json")

    def last_model_path(self, name: str) -> Path:
        return self.path(name, ".last.keras")

    def last_state_path(self, name: str) -> Path:
        return self.path(name, ".last.json")

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = []
        for card in sorted(self.root.glob("*.json")):
            stem = card.name[: -len(".json")]
            if NAME_RE.fullmatch(stem) and (self.root / f"{stem}.keras").is_file():
                found.append(stem)
        return found

    def has(self, name: str) -> bool:
        return self.model_path(name).is_file() and self.card_path(name).is_file()

    def _require_writable(self):
        if not self.writable:
            raise ModelStoreError(f"The {self.kind} store {self.root} is read-only.")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ModelStoreError(
                f"Could not create the {self.kind} folder {self.root}: {err.strerror or err}."
            ) from err

    def lock_path(self, name: str) -> Path:
        return self.path(name, ".lock")

    @contextlib.contextmanager
    def run_lock(self, name: str):
        """Held while a process trains `name`: an exclusive `flock` on NAME.lock, which holds the
        holder's pid. The kernel releases it when the process ends, however it ends (kill -9
        too), so a lock is never stale. A second run of the name, from another process or
        another thread of this one (flock locks belong to one open file), is a clear error."""
        self._require_writable()
        target = self.lock_path(name)
        handle = _lock_exclusively(target, name)
        try:
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
            yield target
        finally:
            target.unlink(missing_ok=True)  # before the unlock: the next run creates a new file
            handle.close()

    def lock_holder(self, name: str) -> int | None:
        """The pid of the live process training `name` (the one in its NAME.lock), else None. A lock
        file left by a killed trainer names a dead process: None too."""
        try:
            pid = int(self.lock_path(name).read_text().strip() or 0)
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def save_model(self, model, name: str, last: bool = False) -> Path:
        self._require_writable()
        target = self.last_model_path(name) if last else self.model_path(name)
        if not last and getattr(model, "optimizer", None) is not None:
            model = _without_optimizer(model)  # the best model is for inference: half the size
        atomic_write(target, lambda tmp: model.save(tmp))
        return target

    def save_json(self, name: str, suffix: str, data: dict) -> Path:
        self._require_writable()
        target = self.path(name, suffix)
        atomic_write_json(target, data)
        return target

    def load_model(self, name: str, last: bool = False):
        import keras

        # The project's registered layers must be known to load a model; its optimizer and schedule
        # (cnn_core.train.optimizer) only for a resumed run, whose trainer has imported them.
        from cnn_core.base import layers  # noqa: F401

        path = self.last_model_path(name) if last else self.model_path(name)
        if not path.is_file():
            raise ModelStoreError(f"No model named '{name}' in {self.root}.")
        try:
            # safe_mode refuses models that carry arbitrary code (Lambda layers etc.).
            return keras.saving.load_model(path, safe_mode=True, compile=last)
        except Exception as err:  # noqa: BLE001 - any Keras load failure becomes one message
            raise ModelStoreError(f"The model file {path.name} is damaged or not a Keras model ({err}).") from None

    def load_card(self, name: str) -> dict:
        return read_json(self.card_path(name))

    def load_eval(self, name: str) -> dict | None:
        path = self.eval_path(name)
        return read_json(path) if path.is_file() else None

    def delete(self, name: str) -> None:
        self._require_writable()
        for suffix in (
            ".keras",
            ".json",
            ".eval.json",
            ".last.keras",
            ".last.json",
            ".lr.json",
            ".snapshots.npz",
            ".detector.npz",
        ):
            self.path(name, suffix).unlink(missing_ok=True)
        _remove_orphaned_temps(self.model_path(name))


def _without_optimizer(model):
    """The same network and weights, never compiled, so its file holds no optimizer state.
    (keras.models.clone_model re-compiles a compiled model in Keras 3.15, which kept the
    SGD momentum in every best checkpoint: twice the file size.)"""
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


_WRITABLE_DIRS: set[Path] = set()


def _writable_dir(path: Path) -> bool:
    """Whether files can be created in `path` (made if missing). Probed by writing a file once per folder
    and process (the app asks on every rerun); a folder that has since vanished is probed again."""
    if path in _WRITABLE_DIRS and path.is_dir():
        return True
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-", delete=True):
            pass
    except OSError:
        return False
    _WRITABLE_DIRS.add(path)
    return True


_EPHEMERAL_RUNS: Path | None = None


def runs_store() -> ModelStore:
    """The store for new runs. Falls back to a temporary folder on a read-only disk
    (e.g. a hosted deployment), marked ephemeral so the UI can warn and offer downloads."""
    global _EPHEMERAL_RUNS
    root = Path(os.environ.get(RUNS_DIR_ENV) or PACKAGE_ROOT / "runs").expanduser()
    if _writable_dir(root):
        return ModelStore(root, "runs", writable=True)
    if _EPHEMERAL_RUNS is None:
        _EPHEMERAL_RUNS = Path(tempfile.mkdtemp(prefix="cnn-runs-"))
    return ModelStore(_EPHEMERAL_RUNS, "runs", writable=True, ephemeral=True)


def shipped_store() -> ModelStore:
    return ModelStore(SHIPPED_DIR, "shipped", writable=False)


def all_stores() -> list[ModelStore]:
    return [shipped_store(), runs_store()]


def find_model(name: str) -> ModelStore:
    """The store that holds `name` (shipped models first)."""
    validate_name(name)
    for store in all_stores():
        if store.has(name):
            return store
    available = ", ".join(list_model_names()) or "none yet"
    raise ModelStoreError(f"No saved model named '{name}'. Available: {available}.")


def list_model_names() -> list[str]:
    names: list[str] = []
    for store in all_stores():
        names += [n for n in store.names() if n not in names]
    return names


def process_alive(pid: int | None) -> bool:
    """Whether a process with this pid is running (signal 0 checks without sending anything)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
