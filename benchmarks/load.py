"""Load benchmark: what the app's server spends per visitor, and thirty visitors who draw or upload within
the same second, with the server on one core, idle and while a training run is active.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.load                   # every round, ≈ 10 min
    python -m benchmarks.load --visitors 4 --visits 2 --rounds cost idle --out /tmp/x   # smoke

The server runs pinned to one core (its affinity mask, as `taskset -c 0` sets it) and the browsers (one
headless Chromium, a fresh context per visitor: nothing cached) on the other cores, so the figures are the
server's and not the browsers'. The rounds, each on a fresh server warmed by one visit to each page:

- `cost`: `--visits` visitors one after another per page, each opening the page and getting one prediction
  (Draw: one stroke; Photo: one upload). The server process's CPU time over the round, divided by the
  visits: Streamlit's static files, the page's script runs and the prediction all count.
- `idle`, `training`: `--visitors` visitors (half on the Draw page, half on the Photo page) open their page
  and wait until every page is open; the Draw visitors press and drag a stroke; then all release the
  mouse or upload at once. Each visit's time is taken twice: by the server (the rerun the drawing or upload
  starts, logged by the app, app_pages/_common.py `logged_rerun`) and on screen (from the mouse-up or upload
  to the answer shown). `training` first starts a `quick` CIFAR-10 run from the Train page, in a thread of
  the server (CNN_TRAINING_PROCESS=off, the app's choice on Community Cloud), so on the server's core.

Writes benchmarks/results/load.json and load.md, one entry per machine (`benchmarks/_machines.py`): a run
replaces this machine's entry and keeps the others. tests/test_load.py runs a small version.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
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
    "cost": "server CPU per visit, one visitor at a time",
    "idle": "all draw or upload within the same second, server idle",
    "training": "all draw or upload within the same second, a quick CIFAR-10 run training in the server",
}
TARGETS = {"cpu_seconds_per_visit": 0.1, "idle_p95_seconds": 1.0, "training_p95_seconds": 2.0, "errors": 0}
CAR = next((REPO / "assets" / "samples" / "cifar10").glob("automobile_*.png"))
ONE_STROKE_DIGITS = [d for d, strokes in DIGIT_STROKES.items() if len(strokes) == 1 and len(strokes[0]) <= 6]
TRAINING_SETTLE_S = 10.0  # the run gets past building its model and pipeline before the visitors arrive


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def split_cores() -> tuple[set[int], set[int]]:
    """(the server's core, the browsers' cores): the first usable core for the server, the rest for the
    browsers; on a single core both share it."""
    usable = sorted(os.sched_getaffinity(0))
    return {usable[0]}, set(usable[1:]) or {usable[0]}


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
    """Holds every visitor back until all have arrived (or failed), so that the next step starts together.
    `on_open` is called the moment it opens."""

    def __init__(self, expected: int, on_open=None):
        self.expected, self.arrived, self.open, self.on_open = expected, 0, asyncio.Event(), on_open

    def arrive(self):
        self.arrived += 1
        if self.arrived >= self.expected and not self.open.is_set():
            if self.on_open is not None:
                self.on_open()
            self.open.set()

    async def wait(self, timeout_s: float):
        self.arrive()
        await asyncio.wait_for(self.open.wait(), timeout_s)


class Counters:
    """Where the CPU went over a stretch of time: the server process's CPU seconds and storage reads, and
    each core's busy seconds (from /proc)."""

    def __init__(self, pid: int):
        self.pid = pid

    def read(self) -> dict:
        io = dict(line.split(": ") for line in Path(f"/proc/{self.pid}/io").read_text().splitlines())
        cores = {}
        for line in Path("/proc/stat").read_text().splitlines():
            name, *values = line.split()
            if name.startswith("cpu") and name != "cpu":
                ticks = [int(v) for v in values[:8]]
                cores[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
        return {
            "at": time.perf_counter(),
            "server_cpu": process_cpu_seconds(self.pid),
            "server_read_bytes": int(io["read_bytes"]),
            "cores": cores,
        }

    @staticmethod
    def between(start: dict, end: dict, server_cores, browser_cores) -> dict:
        wall = end["at"] - start["at"]

        def busy(cores):
            return sum(end["cores"][c] - start["cores"][c] for c in cores) / (wall * len(cores))

        return {
            "seconds": round(wall, 2),
            "server_cpu_seconds": round(end["server_cpu"] - start["server_cpu"], 2),
            "server_storage_read_bytes": end["server_read_bytes"] - start["server_read_bytes"],
            "server_core_busy": round(busy(server_cores), 3),
            "browser_cores_busy": round(busy(browser_cores), 3),
        }


def read_rerun_log(path: Path, since: float) -> list[dict]:
    """The app's logged reruns (one JSON line each) that ended after the wall-clock time `since`."""
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["ended"] >= since and r["input"]]


