"""App benchmark in a real browser: page load time, draw-to-prediction time, server memory.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.app_metrics [--repeats 5]
    python -m benchmarks.app_metrics --repeats 1 --pages draw --digits 7 --out /tmp/x   # smoke

Starts `streamlit run app.py`, opens each page in headless Chromium (Playwright) and
times until the page's heading is shown and the script has finished; draws digits on
the canvas and times from mouse-up until the prediction is shown; samples the server's
resident memory (RSS, with its children) after the shipped models are loaded.
Writes benchmarks/results/app_metrics.json and .md, one entry per machine
(`benchmarks/_machines.py`): a run replaces this machine's entry and keeps the others.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _machines
from benchmarks.browser import DIGIT_STROKES, draw, goto, launch_chromium, start_app, stop_app, wait_until_idle
from cnn_core.runtime import rss_mb

HERE = Path(__file__).resolve().parent

BENCHMARK = "app_metrics"
PAGES = {"home": ("", "CNN Studio"), "train": ("train", "Train a model"), "results": ("results", "Results"),
         "draw": ("draw", "Draw a digit"), "photo": ("photo", "Classify a photo")}
# The canvas drops strokes made while its component is still starting (after a page load or
# a "Clear canvas", which mounts a new one): a drawing that got no prediction within this
# many seconds is drawn again, as the browser tests do.
REDRAW_AFTER_S = 8.0


def draw_and_time(page, strokes, timeout_s: float = 60.0) -> tuple[float, str, int]:
    """Draw a digit on the Draw page's canvas; (seconds from the final mouse-up to the prediction
    on screen, the predicted digit, how many drawings were dropped and redrawn first)."""
    value = page.locator('[data-testid="stMetricValue"]').first
    # A prediction still on screen from the previous drawing would stop the clock at once.
    value.wait_for(state="detached", timeout=timeout_s * 1000)
    deadline = time.perf_counter() + timeout_s
    redraws = 0
    while True:
        canvas = page.locator("canvas.upper-canvas").first
        canvas.wait_for(timeout=timeout_s * 1000)
        draw(page, canvas, strokes[:-1])
        line = strokes[-1]
        box = canvas.bounding_box()
        page.mouse.move(box["x"] + line[0][0], box["y"] + line[0][1])
        page.mouse.down()
        for x, y in line[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        t0 = time.perf_counter()
        page.mouse.up()
        try:
            value.wait_for(timeout=REDRAW_AFTER_S * 1000)
            return time.perf_counter() - t0, value.inner_text().strip(), redraws
        except Exception:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no prediction within {timeout_s:.0f} s of drawing ({redraws + 1} drawings)")
            redraws += 1


def measure(pages: list[str], digits: list[str], repeats: int, data_dir: Path) -> dict:
    """Page loads, drawings and server memory against one fresh app server."""
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="app-bench-"))
    proc, url, _ = start_app(tmp, data_dir)
    idle_rss = rss_mb(proc.pid)
    loads: dict[str, list[float]] = {p: [] for p in pages}
    first_load = {}
    draws: list[float] = []
    recognised = redraws = 0
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            for name in pages:
                path, title = PAGES[name]
                for i in range(repeats + 1):
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    t0 = time.perf_counter()
                    goto(page, url, path, title)
                    seconds = time.perf_counter() - t0
                    if i == 0:
                        first_load[name] = seconds  # includes model loading (cold)
                    else:
                        loads[name].append(seconds)
                    page.close()
            rss_models = rss_mb(proc.pid)

            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            goto(page, url, *PAGES["draw"])
            for _ in range(repeats):
                for digit in digits:
                    page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
                    seconds, answer, dropped = draw_and_time(page, DIGIT_STROKES[digit])
                    draws.append(seconds)
                    redraws += dropped
                    recognised += answer == digit
                    page.get_by_role("button", name="Clear canvas").click()
                    wait_until_idle(page)
            peak_rss = rss_mb(proc.pid)
            browser.close()
    finally:
        stop_app(proc)
    return {
        "page_load_seconds": {p: {"first": round(first_load[p], 3), "median_warm": round(statistics.median(v), 3),
                                  "p95_warm": round(float(np.percentile(v, 95)), 3)} for p, v in loads.items()},
        "draw_to_prediction_seconds": {"median": round(statistics.median(draws), 3),
                                       "p95": round(float(np.percentile(draws, 95)), 3), "n": len(draws)},
        "drawn_digits_recognised": f"{recognised}/{len(draws)}",
        "redrawn": redraws,
        "server_rss_mb": {"started": round(idle_rss, 1), "models_loaded": round(rss_models, 1),
                          "after_drawing": round(peak_rss, 1)},
    }


def _need(ok, where, message):
    if not ok:
        raise ValueError(f"{where}: {message}")


def _validate_entry(entry: dict, where: str) -> None:
    for key in ("command", "git_commit", "date", "repeats", "page_load_seconds", "draw_to_prediction_seconds",
                "drawn_digits_recognised", "server_rss_mb"):
        _need(key in entry, where, f"missing '{key}'")
    _need(entry["page_load_seconds"], f"{where}.page_load_seconds", "no page measured")
    for page, v in entry["page_load_seconds"].items():
        _need(page in PAGES, f"{where}.page_load_seconds", f"unknown page '{page}'")
        _need(all(v[k] > 0 for k in ("first", "median_warm", "p95_warm")), f"{where}.page_load_seconds.{page}",
              "times must be positive")
        _need(v["median_warm"] <= v["p95_warm"], f"{where}.page_load_seconds.{page}", "needs median ≤ p95")
    d = entry["draw_to_prediction_seconds"]
    _need(d["n"] > 0 and 0 < d["median"] <= d["p95"], f"{where}.draw_to_prediction_seconds",
          "needs drawings with 0 < median ≤ p95")
    hits, total = map(int, entry["drawn_digits_recognised"].split("/"))
    _need(total == d["n"] and 0 <= hits <= total, f"{where}.drawn_digits_recognised", "must be hits/drawings")
    _need(all(v > 0 for v in entry["server_rss_mb"].values()), f"{where}.server_rss_mb", "must be positive")


def validate_results(doc: dict) -> None:
    """Raise ValueError unless `doc` is a well-formed app metrics document."""
    _machines.validate(doc, BENCHMARK, _validate_entry)


def render_markdown(doc: dict) -> str:
    lines = ["# App metrics (real browser)", "",
             "Generated by `python -m benchmarks.app_metrics` from `app_metrics.json`; one section per machine (CPU model | "
             "usable cores | CPU flags), times compare only within a machine.", ""]
    for key, e in _machines.entries(doc):
        lines += _machines.describe(key, e)
        lines += [f"- Measured by `{e['command']}`, commit {e['git_commit']}, {e['date']}.", "",
                  "| page | first load (s, cold) | warm median (s) | warm p95 (s) |", "|---|---|---|---|"]
        for p, v in e["page_load_seconds"].items():
            lines.append(f"| {p} | {v['first']} | {v['median_warm']} | {v['p95_warm']} |")
        d = e["draw_to_prediction_seconds"]
        rss = e["server_rss_mb"]
        redrawn = e.get("redrawn")
        lines += ["", f"Draw-to-prediction (mouse-up → digit shown): median {d['median']} s, p95 {d['p95']} s over "
                  f"{d['n']} drawings; recognised {e['drawn_digits_recognised']}"
                  + ("" if redrawn is None else f"; {redrawn} drawing(s) dropped by a starting canvas and redrawn")
                  + ".", "",
                  f"Server RSS: {rss['started']} MB after start, "
                  f"{rss.get('models_loaded', rss.get('both_models_loaded'))} MB with the pages' models loaded, "
                  f"{rss['after_drawing']} MB after the drawing runs.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="loads per page and drawings per digit")
    parser.add_argument("--pages", nargs="+", choices=list(PAGES), default=list(PAGES),
                        help="pages to time (default: all)")
    parser.add_argument("--digits", nargs="+", choices=list(DIGIT_STROKES), default=list(DIGIT_STROKES),
                        help="digits to draw (default: all)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    from cnn_core.runtime import git_commit

    data_dir = Path(os.environ.get("CNN_DATA_DIR", HERE.parent.parent / "shared" / "datasets"))
    previous = _machines.load(args.out / "app_metrics.json", BENCHMARK)
    entry = {"machine": _machines.this_machine(),
             "command": " ".join(["python -m benchmarks.app_metrics", *(argv if argv is not None else sys.argv[1:])]),
             "git_commit": git_commit(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "repeats": args.repeats, **measure(args.pages, args.digits, args.repeats, data_dir)}
    doc = _machines.merge(previous, BENCHMARK, entry)
    validate_results(doc)
    _machines.write(args.out, "app_metrics", doc, render_markdown(doc))
    print(render_markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
