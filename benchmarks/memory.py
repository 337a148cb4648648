"""Memory of the real app server, the figure Streamlit Community Cloud limits (2.7 GB per app):
peak RSS idle after start, after a real browser visited every page, during a Train-page run
started and stopped through the UI, while that run stops (its final evaluation), and after it.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.memory          # CIFAR-10 `fast`, full set
    CNN_DATA_DIR=../shared/datasets python -m benchmarks.memory --dataset mnist --subset 500 \\
        --train-seconds 2 --min-epochs 0 --idle-seconds 1 --after-seconds 1 --no-runtime-baseline \
        --out /tmp/mem                                                  # smoke (tests/test_memory_benchmark.py)

The server runs with the caps of its environment (CNN_MAX_EPOCHS, CNN_MAX_SUBSET,
CNN_MAX_BATCH_SIZE; defaults in cnn_core/service/jobs.py). Each phase's peak is the kernel's high-water mark (VmHWM, reset at the phase's
start through /proc/PID/clear_refs) of the server and its child processes, so short spikes
between two samples count too; a 0.2 s sampler adds the time series. Unless --no-runtime-baseline,
fresh processes are measured too: the app's libraries with and without TensorFlow, with the Draw and
Photo models, and those models through LiteRT alone (--only-runtime-baseline re-measures just these).

Writes memory.json and memory.md into --out (default benchmarks/results), one entry per machine
(benchmarks/_machines.py): a run replaces this machine's entry and keeps the others.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import _machines
from benchmarks.browser import (
    DIGIT_STROKES,
    REPO,
    draw_digit_and_read_prediction,
    goto,
    launch_chromium,
    start_app,
    stop_app,
    wait_until_idle,
)
from cnn_core.base.runtime import process_tree, pss_mb, rss_mb, status_mb

HERE = Path(__file__).resolve().parent

# Community Cloud's per-app memory, "2.7 GB", read as decimal gigabytes (the stricter reading: 2.7 GiB
# would be 2765 MiB), in MiB like every figure here.
CLOUD_LIMIT_MB = 2.7e9 / 2**20
NOTES_MARKER = _machines.NOTES_MARKER
RUN_NAME = "memory_bench"
CAR = next((REPO / "assets" / "samples" / "cifar10").glob("automobile_*.png"))
# Every page of app.py with its heading; Draw and Photo also predict, which loads their models.
PAGES = [
    ("", "CNN Studio"),
    ("train", "Train a model"),
    ("results", "Results"),
    ("draw", "Draw a digit"),
    ("photo", "Classify a photo"),
    ("explain", "Inside the CNN"),
    ("compare", "Compare runs"),
]
PHASES = {
    "idle": "idle after start (no visitor yet)",
    "pages": "a browser visited every page (a digit drawn, a photo classified)",
    "training": "Train-page run, from Start until Stop is pressed",
    "stopping": "after Stop: the run ends, reloads its best checkpoint and evaluates it",
    "after": "after the run ended, the browser still on the Train page",
}


# -- memory of a process tree (cnn_core.base.runtime reads it) ------------------------------


def reset_hwm(pid: int) -> bool:
    """Reset the kernel's peak-RSS counter of every process in the tree; False where refused."""
    ok = True
    for p in process_tree(pid):
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