# -- one visitor ---------------------------------------------------------------------------------------


async def _open_page(page, url: str, kind: str, timeout_ms: float):
    """Open the Draw or Photo page and wait until it can take a drawing or an upload."""
    if kind == "draw":
        await page.goto(f"{url}/draw", timeout=timeout_ms)
        await page.locator(CANVAS).first.wait_for(timeout=timeout_ms)
        await page.get_by_text("Draw a digit on the canvas").wait_for(timeout=timeout_ms)
    else:
        await page.goto(f"{url}/photo", timeout=timeout_ms)
        await page.locator('input[type="file"]').first.wait_for(state="attached", timeout=timeout_ms)
        await page.get_by_text("Upload a photo or pick a sample").wait_for(timeout=timeout_ms)


async def _press_stroke(page, digit: str) -> None:
    """Press the mouse on the canvas and drag a one-stroke digit, without releasing it: the canvas sends
    the drawing on mouse-up."""
    box = await page.locator(CANVAS).first.bounding_box()
    (x0, y0), *rest = DIGIT_STROKES[digit][0]
    await page.mouse.move(box["x"] + x0, box["y"] + y0)
    await page.mouse.down()
    for x, y in rest:
        await page.mouse.move(box["x"] + x, box["y"] + y, steps=3)


async def _answer(page, kind: str, timeout_ms: float) -> str:
    shown = page.locator('[data-testid="stMetricValue"]' if kind == "draw" else '[data-testid="stProgress"]').first
    await shown.wait_for(timeout=timeout_ms)
    return (await shown.inner_text()).strip()


