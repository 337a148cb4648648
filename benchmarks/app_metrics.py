"""App benchmark in a real browser: page load time, draw-to-prediction time, server memory.

    CNN_DATA_DIR=../shared/datasets python benchmarks/app_metrics.py [--repeats 5]

Starts `streamlit run app.py`, opens each page in headless Chromium (Playwright) and
times until the page's heading is shown and the script has finished; draws digits on
the canvas and times from mouse-up until the prediction is shown; samples the server's
resident memory (RSS, with its children) after both shipped models are loaded.
Writes benchmarks/results/app_metrics.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

from e2e import DIGIT_STROKES, draw, goto, launch_chromium, start_app, stop_app, wait_until_idle  # noqa: E402

PAGES = {"": "CNN Studio", "train": "Train a model", "results": "Results", "draw": "Draw a digit",
         "photo": "Classify a photo"}


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, from /proc (Linux)."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            pids += [int(c) for c in children]
        except OSError:
            continue
    return total / 1024


def percentile(values, q):
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="loads per page and drawings per digit")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)

    import os

    from playwright.sync_api import sync_playwright

    from cnn_core.runtime import git_commit, machine_info

    data_dir = Path(os.environ.get("CNN_DATA_DIR", HERE.parent.parent / "shared" / "datasets"))
    tmp = Path(tempfile.mkdtemp(prefix="app-bench-"))
    proc, url, _ = start_app(tmp, data_dir)
    idle_rss = rss_mb(proc.pid)
    loads: dict[str, list[float]] = {p or "home": [] for p in PAGES}
    first_load = {}
    draws: list[float] = []
    recognised = 0
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            for path, title in PAGES.items():
                for i in range(args.repeats + 1):
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    t0 = time.perf_counter()
                    goto(page, url, path, title)
                    seconds = time.perf_counter() - t0
                    if i == 0:
                        first_load[path or "home"] = seconds  # includes model loading (cold)
                    else:
                        loads[path or "home"].append(seconds)
                    page.close()
            rss_models = rss_mb(proc.pid)

            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            goto(page, url, "draw", "Draw a digit")
            for _ in range(args.repeats):
                for digit, strokes in DIGIT_STROKES.items():
                    page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
                    canvas = page.locator("canvas.upper-canvas").first
                    canvas.wait_for()
                    draw(page, canvas, strokes[:-1])
                    # Time from the final mouse-up to the prediction on screen.
                    line = strokes[-1]
                    box = canvas.bounding_box()
                    page.mouse.move(box["x"] + line[0][0], box["y"] + line[0][1])
                    page.mouse.down()
                    for x, y in line[1:]:
                        page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
                    t0 = time.perf_counter()
                    page.mouse.up()
                    value = page.locator('[data-testid="stMetricValue"]').first
                    value.wait_for(timeout=60_000)
                    draws.append(time.perf_counter() - t0)
                    recognised += value.inner_text().strip() == digit
                    page.get_by_role("button", name="Clear canvas").click()
                    wait_until_idle(page)
            peak_rss = rss_mb(proc.pid)
            browser.close()
    finally:
        stop_app(proc)

    result = {
        "command": "python benchmarks/app_metrics.py " + " ".join(argv or sys.argv[1:]),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repeats": args.repeats,
        "page_load_seconds": {p: {"first": round(first_load[p], 3), "median_warm": round(statistics.median(v), 3),
                                  "p95_warm": round(percentile(v, 0.95), 3)} for p, v in loads.items()},
        "draw_to_prediction_seconds": {"median": round(statistics.median(draws), 3),
                                       "p95": round(percentile(draws, 0.95), 3), "n": len(draws)},
        "drawn_digits_recognised": f"{recognised}/{len(draws)}",
        "server_rss_mb": {"started": round(idle_rss, 1), "both_models_loaded": round(rss_models, 1),
                          "after_drawing": round(peak_rss, 1)},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "app_metrics.json").write_text(json.dumps(result, indent=2))
    lines = ["# App metrics (real browser)", "",
             f"Measured by `{result['command']}` on {result['machine']['cpu']} "
             f"({result['machine']['cores']} cores), commit {result['git_commit']}, {result['date']}.", "",
             "| page | first load (s, cold) | warm median (s) | warm p95 (s) |", "|---|---|---|---|"]
    for p, v in result["page_load_seconds"].items():
        lines.append(f"| {p} | {v['first']} | {v['median_warm']} | {v['p95_warm']} |")
    d = result["draw_to_prediction_seconds"]
    lines += ["", f"Draw-to-prediction (mouse-up → digit shown): median {d['median']} s, p95 {d['p95']} s over "
              f"{d['n']} drawings; recognised {result['drawn_digits_recognised']}.", "",
              f"Server RSS: {result['server_rss_mb']['started']} MB after start, "
              f"{result['server_rss_mb']['both_models_loaded']} MB with both shipped models loaded, "
              f"{result['server_rss_mb']['after_drawing']} MB after the drawing runs."]
    (out / "app_metrics.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