class Recorder(threading.Thread):
    """Samples the server tree's RSS every `interval` s and keeps per-phase peaks."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.t0 = time.monotonic()
        self.samples: list[tuple[float, float, str]] = []
        self.pss: list[tuple[str, float]] = []  # (phase, MiB): sampled only, the kernel keeps no PSS peak
        self.phase: str | None = None
        self.phases: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.running = True

    def run(self):
        while self.running:
            rss, pss = rss_mb(self.pid), pss_mb(self.pid)
            with self.lock:
                if self.phase is not None:
                    self.samples.append((round(time.monotonic() - self.t0, 2), round(rss, 1), self.phase))
                    self.pss.append((self.phase, round(pss, 1)))
            time.sleep(self.interval)

    def begin(self, phase: str):
        """Close the current phase and start `phase` with a fresh kernel high-water mark."""
        self.end()
        with self.lock:
            self.phase = phase
            exact = reset_hwm(self.pid)
            self.phases[phase] = {
                "label": PHASES[phase],
                "start_s": round(time.monotonic() - self.t0, 2),
                "start_rss_mb": round(rss_mb(self.pid), 1),
                "hwm_exact": exact,
            }

    def end(self):
        with self.lock:
            if self.phase is None:
                return
            info = self.phases[self.phase]
            rss = [s[1] for s in self.samples if s[2] == self.phase]
            end_rss = rss_mb(self.pid)
            info["peak_pss_mb"] = round(
                max([mb for phase, mb in self.pss if phase == self.phase] + [pss_mb(self.pid)]), 1
            )
            info.update(
                {
                    "seconds": round(time.monotonic() - self.t0 - info["start_s"], 1),
                    "end_rss_mb": round(end_rss, 1),
                    "sampled_peak_mb": round(max(rss + [end_rss]), 1),
                    "samples": len(rss),
                }
            )
            # The kernel's mark catches spikes between samples; without a reset it would also
            # hold earlier phases' peaks, so then only the samples count.
            hwm = status_mb(self.pid, "VmHWM") if info["hwm_exact"] else 0.0
            info["hwm_peak_mb"] = round(hwm, 1) if info["hwm_exact"] else None
            info["peak_rss_mb"] = round(max(hwm, info["sampled_peak_mb"]), 1)
            self.phase = None

    def stop(self):
        self.end()
        self.running = False
        self.join(5)

    def timeline(self, every_s: float = 1.0) -> list[list]:
        """[seconds, MB, phase] at most one per `every_s`, each the largest sample of its slot."""
        slots: dict[int, tuple] = {}
        for t, mb, phase in self.samples:
            key = int(t // every_s)
            if key not in slots or mb > slots[key][1]:
                slots[key] = (t, mb, phase)
        return [list(slots[k]) for k in sorted(slots)]


# -- driving the app in the browser --------------------------------------------------


def visit_every_page(page, url: str) -> list[str]:
    """Open each page; draw a digit on Draw and upload a car photo on Photo. Returns the
    pages that showed an exception box."""
    broken = []
    for path, title in PAGES:
        goto(page, url, path, title)
        if path == "draw":
            page.get_by_text("Draw a digit on the canvas").wait_for(timeout=120_000)
            draw_digit_and_read_prediction(page, DIGIT_STROKES["7"])
        elif path == "photo":
            page.locator('input[type="file"]').first.set_input_files(str(CAR))
            page.locator('[data-testid="stProgress"]').first.wait_for(timeout=120_000)
            wait_until_idle(page)
        if page.locator('[data-testid="stException"]').count():
            broken.append(path or "home")
    return broken


def _settle(page):
    """Wait for the rerun a widget change triggers to start and finish (stale copies gone)."""
    page.wait_for_timeout(700)
    wait_until_idle(page)
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=60_000)


def _choose(page, label: str, option: re.Pattern):
    page.get_by_test_id("stSelectbox").filter(has_text=label).click()
    page.get_by_role("option").filter(has_text=option).first.click()
    _settle(page)


def _set_slider(page, label: str, target: int | None) -> int:
    """Move the slider by keyboard to `target` (None: its maximum); returns the value it shows."""
    thumb = page.get_by_test_id("stSlider").filter(has_text=label).get_by_role("slider")
    thumb.focus()
    page.keyboard.press("End" if target is None else "Home")
    if target is not None:
        for _ in range(400):
            if int(float(thumb.input_value())) >= target:
                break
            page.keyboard.press("ArrowRight")
    _settle(page)
    return int(float(thumb.input_value()))


def start_training_in_ui(page, url: str, dataset_title: str, arch: str, subset: int | None) -> int:
    """Fill the Train page's form and press Start; returns the number of images chosen."""
    goto(page, url, "train", "Train a model")
    _choose(page, "Dataset", re.compile(re.escape(dataset_title)))
    # Options read "arch" or "arch · measured …" (the recipe's figures on this CPU).
    _choose(page, "Architecture and recipe", re.compile(rf"^{re.escape(arch)}( ·|$)"))
    images = _set_slider(page, "Training images", subset)
    name = page.get_by_role("textbox", name="Run name (optional)")
    name.fill(RUN_NAME)
    name.press("Enter")
    _settle(page)
    page.get_by_role("button", name="▶ Start training").click()
    # The progress heading, or already the end for a tiny run.
    page.get_by_role("heading", name=re.compile(rf"^Training {RUN_NAME}")).or_(_ended(page)).first.wait_for(
        timeout=120_000
    )
    return images