async def _visitor(browser, url, index, timeout_s, opened: Gate | None = None, pressed: Gate | None = None) -> dict:
    """One visitor in a fresh browser context: open the Draw (even index) or Photo page, draw one stroke or
    upload the car photo, wait for the answer. With gates, the visitor waits for every page to be open and
    then for every stroke to be pressed, so that the mouse-ups and uploads land together."""
    kind = "draw" if index % 2 == 0 else "upload"
    context = await browser.new_context(viewport={"width": 1300, "height": 950})
    page = await context.new_page()
    traffic = {"requests": 0, "bytes": 0}

    def count(response):
        traffic["requests"] += 1
        traffic["bytes"] += int(response.headers.get("content-length") or 0)

    page.on("response", count)
    started, timeout_ms, gates_passed = time.perf_counter(), timeout_s * 1000, 0
    digit = ONE_STROKE_DIGITS[index // 2 % len(ONE_STROKE_DIGITS)]
    try:
        await _open_page(page, url, kind, timeout_ms)
        if opened is not None:
            gates_passed = 1
            await opened.wait(timeout_s)
        if kind == "draw":
            await _press_stroke(page, digit)
        if pressed is not None:
            gates_passed = 2
            await pressed.wait(timeout_s)
        acted = time.perf_counter()
        if kind == "draw":
            await page.mouse.up()
        else:
            await page.locator('input[type="file"]').first.set_input_files(str(CAR))
        answer = await _answer(page, kind, timeout_ms)
        seconds = time.perf_counter() - acted
        errors = await page.locator('[data-testid="stException"]').count()
        return {
            "kind": kind,
            "ok": errors == 0,
            "seconds": round(seconds, 3),
            "acted_at": acted,
            "total_seconds": round(time.perf_counter() - started, 3),
            "answer": answer,
            "error": None if errors == 0 else "exception box shown",
            **traffic,
        }
    except Exception as err:  # noqa: BLE001 - a visitor's failure becomes its failed row, not the run's end
        for gate in (opened, pressed)[gates_passed:]:
            if gate is not None:
                gate.arrive()  # a visitor that failed must not hold the others back
        return {
            "kind": kind,
            "ok": False,
            "seconds": None,
            "acted_at": None,
            "total_seconds": round(time.perf_counter() - started, 3),
            "answer": None,
            "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}",
            **traffic,
        }
    finally:
        await context.close()


# -- rounds ----------------------------------------------------------------------------------------


async def _with_browser(run):
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            return await run(browser)
        finally:
            await browser.close()


async def _warm_up(browser, url: str, timeout_s: float) -> None:
    """One visit to each page: loads the models, as on a server that has had its first visitor."""
    for index in (0, 1):
        visit = await _visitor(browser, url, index, timeout_s)
        if not visit["ok"]:
            raise RuntimeError(f"the warm-up visit failed: {visit['error']}")


async def _cost_round(browser, url: str, pid: int, visits: int, timeout_s: float) -> dict:
    await _warm_up(browser, url, timeout_s)
    pages = {}
    for kind, first in (("draw", 0), ("upload", 1)):
        rows, cpu0 = [], process_cpu_seconds(pid)
        for i in range(visits):
            rows.append(await _visitor(browser, url, first + 2 * i, timeout_s))
        await asyncio.sleep(0.5)  # the last visit's closing messages
        cpu = process_cpu_seconds(pid) - cpu0
        ok = [r for r in rows if r["ok"]]
        pages["draw" if kind == "draw" else "photo"] = {
            "visits": visits,
            "errors": visits - len(ok),
            "cpu_seconds": round(cpu, 3),
            "cpu_seconds_per_visit": round(cpu / visits, 4),
            "requests_per_visit": round(statistics.mean(r["requests"] for r in rows), 1),
            "bytes_per_visit": round(statistics.mean(r["bytes"] for r in rows)),
            "screen_seconds_median": round(statistics.median(r["seconds"] for r in ok), 3) if ok else None,
        }
    return {"pages": pages}


TRAIN_PROGRESS = re.compile(r"Epoch \d+/\d+ · batch \d+/\d+")


async def _start_quick_run(browser, url: str, timeout_s: float = 600.0):
    """Start a `quick` CIFAR-10 run (the Train page's first recipe) in a tab of its own; returns the tab."""
    page = await (await browser.new_context(viewport={"width": 1300, "height": 950})).new_page()
    await page.goto(f"{url}/train", timeout=timeout_s * 1000)
    await page.get_by_role("button", name="Start training").wait_for(timeout=timeout_s * 1000)
    await page.locator('[data-testid="stSelectbox"]').filter(has_text="Dataset").first.click()
    await page.get_by_role("option", name="CIFAR-10").first.click()
    await page.wait_for_timeout(1500)
    await page.get_by_role("button", name="Start training").click()
    await page.get_by_text(TRAIN_PROGRESS).first.wait_for(timeout=timeout_s * 1000)
    return page


async def _train_progress(page) -> str:
    shown = page.get_by_text(TRAIN_PROGRESS).first
    return TRAIN_PROGRESS.search(await shown.inner_text()).group(0) if await shown.count() else ""


async def _crowd_round(browser, url: str, visitors: int, timeout_s: float, training: bool, counters) -> dict:
    await _warm_up(browser, url, timeout_s)
    train_page, progress = None, {}
    if training:
        train_page = await _start_quick_run(browser, url)
        await asyncio.sleep(TRAINING_SETTLE_S)
        progress["before"] = await _train_progress(train_page)
    marks = {}
    opened, pressed = Gate(visitors), Gate(visitors, on_open=lambda: marks.setdefault("acted", counters.read()))
    since = time.time()
    rows = await asyncio.gather(*[_visitor(browser, url, i, timeout_s, opened, pressed) for i in range(visitors)])
    marks["answered"] = counters.read()
    if training:
        progress["after"] = await _train_progress(train_page)
    acted = [r["acted_at"] for r in rows if r["acted_at"] is not None]
    for r in rows:
        r.pop("acted_at")
    return {
        "visitors": rows,
        "actions_spread_seconds": round(max(acted) - min(acted), 3) if acted else None,
        "since": since,
        "training_progress": progress or None,
        "marks": marks,
    }


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 3),
        "p95": round(float(np.percentile(values, 95)), 3),
        "max": round(max(values), 3),
    }


