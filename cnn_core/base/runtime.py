"""Facts about the machine and the code, for model cards and benchmark results,
and TensorFlow thread settings that follow the CPU quota rather than the host."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path


def cpu_quota() -> int:
    """CPUs this process may really use: the smallest of the visible count, the affinity mask and
    the cgroup v1/v2 quota (containers, Community Cloud), as `joblib.cpu_count()` works it out."""
    import joblib

    return joblib.cpu_count()


# -- memory of a process tree (Linux /proc; 0 where it cannot be read) -------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc/PID/task/TID/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def status_mb(pid: int, field: str = "VmRSS", children: bool = True) -> float:
    """A memory field of /proc/PID/status (VmRSS: resident now, VmHWM: its peak) in MiB, summed
    over the process and, with `children`, all its descendants."""
    total_kb = 0
    for p in process_tree(pid) if children else [pid]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total_kb / 1024


def memory_limit_mb() -> float | None:
    """The memory this process may use in MiB: its cgroup's limit (v2 memory.max, v1 limit_in_bytes;
    containers, Community Cloud) or the machine's total, whichever is lower; None if neither is known."""
    limits = []
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" or a huge v1 number: no limit
            limits.append(int(text) / 2**20)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                limits.append(int(line.split()[1]) / 1024)
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def pss_mb(pid: int, children: bool = True) -> float:
    """Proportional set size in MiB, summed over the process and (with `children`) its descendants: each
    shared page (TensorFlow's libraries, loaded by a server and its training process alike) counts once in
    all, split between its sharers, where summed RSS counts it once per process."""
    total_kb = 0
    for p in process_tree(pid) if children else [pid]:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total_kb / 1024


def rss_mb(pid: int, children: bool = True) -> float:
    """Resident memory of a process (and, with `children`, its descendants) in MiB."""
    return status_mb(pid, "VmRSS", children)


@contextlib.contextmanager
def native_stderr_captured():
    """Keep what C++ libraries write straight to file descriptor 2 (TensorFlow's start-up notices,
    LiteRT's 'Created TensorFlow Lite XNNPACK delegate') off the terminal, where one-line error
    messages go; replay it if the block fails, so nothing that explains a failure is lost."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def tensorflow_available() -> bool:
    """Whether TensorFlow is installed here, found without importing it. It has no wheel for the newest
    Python releases, where requirements.txt leaves it out and only LiteRT serves predictions."""
    import importlib.util

    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def tensorflow_missing_message(what: str = "This page") -> str:
    """The one sentence said where something needs TensorFlow and it is not installed, with the fix."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (
        f"{what} needs TensorFlow, which is not installed with this Python ({version}; TensorFlow has wheels for "
        "3.10 to 3.13): run the app on Python 3.12 or 3.13 (on Community Cloud: redeploy with that Python under "
        "Advanced settings); drawing digits and classifying photos work without it."
    )


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and find its devices with the C++ start-up chatter (oneDNN notices, the
    CUDA probe on a machine without a GPU) kept off the terminal: some of those lines ignore
    TF_CPP_MIN_LOG_LEVEL. Raises ConfigError, with the fix, where TensorFlow is not installed."""
    if "tensorflow" in sys.modules:
        return
    if not tensorflow_available():
        from cnn_core.base.errors import ConfigError

        raise ConfigError(tensorflow_missing_message("This command"))
    with native_stderr_captured():
        import tensorflow as tf

        tf.config.list_physical_devices()


_THREADS_SET = False


def configure_threads() -> None:
    """Size TensorFlow's thread pools to the CPU quota (once, before any op runs)."""
    global _THREADS_SET
    if _THREADS_SET:
        return
    import tensorflow as tf

    n = cpu_quota()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(min(n, 2))
    except RuntimeError:
        pass  # TensorFlow already initialised its pools; keep them
    _THREADS_SET = True


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


# The flags that decide how fast our nets run, in the order a reader compares CPUs by:
# the widest vector unit, then native bfloat16 (AVX512-BF16 dot products, AMX tiles).
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_flag_summary(flags: frozenset[str] | None = None) -> list[str]:
    """The speed-relevant flags this CPU has, e.g. ['avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16']."""
    flags = cpu_flags() if flags is None else flags
    return [f for f in SPEED_FLAGS if f in flags]


def machine_key(machine: dict) -> str:
    """One string per kind of machine, for keeping benchmark results of different CPUs apart:
    'CPU model | N cores | flag+flag'. Timings are comparable only under one key."""
    flags = machine.get("flags")
    flag_text = "+".join(flags) if flags else "flags unknown"
    return f"{machine.get('cpu', 'unknown CPU')} | {machine.get('cores', '?')} cores | {flag_text}"


def onednn_enabled() -> bool:
    """Whether this TensorFlow runs oneDNN's kernels (cnn_core switches them on unless
    TF_ENABLE_ONEDNN_OPTS=0 came first, or TensorFlow was imported before cnn_core)."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # the flag TensorFlow itself reads
    except ImportError:  # a TensorFlow without that module: the setting TensorFlow was started with
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip() not in ("", "0")
    return bool(_pywrap_util_port.IsMklEnabled())


def machine_info() -> dict:
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {
        "cpu": cpu_model(),
        "cores": cpu_quota(),
        "visible_cpus": os.cpu_count(),
        "flags": cpu_flag_summary(),
        "gpus": gpus,
        "platform": platform.platform(),
        "onednn": onednn_enabled(),
    }


def library_versions() -> dict:
    import keras
    import numpy
    import sklearn
    import tensorflow as tf

    return {
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
    }


_HERE = Path(__file__).resolve().parent  # git finds the repository from any folder inside it


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_HERE, capture_output=True, text=True, timeout=5, check=False
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=_HERE,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