def press_stop(page, timeout_s: float = 60):
    """Press Stop; the progress fragment redraws every second, so retry a detached button."""
    deadline = time.time() + timeout_s
    while True:
        try:
            page.get_by_role("button", name="⏹ Stop").click(timeout=5_000)
            page.get_by_text("Stopping at the next batch").first.wait_for(timeout=5_000)
            return
        except Exception:
            if _ended(page).count():
                return  # it ended on its own first
            if time.time() > deadline:
                raise


def _card(runs: Path) -> dict | None:
    try:
        return json.loads((runs / f"{RUN_NAME}.json").read_text())
    except (OSError, ValueError):
        return None  # not written yet, or being replaced


def wait_for_epochs(runs: Path, proc, min_epochs: int, min_seconds: float, max_seconds: float) -> float:
    """Wait until the run has trained `min_seconds` and finished `min_epochs` epochs (card on
    disk), at most `max_seconds`; returns the seconds waited."""
    t0 = time.monotonic()
    while True:
        waited = time.monotonic() - t0
        card = _card(runs)
        epochs = len(card.get("history", [])) if card else 0
        if (waited >= min_seconds and epochs >= min_epochs) or waited >= max_seconds:
            return waited
        if proc.poll() is not None:
            raise RuntimeError("the app server exited during training")
        time.sleep(1)


def _ended(page):
    """The Train page's message that the run ended (finished, stopped or failed)."""
    return page.get_by_text(re.compile(rf"Run '{RUN_NAME}' .* after|nothing was saved|[Ff]ailed"))


def wait_for_end(page, timeout_s: float) -> str:
    """Wait until the Train page reports that the run ended; returns that message."""
    ended = _ended(page).first
    ended.wait_for(timeout=timeout_s * 1000)
    return ended.inner_text().strip()


# -- fresh-process baselines: what importing TensorFlow costs --------------------------

RUNTIME_SNIPPETS = {
    "app_libraries_without_tensorflow": "import numpy, PIL.Image, pandas, streamlit",
    "plus_tensorflow": "import numpy, PIL.Image, pandas, streamlit, tensorflow, keras",
    "plus_draw_and_photo_models": (
        "import numpy, PIL.Image, pandas, streamlit\n"
        "from cnn_core.predict.inference import load_predictor\n"
        "from cnn_core.base.store import shipped_store\n"
        "import numpy as np\n"
        "for name in {defaults!r}:\n"
        "    if shipped_store().model_path(name).is_file():\n"
        "        p = load_predictor(name)\n"
        "        p.predict_samples(np.zeros((1, *p.info.raw_shape), np.uint8))\n"
    ),
}