def run_round(name: str, data_dir: Path, visitors: int = 30, visits: int = 10, timeout_s: float = 180.0) -> dict:
    """One round on a fresh server pinned to one core, the browsers on the others."""
    server_cores, browser_cores = split_cores()
    tmp = Path(tempfile.mkdtemp(prefix="load-"))
    rerun_log = tmp / "reruns.jsonl"
    env = {"CNN_RERUN_LOG": str(rerun_log), "CNN_TRAINING_PROCESS": "off"}
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, browser_cores)  # Playwright and Chromium start from here and inherit it
    proc, url, _ = start_app(tmp, data_dir, extra_env=env, cpus=server_cores)
    sampler = PeakSampler(proc.pid)
    sampler.start()
    cpu0 = process_cpu_seconds(proc.pid)
    try:
        if name == "cost":
            result = asyncio.run(_with_browser(lambda b: _cost_round(b, url, proc.pid, visits, timeout_s)))
        else:
            counters = Counters(proc.pid)
            result = asyncio.run(
                _with_browser(lambda b: _crowd_round(b, url, visitors, timeout_s, name == "training", counters))
            )
            since, marks = result.pop("since"), result.pop("marks")
            if "acted" in marks:  # from the moment all act until the last answer is on screen
                result["after_acting"] = Counters.between(
                    marks["acted"], marks["answered"], server_cores, browser_cores
                )
            logged = read_rerun_log(rerun_log, since)
            result["server_seconds"] = _percentiles([r["seconds"] for r in logged])
            result["server_cpu_seconds_per_rerun"] = _percentiles([r["cpu_seconds"] for r in logged])
            ok = [r for r in result["visitors"] if r["ok"]]
            result["screen_seconds"] = _percentiles([r["seconds"] for r in ok])
            result["errors"] = len(result["visitors"]) - len(ok)
    finally:
        server_cpu = process_cpu_seconds(proc.pid) - cpu0
        peak = sampler.stop()
        stop_app(proc)
        os.sched_setaffinity(0, own)
    return {
        **result,
        "label": ROUNDS[name],
        "server_cores": sorted(server_cores),
        "browser_cores": sorted(browser_cores),
        "server_cpu_seconds": round(server_cpu, 1),
        "server_peak_rss_mb": round(peak, 1),
    }


# -- results -----------------------------------------------------------------------------------------


def _validate_entry(entry: dict, where: str) -> None:
    for key in ("command", "git_commit", "date", "targets", "rounds"):
        _machines.need(key in entry, where, f"missing '{key}'")
    _machines.need(entry["rounds"], f"{where}.rounds", "no round measured")
    for name, r in entry["rounds"].items():
        rw = f"{where}.rounds.{name}"
        _machines.need(name in ROUNDS, rw, f"unknown round (known: {', '.join(ROUNDS)})")
        _machines.need(r["server_peak_rss_mb"] > 0, f"{rw}.server_peak_rss_mb", "must be positive")
        _machines.need(r["server_cores"] and r["browser_cores"], rw, "must name the server's and browsers' cores")
        if name == "cost":
            for page, p in r["pages"].items():
                _machines.need(p["visits"] > 0, f"{rw}.{page}", "needs visits")
                _machines.need(
                    abs(p["cpu_seconds_per_visit"] * p["visits"] - p["cpu_seconds"]) < 0.01,
                    f"{rw}.{page}",
                    "CPU per visit must be the round's CPU over its visits",
                )
            continue
        _machines.need(r["visitors"], rw, "needs visitors")
        _machines.need(r["errors"] == sum(not v["ok"] for v in r["visitors"]), f"{rw}.errors", "must count failures")
        for figure in ("server_seconds", "screen_seconds"):
            f = r[figure]
            if f["n"]:
                _machines.need(0 < f["p50"] <= f["p95"] <= f["max"], f"{rw}.{figure}", "needs 0 < p50 ≤ p95 ≤ max")


def validate_results(doc: dict) -> None:
    """Raise ValueError unless `doc` is a well-formed load benchmark document."""
    _machines.validate(doc, BENCHMARK, _validate_entry)


def _verdict(value, target) -> str:
    return "—" if value is None else ("met" if value <= target else "**not met**")


