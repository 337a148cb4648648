"""Cold start: from `streamlit run app.py` to the first prediction on the Draw page, in a fresh browser.

    python -m benchmarks.cold_start [--repeats 3] [--out DIR]

Each repeat starts a new server process (nothing cached in it) and a new browser context (nothing cached
in the browser), opens the Draw page, draws a 7 on the canvas and waits for the prediction on screen. It
times three moments from the server's start: the server answering its health check, the page's heading
on screen (first paint), and the predicted digit on screen; and records whether the server process ever
mapped TensorFlow's library into memory (the Draw page predicts from the model's committed LiteRT file,
cnn_core.predict.lite, so it should not). Goal: the prediction within 5 s on 2 cores. Writes
benchmarks/results/cold_start.{json,md}, one entry per machine (benchmarks/_machines.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks import _machines
from benchmarks.browser import DIGIT_STROKES, REPO, _free_port, draw_digit_and_read_prediction, launch_chromium

OUT = Path(__file__).resolve().parent / "results"
GOAL_SECONDS = 5.0
MOMENTS = ("server_up", "first_paint", "prediction")


def _tensorflow_mapped(pid: int) -> bool | None:
    """Whether the process has TensorFlow's shared library mapped (None where /proc cannot tell)."""
    try:
        return "libtensorflow" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None


def one_cold_start(browser) -> dict:
    """Start a server, open the Draw page in a new context, draw a 7; the moments in seconds from the start."""
    port, runs = _free_port(), tempfile.mkdtemp(prefix="cold_start_runs_")
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "CNN_RUNS_DIR": runs},
    )  # fmt: skip
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError("the server exited before it answered")
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.02)
        moments = {"server_up": time.perf_counter() - started}
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(f"{url}/draw")
        page.get_by_role("heading", name="Draw a digit").first.wait_for(timeout=120_000)
        moments["first_paint"] = time.perf_counter() - started
        digit = draw_digit_and_read_prediction(page, DIGIT_STROKES["7"])
        moments["prediction"] = time.perf_counter() - started
        context.close()
        return {**{k: round(v, 3) for k, v in moments.items()}, "digit": digit,
                "tensorflow_in_server": _tensorflow_mapped(server.pid)}  # fmt: skip
    finally:
        server.terminate()
        server.wait(30)


def measure(repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            runs = [one_cold_start(browser) for _ in range(repeats)]
        finally:
            browser.close()
    median = statistics.median(r["prediction"] for r in runs)
    return {
        "machine": _machines.this_machine(),
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": runs,
        "median_seconds": {m: round(statistics.median(r[m] for r in runs), 3) for m in MOMENTS},
        "goal_met": median <= GOAL_SECONDS,
    }


def validate_results(doc: dict) -> None:
    def entry_ok(entry: dict, where: str) -> None:
        runs = entry.get("runs")
        _machines.need(isinstance(runs, list) and runs, f"{where}.runs", "must list at least one cold start")
        for i, run in enumerate(runs):
            times = [run.get(m) for m in MOMENTS]
            _machines.need(
                all(isinstance(t, (int, float)) and t > 0 for t in times) and times == sorted(times),
                f"{where}.runs[{i}]",
                "needs positive server_up ≤ first_paint ≤ prediction seconds",
            )
        _machines.need(set(entry.get("median_seconds", {})) == set(MOMENTS), f"{where}.median_seconds", "missing")
        _machines.need(isinstance(entry.get("goal_met"), bool), f"{where}.goal_met", "must be true or false")

    _machines.validate(doc, "cold_start", entry_ok)


def markdown(doc: dict, notes: str = "") -> str:
    lines = [
        "# Cold start: `streamlit run` to the first prediction on the Draw page",
        "",
        "Written by `python -m benchmarks.cold_start`: a new server process and a new browser context per run;",
        f"seconds from the server's start. Goal: the prediction within {GOAL_SECONDS:g} s.",
        "",
    ]
    for key, entry in _machines.entries(doc):
        lines += [*_machines.describe(key, entry), f"- Measured {entry['measured']}", ""]
        lines += [
            "| run | server up | first paint | prediction | digit | TensorFlow in the server |",
            "|---|---|---|---|---|---|",
        ]
        for i, run in enumerate(entry["runs"], 1):
            tf = {True: "yes", False: "no", None: "unknown"}[run["tensorflow_in_server"]]
            lines.append(
                f"| {i} | {run['server_up']:.2f} | {run['first_paint']:.2f} | {run['prediction']:.2f} | "
                f"{run['digit']} | {tf} |"
            )
        median = entry["median_seconds"]
        lines += [
            f"| median | {median['server_up']:.2f} | {median['first_paint']:.2f} | {median['prediction']:.2f} | | |",
            "",
            f"Goal ≤ {GOAL_SECONDS:g} s: **{'met' if entry['goal_met'] else 'NOT met'}**.",
            "",
        ]
    return "\n".join(lines) + "\n" + _machines.NOTES_MARKER + (notes or "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold_start", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="cold starts to time (default 3)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for cold_start.json and .md")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    entry = measure(args.repeats)
    doc = _machines.merge(_machines.load(args.out / "cold_start.json", "cold_start"), "cold_start", entry)
    validate_results(doc)
    _machines.write(args.out, "cold_start", doc, markdown(doc, _machines.read_notes(args.out / "cold_start.md")))
    print(f"median {entry['median_seconds']['prediction']:.2f} s to the first prediction (goal ≤ {GOAL_SECONDS:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