# The same two models as LiteRT flatbuffers, run by a process that never imports TensorFlow: what
# Draw and Photo alone could cost through a lighter runtime (the app itself converts in memory, with
# TensorFlow loaded, and training needs TensorFlow in any case). {flatbuffers}: a folder of NAME.tflite.
LITERT_ONLY_SNIPPET = (
    "import sys, numpy as np, PIL.Image, pandas, streamlit\n"
    "from pathlib import Path\n"
    "from ai_edge_litert.interpreter import Interpreter\n"
    "for path in sorted(Path({flatbuffers!r}).glob('*.tflite')):\n"
    "    it = Interpreter(model_content=path.read_bytes(), num_threads=2)\n"
    "    it.allocate_tensors()\n"
    "    d = it.get_input_details()[0]\n"
    "    it.set_tensor(d['index'], np.zeros(d['shape'], np.float32))\n"
    "    it.invoke()\n"
    "assert 'tensorflow' not in sys.modules\n"
)
WRITE_FLATBUFFERS_SNIPPET = (
    "from pathlib import Path\n"
    "from cnn_core.predict.inference import load_inference_model\n"
    "from cnn_core.predict.lite import to_flatbuffer\n"
    "from cnn_core.base.store import find_model\n"
    "for name in {defaults!r}:\n"
    "    Path({flatbuffers!r}, name + '.tflite').write_bytes(to_flatbuffer(load_inference_model(find_model(name), name)))\n"
)

RUNTIME_LABELS = {
    "app_libraries_without_tensorflow": "numpy, Pillow, pandas, Streamlit imported (no TensorFlow)",
    "plus_tensorflow": "the same plus TensorFlow / Keras",
    "plus_draw_and_photo_models": "the same plus the Draw and Photo pages' default models, one prediction each",
    "litert_only_draw_and_photo_models": "numpy, Pillow, pandas, Streamlit and LiteRT with the same two models as "
    "flatbuffers, one prediction each, TensorFlow never imported",
}