def render_markdown(doc: dict, notes: str = "") -> str:
    lines = [
        "# Load: the server's cost per visitor, and thirty visitors at once on one core",
        "",
        (
            "Generated by `python -m benchmarks.load` from `load.json`; one section per machine (CPU model | usable "
            "cores | CPU flags), figures compare only within a machine. The server runs pinned to one core, the "
            "headless Chromium of the visitors (a fresh context each: nothing cached) on the other cores. A visit "
            "is a Draw page opened and one stroke drawn, or a Photo page opened and one photo uploaded."
        ),
        "",
        (
            f"Targets: ≤ {TARGETS['cpu_seconds_per_visit']} server CPU-seconds per visit (static files included); "
            f"thirty visitors acting within the same second: 0 errors, p95 at the server ≤ "
            f"{TARGETS['idle_p95_seconds']:g} s idle and ≤ {TARGETS['training_p95_seconds']:g} s while a run trains."
        ),
        "",
    ]
    for key, e in _machines.entries(doc):
        lines += _machines.describe(key, e)
        lines += [f"- Measured by `{e['command']}`, commit {e['git_commit']}, {e['date']}.", ""]
        cost = e["rounds"].get("cost")
        if cost:
            lines += [
                f"Server CPU per visit (server on core {cost['server_cores']}, browsers on {cost['browser_cores']}):",
                "",
                (
                    "| page | visits | errors | server CPU s per visit | target | requests per visit | kB per visit | "
                    "on screen, median (s) |"
                ),
                "|---|---|---|---|---|---|---|---|",
            ]
            for page, p in cost["pages"].items():
                lines.append(
                    f"| {page} | {p['visits']} | {p['errors']} | {p['cpu_seconds_per_visit']:.3f} | "
                    f"{_verdict(p['cpu_seconds_per_visit'], TARGETS['cpu_seconds_per_visit'])} | "
                    f"{p['requests_per_visit']} | {p['bytes_per_visit'] / 1000:.0f} | {p['screen_seconds_median']} |"
                )
            lines.append("")
        crowd = [(n, r) for n, r in e["rounds"].items() if n != "cost"]
        if crowd:
            lines += [
                (
                    "| round | visitors | errors | actions spread (s) | server p50 / p95 / max (s) | target p95 | "
                    "server CPU per rerun p50 (s) | on screen p50 / p95 / max (s) | server peak RSS (MB) |"
                ),
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for name, r in crowd:
                s, c, v = r["server_seconds"], r["server_cpu_seconds_per_rerun"], r["screen_seconds"]
                target = TARGETS["training_p95_seconds" if name == "training" else "idle_p95_seconds"]
                lines.append(
                    f"| {r['label']} | {len(r['visitors'])} | {r['errors']} | {r['actions_spread_seconds']} | "
                    f"{s['p50']} / {s['p95']} / {s['max']} (n={s['n']}) | {_verdict(s['p95'], target)} | {c['p50']} | "
                    f"{v['p50']} / {v['p95']} / {v['max']} | {r['server_peak_rss_mb']} |"
                )
            spent = [(r["label"], r["after_acting"]) for _, r in crowd if r.get("after_acting")]
            if spent:
                lines += [
                    "",
                    "From the moment all act until the last answer is on screen:",
                    "",
                    "| round | seconds | server CPU s | server core busy | browser cores busy | server storage reads |",
                    "|---|---|---|---|---|---|",
                ]
                lines += [
                    f"| {label} | {a['seconds']} | {a['server_cpu_seconds']} | {a['server_core_busy']:.0%} | "
                    f"{a['browser_cores_busy']:.0%} | {a['server_storage_read_bytes']:,} bytes |"
                    for label, a in spent
                ]
            progress = (e["rounds"].get("training") or {}).get("training_progress")
            if progress:
                lines += [
                    "",
                    f"The run's progress on the Train page: before {progress['before']!r}, after {progress['after']!r}.",
                ]
            lines.append("")
    return "\n".join(lines) + "\n" + NOTES_MARKER + notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--visitors", type=int, default=30, help="visitors acting together in the idle and training rounds"
    )
    parser.add_argument("--visits", type=int, default=10, help="visits per page in the cost round")
    parser.add_argument("--rounds", nargs="+", choices=list(ROUNDS), default=list(ROUNDS))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one visitor may take")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if args.visitors < 2 or args.visits < 1:
        parser.error("--visitors must be at least 2 (one per page) and --visits at least 1")

    from cnn_core.base.runtime import git_commit

    data_dir = Path(os.environ.get("CNN_DATA_DIR", REPO.parent / "shared" / "datasets"))
    previous = _machines.load(args.out / "load.json", BENCHMARK)
    entry = {
        "machine": _machines.this_machine(),
        "command": "python -m benchmarks.load " + " ".join(argv if argv is not None else sys.argv[1:]),
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "targets": TARGETS,
        "rounds": {},
    }
    for name in args.rounds:
        entry["rounds"][name] = run_round(name, data_dir, args.visitors, args.visits, args.timeout)
        print(f"{name}: done", file=sys.stderr, flush=True)
    doc = _machines.merge(previous, BENCHMARK, entry)
    validate_results(doc)
    notes = _machines.read_notes(args.out / "load.md")
    _machines.write(args.out, "load", doc, render_markdown(doc, notes))
    print(render_markdown(doc, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
