"""Load test in real browsers: N concurrent pages of the app each draw a digit or upload a
photo and wait for the prediction; errors, time to prediction and server memory are recorded,
once with the server idle and once while a training run is active.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.load --pages 20
    python -m benchmarks.load --pages 2 --rounds idle --out /tmp/x      # smoke

Writes benchmarks/results/load.json and load.md, one entry per machine
(`benchmarks/_machines.py`): a run replaces this machine's entry and keeps the others.
`run_load()` is also used by tests/test_load.py with fewer pages.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks import _machines
from benchmarks.browser import CANVAS, CHROMIUM, CHROMIUM_ARGS, DIGIT_STROKES, REPO, start_app, stop_app
from cnn_core.base.runtime import rss_mb

HERE = Path(__file__).resolve().parent

BENCHMARK = "load"
NOTES_MARKER = _machines.NOTES_MARKER
ROUNDS = {
    "idle": ("idle, all visitors arrive at once", {"with_training": False}),
    "idle_loaded": ("idle, pages loaded first, then all act at once", {"with_training": False, "together": True}),
    "while_training": ("while a training run is active, all arrive at once", {"with_training": True}),
}
TRAINING_SETTLE_S = 15.0  # lets the background training get past start-up into its epochs
CAR = next((REPO / "assets" / "samples" / "cifar10").glob("automobile_*.png"))


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine so far, all cores (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class PeakSampler(threading.Thread):
    """Samples a process's RSS every 0.2 s; `.peak` is the largest value seen."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0.0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.2)

    def stop(self):
        self.running = False
        self.join(2)
        return self.peak


class Gate:
    """Holds every visitor back until all have loaded their page (or failed), so the actions
    land together on a server whose pages are already open: time to prediction then measures
    concurrent predictions, not 20 page loads rendering at once."""

    def __init__(self, expected: int):
        self.expected, self.arrived, self.open = expected, 0, asyncio.Event()

    def arrive(self):
        self.arrived += 1
        if self.arrived >= self.expected:
            self.open.set()

    async def wait(self, timeout_s: float):
        self.arrive()
        await asyncio.wait_for(self.open.wait(), timeout_s)