def runtime_baseline() -> dict:
    """Peak RSS of a fresh Python process running each snippet (the kernel's VmHWM at exit)."""
    out = {}
    from benchmarks.inference import page_defaults

    defaults = tuple(sorted(page_defaults().values()))  # the models the Draw and Photo pages open with
    snippets = {
        key: code.format(defaults=defaults) if "{defaults" in code else code for key, code in RUNTIME_SNIPPETS.items()
    }
    flatbuffers = Path(tempfile.mkdtemp(prefix="memory-tflite-"))
    made = subprocess.run(
        [sys.executable, "-c", WRITE_FLATBUFFERS_SNIPPET.format(flatbuffers=str(flatbuffers), defaults=defaults)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
        check=False,
    )
    if made.returncode == 0:
        snippets["litert_only_draw_and_photo_models"] = LITERT_ONLY_SNIPPET.format(flatbuffers=str(flatbuffers))
    else:
        out["litert_only_draw_and_photo_models"] = {"error": (made.stderr.strip().splitlines() or ["failed"])[-1]}
    for key, code in snippets.items():
        probe = (
            code + "\nfrom pathlib import Path\n"
            "s = dict(l.split(':', 1) for l in Path('/proc/self/status').read_text().splitlines())\n"
            "print(int(s['VmHWM'].split()[0]) / 1024, int(s['VmRSS'].split()[0]) / 1024)\n"
        )
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            out[key] = {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
            continue
        peak, rss = (float(v) for v in done.stdout.strip().splitlines()[-1].split())
        out[key] = {
            "peak_rss_mb": round(peak, 1),
            "rss_mb": round(rss, 1),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    return out


# -- the benchmark -----------------------------------------------------------------------


def run_memory(
    data_dir: Path,
    dataset: str = "cifar10",
    arch: str = "fast",
    subset: int | None = None,
    train_seconds: float = 150,
    min_epochs: int = 1,
    max_train_seconds: float = 900,
    idle_seconds: float = 10,
    after_seconds: float = 20,
    end_timeout_s: float = 900,
    training_process: str = "auto",
) -> dict:
    """Start the real app server, drive it with Chromium through the phases, return the figures."""
    from playwright.sync_api import sync_playwright

    from cnn_core.data.datasets import DATASETS
    from cnn_core.service.jobs import TRAINING_PROCESS_ENV, ServerCaps, train_in_a_process

    tmp = Path(tempfile.mkdtemp(prefix="memory-"))
    runs = tmp / "runs"
    caps = ServerCaps.from_env()
    proc, url, log = start_app(tmp, data_dir, {TRAINING_PROCESS_ENV: training_process})
    recorder = Recorder(proc.pid)
    recorder.start()
    result = {
        "server_pid_tree_at_start": len(process_tree(proc.pid)),
        "training_in": "its own process"
        if train_in_a_process({TRAINING_PROCESS_ENV: training_process})
        else "a thread of the server",
        "caps": {
            "CNN_MAX_EPOCHS": caps.max_epochs,
            "CNN_MAX_SUBSET": caps.max_subset,
            "CNN_MAX_BATCH_SIZE": caps.max_batch_size,
        },
    }
    try:
        recorder.begin("idle")
        time.sleep(idle_seconds)

        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            try:
                recorder.begin("pages")
                result["pages_with_exceptions"] = visit_every_page(page, url)
                time.sleep(2)

                recorder.begin("training")
                images = start_training_in_ui(page, url, DATASETS[dataset].title, arch, subset)
                waited = wait_for_epochs(runs, proc, min_epochs, train_seconds, max_train_seconds)
                progress = page.locator('[data-testid="stProgress"]')
                at_stop = progress.first.inner_text().strip() if progress.count() else ""
                press_stop(page)
                recorder.begin("stopping")
                result["end_message"] = wait_for_end(page, end_timeout_s)
                recorder.begin("after")
                time.sleep(after_seconds)
                recorder.end()
                result["pages_with_exceptions"] += (
                    ["train"] if page.locator('[data-testid="stException"]').count() else []
                )
            except Exception:
                shot = tmp / "memory-failure.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"benchmarks/memory.py: failed; screenshot {shot}, server log {log}", file=sys.stderr)
                raise
            finally:
                context.close()
                browser.close()
    finally:
        recorder.stop()
        stop_app(proc)
    card = _card(runs) or {}
    history = card.get("history", [])
    result.update(
        {
            "phases": recorder.phases,
            "timeline": recorder.timeline(),
            "run": {
                "dataset": dataset,
                "arch": arch,
                "subset_slider": images,
                "subset_asked": subset,
                "batch_size": (card.get("hyperparameters") or {}).get("batch_size"),
                "train_size": card.get("train_size"),
                "val_size": card.get("val_size"),
                "epochs_finished": len(history),
                "status": card.get("status"),
                "seconds_before_stop": round(waited, 1),
                "progress_at_stop": at_stop,
                "images_per_sec": [round(h["images_per_sec"], 1) for h in history if h.get("images_per_sec")],
            },
        }
    )
    result["peak_rss_mb"] = max(p["peak_rss_mb"] for p in recorder.phases.values())
    result["within_cloud_limit"] = result["peak_rss_mb"] <= CLOUD_LIMIT_MB
    # Summed RSS counts the libraries a training process shares with the server twice; PSS counts them once.
    result["peak_pss_mb"] = max(p["peak_pss_mb"] for p in recorder.phases.values())
    result["within_cloud_limit_pss"] = result["peak_pss_mb"] <= CLOUD_LIMIT_MB
    return result


BENCHMARK = "memory"
PHASE_FIELDS = ("peak_rss_mb", "end_rss_mb", "start_rss_mb", "seconds")


def _validate_entry(entry: dict, where: str) -> None:
    def need(ok, field, message):
        if not ok:
            raise ValueError(f"{where}{field}: {message}")

    for field in ("command", "date", "caps", "run", "phases", "timeline", "peak_rss_mb"):
        need(field in entry, f".{field}", "missing")
    for phase in PHASES:
        p = entry["phases"].get(phase)
        need(isinstance(p, dict), f".phases.{phase}", "missing")
        for field in PHASE_FIELDS:
            need(
                isinstance(p.get(field), (int, float)) and p[field] > 0,
                f".phases.{phase}.{field}",
                "must be a positive number",
            )
        need(p["peak_rss_mb"] >= p["end_rss_mb"] - 1, f".phases.{phase}", "peak below its end RSS")
    need(
        entry["peak_rss_mb"] == max(p["peak_rss_mb"] for p in entry["phases"].values()),
        ".peak_rss_mb",
        "must be the largest phase peak",
    )
    if "peak_pss_mb" in entry:  # measured since PSS was added: each phase's sampled PSS, at most its RSS peak
        for phase, p in entry["phases"].items():
            need(0 < p["peak_pss_mb"] <= p["peak_rss_mb"] + 1, f".phases.{phase}.peak_pss_mb", "must lie in (0, RSS]")
        need(
            entry["peak_pss_mb"] == max(p["peak_pss_mb"] for p in entry["phases"].values()),
            ".peak_pss_mb",
            "must be the largest phase peak",
        )


def validate_results(doc: dict) -> None:
    """Raise ValueError unless `doc` is a per-machine memory document whose every entry has all
    phases with positive figures and a session peak equal to its largest phase peak."""
    _machines.validate(doc, BENCHMARK, _validate_entry)


def render_markdown(doc: dict, notes: str = "") -> str:
    lines = [
        "# App server memory (peak RSS)",
        "",
        (
            f"Streamlit Community Cloud gives an app at most 2.7 GB ({CLOUD_LIMIT_MB:.0f} MiB; 2765 MiB if GiB "
            "are meant, the limit here is the stricter reading). Every figure is "
            "MiB of resident memory of the `streamlit run app.py` process (and its children, if any); a phase's "
            "peak is the kernel's high-water mark, reset at the phase's start, so spikes between samples count. "
            "Written by `python -m benchmarks.memory`; one section per machine."
        ),
        "",
    ]
    for key, r in _machines.entries(doc):
        run = r["run"]
        lines += _machines.describe(key, r)
        lines += [
            f"- Measured by `{r['command']}`, commit {r['git_commit']}, {r['date']}.",
            "- Caps: " + ", ".join(f"{name}={value or 'all'}" for name, value in r["caps"].items()) + ".",
            f"- Run started on the Train page: {run['dataset']} `{run['arch']}`"
            + (f" in batches of {run['batch_size']}" if run.get("batch_size") else "")
            + ", "
            + (
                f"{run['train_size']:,} training + {run['val_size']:,} validation images"
                if run["train_size"]
                else f"{run['subset_slider']:,} on the images slider"
            )
            + f"; Stop pressed after {run['seconds_before_stop']:.0f} s "
            f"and {run['epochs_finished']} finished epoch(s) "
            f"({', '.join(f'{v:.0f}' for v in run['images_per_sec']) or '–'} images/s); status {run['status']}.",
            f"- The Train page's progress bar when Stop was pressed: {run.get('progress_at_stop') or '–'}.",
            *([f"- The run trained in {r['training_in']}."] if r.get("training_in") else []),
            "",
            "| phase | peak RSS (MiB) | peak PSS (MiB, sampled) | RSS at its start → end (MiB) | seconds |",
            "|---|---|---|---|---|",
        ]
        for phase in PHASES:
            p = r["phases"][phase]
            lines.append(
                f"| {p['label']} | **{p['peak_rss_mb']:.0f}** | {p.get('peak_pss_mb', '–')} | "
                f"{p['start_rss_mb']:.0f} → {p['end_rss_mb']:.0f} | {p['seconds']:.0f} |"
            )
        verdict = "within" if r["within_cloud_limit"] else "**over**"
        lines += [
            "",
            (
                f"Peak over the whole session: **{r['peak_rss_mb']:.0f} MiB**, {verdict} the 2.7 GB limit "
                f"({CLOUD_LIMIT_MB - r['peak_rss_mb']:.0f} MiB to spare)."
            ),
        ]
        if r.get("peak_pss_mb"):
            verdict = "within" if r["within_cloud_limit_pss"] else "**over**"
            lines += [
                (
                    f"Counting each shared page once (PSS, summed over the server and its training process): "
                    f"**{r['peak_pss_mb']:.0f} MiB**, {verdict} the limit."
                )
            ]
        if r.get("runtime_baseline"):
            lines += [
                "",
                "Fresh Python processes"
                + (f" (`{r['runtime_baseline_command']}`)" if r.get("runtime_baseline_command") else "")
                + ":",
                "",
                "| process | peak RSS (MiB) | seconds |",
                "|---|---|---|",
            ]
            for what, v in r["runtime_baseline"].items():
                lines.append(
                    f"| {RUNTIME_LABELS.get(what, what)} | {v.get('peak_rss_mb', v.get('error'))} | "
                    f"{v.get('seconds', '–')} |"
                )
        lines.append("")
    return "\n".join(lines) + "\n" + NOTES_MARKER + (notes or "\n")


def write_results(out: Path, entry: dict) -> dict:
    """File this machine's entry into memory.json beside the other machines' and rewrite memory.md."""
    doc = _machines.merge(
        _machines.load(out / "memory.json", BENCHMARK), BENCHMARK, entry, {"cloud_limit_mb": round(CLOUD_LIMIT_MB, 1)}
    )
    validate_results(doc)
    _machines.write(out, BENCHMARK, doc, render_markdown(doc, _machines.read_notes(out / "memory.md")))
    return doc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--dataset", default="cifar10", choices=["mnist", "fashion_mnist", "cifar10"])
    parser.add_argument("--arch", default="fast")
    parser.add_argument(
        "--subset", type=int, default=None, help="training images on the page's slider (default: its maximum)"
    )
    parser.add_argument(
        "--train-seconds", type=float, default=150, help="train at least this long before pressing Stop"
    )
    parser.add_argument(
        "--min-epochs",
        type=int,
        default=1,
        help="and at least this many finished epochs, so the final evaluation is measured too",
    )
    parser.add_argument("--max-train-seconds", type=float, default=900)
    parser.add_argument("--idle-seconds", type=float, default=10)
    parser.add_argument("--after-seconds", type=float, default=20)
    parser.add_argument(
        "--training-process",
        choices=("auto", "on", "off"),
        default="auto",
        help="where the Train page's run trains: its own process (on), a server thread (off), or as "
        "the server decides from the machine's memory (auto, the default)",
    )
    parser.add_argument("--no-runtime-baseline", dest="runtime_baseline", action="store_false")
    parser.add_argument(
        "--only-runtime-baseline",
        action="store_true",
        help="re-measure only the fresh-process figures into this machine's existing entry",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.only_runtime_baseline:
        doc = _machines.load(out / "memory.json", BENCHMARK)
        entry = _machines.entry_for(doc, _machines.this_machine())
        if entry is None:
            parser.error(f"{out / 'memory.json'} has no entry for this machine to add the baseline to")
        entry["runtime_baseline"] = runtime_baseline()
        entry["runtime_baseline_command"] = " ".join(
            ["python -m benchmarks.memory", *(argv if argv is not None else sys.argv[1:])]
        )
        write_results(out, entry)
        print(json.dumps(entry["runtime_baseline"], indent=2))
        return

    from cnn_core.base.runtime import git_commit

    data_dir = Path(os.environ.get("CNN_DATA_DIR", REPO.parent / "shared" / "datasets"))
    entry = {
        "machine": _machines.this_machine(),
        "command": " ".join(["python -m benchmarks.memory", *(argv if argv is not None else sys.argv[1:])]),
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    entry.update(
        run_memory(
            data_dir,
            args.dataset,
            args.arch,
            args.subset,
            args.train_seconds,
            args.min_epochs,
            args.max_train_seconds,
            args.idle_seconds,
            args.after_seconds,
            training_process=args.training_process,
        )
    )
    if args.runtime_baseline:
        entry["runtime_baseline"] = runtime_baseline()
    write_results(out, entry)
    print(json.dumps({k: v for k, v in entry.items() if k != "timeline"}, indent=2))


if __name__ == "__main__":
    main()