async def _one_visitor(browser, url: str, index: int, timeout_s: float, gate: Gate | None = None) -> dict:
    """One visitor: open a page, draw (even index) or upload (odd), wait for the prediction.
    With a gate, the visitor acts only once every visitor's page has loaded."""
    kind = "draw" if index % 2 == 0 else "upload"
    context = await browser.new_context(viewport={"width": 1300, "height": 950})
    page = await context.new_page()
    started = time.perf_counter()
    arrived = False
    try:
        if kind == "draw":
            await page.goto(f"{url}/draw", timeout=timeout_s * 1000)
            canvas = page.locator(CANVAS).first
            await canvas.wait_for(timeout=timeout_s * 1000)
            await page.get_by_text("Draw a digit on the canvas").wait_for(timeout=timeout_s * 1000)
            value = page.locator('[data-testid="stMetricValue"]').first
            digit = list(DIGIT_STROKES)[index // 2 % len(DIGIT_STROKES)]
            if gate is not None:
                arrived = True
                await gate.wait(timeout_s)
            t0 = None
            while True:  # the canvas can need a moment after first paint before it takes strokes
                box = await canvas.bounding_box()
                for line in DIGIT_STROKES[digit]:
                    await page.mouse.move(box["x"] + line[0][0], box["y"] + line[0][1])
                    await page.mouse.down()
                    for x, y in line[1:]:
                        await page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
                    t0 = t0 or time.perf_counter()  # from the first mouse-up, redraws included
                    await page.mouse.up()
                try:
                    await value.wait_for(timeout=10_000)
                    break
                except Exception:
                    if time.perf_counter() - started > timeout_s:
                        raise
            answer = (await value.inner_text()).strip()
        else:
            await page.goto(f"{url}/photo", timeout=timeout_s * 1000)
            file_input = page.locator('input[type="file"]').first
            await file_input.wait_for(state="attached", timeout=timeout_s * 1000)
            await page.get_by_text("Upload a photo or pick a sample").wait_for(timeout=timeout_s * 1000)
            if gate is not None:
                arrived = True
                await gate.wait(timeout_s)
            t0 = time.perf_counter()
            await file_input.set_input_files(str(CAR))
            first = page.locator('[data-testid="stProgress"]').first
            await first.wait_for(timeout=timeout_s * 1000)
            answer = (await first.inner_text()).strip()
        seconds = time.perf_counter() - t0
        errors = await page.locator('[data-testid="stException"]').count()
        return {
            "kind": kind,
            "ok": errors == 0,
            "seconds": seconds,
            "total_seconds": time.perf_counter() - started,
            "answer": answer,
            "error": None if errors == 0 else "exception box shown",
        }
    except Exception as err:  # noqa: BLE001 - any visitor's failure becomes its failed row, not the run's end
        if gate is not None and not arrived:
            gate.arrive()  # a visitor that failed to load must not hold the others back
        return {
            "kind": kind,
            "ok": False,
            "seconds": None,
            "total_seconds": time.perf_counter() - started,
            "answer": None,
            "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}",
        }
    finally:
        await context.close()


async def _round(url: str, pages: int, timeout_s: float, together: bool = False) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            gate = Gate(pages) if together else None
            return await asyncio.gather(*[_one_visitor(browser, url, i, timeout_s, gate) for i in range(pages)])
        finally:
            await browser.close()


def _summary(results: list[dict], peak_rss: float, cpu: dict | None = None) -> dict:
    times = [r["seconds"] for r in results if r["ok"]]
    return {
        "pages": len(results),
        "errors": sum(not r["ok"] for r in results),
        "cpu_seconds": cpu,
        "p50_seconds": None if not times else round(statistics.median(times), 3),
        "p95_seconds": None if not times else round(float(np.percentile(times, 95)), 3),
        "max_total_seconds": round(max(r["total_seconds"] for r in results), 3),
        "server_peak_rss_mb": round(peak_rss, 1),
        "visitors": results,
    }


def _start_training(data_dir: Path, runs: Path):
    """A real training run in the background (the CLI), to load the machine like an app run would."""
    import subprocess

    env = {**os.environ, "CNN_DATA_DIR": str(data_dir), "CNN_RUNS_DIR": str(runs), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cnn_core",
            "train",
            "--dataset",
            "mnist",
            "--epochs",
            "30",
            "--name",
            "load_background",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_load(
    pages: int,
    data_dir: Path,
    with_training: bool = False,
    timeout_s: float = 120.0,
    together: bool = False,
    training_settle_s: float = TRAINING_SETTLE_S,
) -> dict:
    """One round of `pages` concurrent visitors against a fresh app server. `together`: every
    visitor loads its page first and all act at the same moment."""
    tmp = Path(tempfile.mkdtemp(prefix="load-"))
    proc, url, _ = start_app(tmp, data_dir)
    trainer = None
    try:
        # Warm-up visit: loads both models once, like a real server after its first visitor.
        asyncio.run(_round(url, 2, timeout_s * 2))
        if with_training:
            trainer = _start_training(data_dir, tmp / "runs")
            time.sleep(training_settle_s)
        sampler = PeakSampler(proc.pid)
        sampler.start()
        server0, machine0 = process_cpu_seconds(proc.pid), machine_cpu_seconds()
        results = asyncio.run(_round(url, pages, timeout_s, together))
        # Where the CPU went during the round: the app server vs everything else (the browsers,
        # and the training run in the busy round).
        cpu = {
            "server": round(process_cpu_seconds(proc.pid) - server0, 1),
            "machine": round(machine_cpu_seconds() - machine0, 1),
        }
        peak = sampler.stop()
    finally:
        if trainer is not None:
            trainer.kill()
            trainer.wait()
        stop_app(proc)
    return _summary(results, peak, cpu)


def _validate_entry(entry: dict, where: str) -> None:
    for key in ("command", "git_commit", "date", "targets", "rounds"):
        _machines.need(key in entry, where, f"missing '{key}'")
    _machines.need(entry["rounds"], f"{where}.rounds", "no round measured")
    for name, r in entry["rounds"].items():
        rw = f"{where}.rounds.{name}"
        _machines.need(name in ROUNDS, rw, f"unknown round (known: {', '.join(ROUNDS)})")
        _machines.need(isinstance(r.get("label"), str), f"{rw}.label", "missing")
        _machines.need(r["pages"] > 0 and len(r["visitors"]) == r["pages"], rw, "needs one visitor per page")
        _machines.need(
            r["errors"] == sum(not v["ok"] for v in r["visitors"]), f"{rw}.errors", "must count failed visitors"
        )
        if r["errors"] < r["pages"]:
            _machines.need(0 < r["p50_seconds"] <= r["p95_seconds"], rw, "needs 0 < p50 ≤ p95")
        _machines.need(r["server_peak_rss_mb"] > 0, f"{rw}.server_peak_rss_mb", "must be positive")
        cpu = r.get("cpu_seconds")
        _machines.need(
            isinstance(cpu, dict) and 0 <= cpu["server"] and 0 <= cpu["machine"],
            f"{rw}.cpu_seconds",
            "needs the server's and the machine's CPU seconds",
        )


def validate_results(doc: dict) -> None:
    """Raise ValueError unless `doc` is a well-formed load test document."""
    _machines.validate(doc, BENCHMARK, _validate_entry)


def render_markdown(doc: dict, notes: str = "") -> str:
    lines = [
        "# Load test: concurrent visitors in headless Chromium",
        "",
        (
            "Generated by `python -m benchmarks.load` from `load.json`; one section per machine (CPU model | usable cores | "
            "CPU flags), times compare only within a machine. Half the visitors draw a digit on the canvas, half "
            "upload a car photo; time is from the final mouse-up / upload to the prediction on screen. CPU seconds "
            "are counted over the round: the app server's own, and the whole machine's (the browsers and, while "
            "training, the training run make up the rest)."
        ),
        "",
        "Targets: 0 errors; p95 ≤ 1 s when idle.",
        "",
    ]
    for key, e in _machines.entries(doc):
        lines += _machines.describe(key, e)
        lines += [
            f"- Measured by `{e['command']}`, commit {e['git_commit']}, {e['date']}.",
            "",
            (
                "| round | pages | errors | p50 (s) | p95 (s) | slowest visit (s) | server peak RSS (MB) | "
                "CPU s: server / machine |"
            ),
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in e["rounds"].values():
            lines.append(
                f"| {r['label']} | {r['pages']} | {r['errors']} | {r['p50_seconds']} | {r['p95_seconds']} | "
                f"{r['max_total_seconds']} | {r['server_peak_rss_mb']} | "
                f"{r['cpu_seconds']['server']} / {r['cpu_seconds']['machine']} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n" + NOTES_MARKER + notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=20, help="concurrent visitors per round")
    parser.add_argument("--rounds", nargs="+", choices=list(ROUNDS), default=list(ROUNDS))
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds one visitor may take")
    parser.add_argument(
        "--training-settle",
        type=float,
        default=TRAINING_SETTLE_S,
        help="seconds the background training runs before the visitors arrive",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if args.pages < 1:
        parser.error("--pages must be at least 1")

    from cnn_core.base.runtime import git_commit

    data_dir = Path(os.environ.get("CNN_DATA_DIR", REPO.parent / "shared" / "datasets"))
    previous = _machines.load(args.out / "load.json", BENCHMARK)
    entry = {
        "machine": _machines.this_machine(),
        "command": "python -m benchmarks.load " + " ".join(argv if argv is not None else sys.argv[1:]),
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "targets": {"errors": 0, "idle_p95_seconds": 1.0},
        "rounds": {},
    }
    for key in args.rounds:
        label, options = ROUNDS[key]
        if options.get("with_training"):
            options = {**options, "training_settle_s": args.training_settle}
        entry["rounds"][key] = {**run_load(args.pages, data_dir, timeout_s=args.timeout, **options), "label": label}
    doc = _machines.merge(previous, BENCHMARK, entry)
    validate_results(doc)
    notes = _machines.read_notes(args.out / "load.md")
    _machines.write(args.out, "load", doc, render_markdown(doc, notes))
    print(render_markdown(doc, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
