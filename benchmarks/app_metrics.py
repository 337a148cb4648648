"""App benchmark in a real browser: page load time, draw-to-prediction time, server memory.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.app_metrics [--repeats 5]
    python -m benchmarks.app_metrics --repeats 1 --pages draw --digits 7 --out /tmp/x   # smoke
    python -m benchmarks.app_metrics --while-training      # also draw while a CIFAR-10 run trains

Starts `streamlit run app.py` (its runs in a temporary folder, never the repo's runs/), opens
each page in headless Chromium (Playwright) and times until the page's heading is shown
(first paint) and until the script has finished; draws digits on the canvas and times from
mouse-up until the prediction is shown; samples the server's resident memory (RSS, with its
children) after the shipped models are loaded.

With --while-training it then starts a CIFAR-10 run from the Train page in a second browser
tab (default recipe, 1 epoch), waits for its first batch, draws the same digits again while it
trains (sampling the server's memory), stops the run from that tab and waits for it to end.
The goals (issue "watch it learn"): idle draw-to-prediction median ≤ 0.3 s, while training
≤ 1.3× the idle median, every page's warm first paint ≤ 2 s; the Markdown says met / NOT met.
Writes benchmarks/results/app_metrics.json and .md, one entry per machine
(`benchmarks/_machines.py`): a run replaces this machine's entry and keeps the others.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks import _machines
from benchmarks.browser import (
    CANVAS,
    DIGIT_STROKES,
    draw,
    goto,
    launch_chromium,
    start_app,
    start_training,
    stop_app,
    stop_training,
    train_progress,
    wait_until_idle,
)
from cnn_core.base.runtime import rss_mb

HERE = Path(__file__).resolve().parent

BENCHMARK = "app_metrics"
PAGES = {
    "home": ("", "CNN Studio"),
    "train": ("train", "Train a model"),
    "results": ("results", "Results"),
    "draw": ("draw", "Draw a digit"),
    "photo": ("photo", "Classify a photo"),
}
# The canvas drops strokes made while its component is still starting (after a page load or
# a "Clear canvas", which mounts a new one): a drawing that got no prediction within this
# many seconds is drawn again, as the browser tests do.
REDRAW_AFTER_S = 8.0
# The goals an entry is judged against (recorded in the entry, so a later change of goal does not
# rewrite what an old run was judged by).
GOALS = {"draw_idle_median_s": 0.3, "draw_training_over_idle": 1.3, "first_paint_warm_s": 2.0}
TRAIN_DATASET, TRAIN_DATASET_TITLE, TRAIN_EPOCHS = "cifar10", "CIFAR-10 objects", 1


class FrameClock:
    """When a page's Streamlit websocket sent and received frames (time.perf_counter), to split one
    draw-to-prediction time into: mouse-up → the canvas's value sent (the component's own wait before
    it sends, and its PNG), → the server's first reply (its rerun starting), → the digit on screen (the
    rest of the rerun, the transfer and the browser's render). Playwright reports each frame while a
    call of this thread waits on the browser, as the timed drawing does."""

    def __init__(self, page):
        self.sent: list[float] = []
        self.received: list[float] = []
        page.on("websocket", self._attach)

    def _attach(self, ws) -> None:
        ws.on("framesent", lambda _: self.sent.append(time.perf_counter()))
        ws.on("framereceived", lambda _: self.received.append(time.perf_counter()))

    def split(self, up: float, shown: float) -> dict | None:
        """The three parts of one drawing's time (mouse-up at `up`, digit shown at `shown`), or None when
        the frames do not bracket it (a canvas that dropped the drawing)."""
        sent = next((t for t in self.sent if up <= t <= shown), None)
        reply = None if sent is None else next((t for t in self.received if sent <= t <= shown), None)
        if reply is None:
            return None
        return {"to_value_sent": sent - up, "sent_to_first_reply": reply - sent, "reply_to_shown": shown - reply}


def draw_and_time(
    page, strokes, timeout_s: float = 60.0, clock: FrameClock | None = None, splits: list | None = None
) -> tuple[float, str, int]:
    """Draw a digit on the Draw page's canvas; (seconds from the final mouse-up to the prediction
    on screen, the predicted digit, how many drawings were dropped and redrawn first). With a `clock`,
    the time's parts (FrameClock.split) are appended to `splits`."""
    value = page.locator('[data-testid="stMetricValue"]').first
    # A prediction still on screen from the previous drawing would stop the clock at once.
    value.wait_for(state="detached", timeout=timeout_s * 1000)
    deadline = time.perf_counter() + timeout_s
    redraws = 0
    while True:
        canvas = page.locator(CANVAS).first
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
            shown = time.perf_counter()
            if clock is not None and splits is not None:
                splits.append(clock.split(t0, shown))
            return shown - t0, value.inner_text().strip(), redraws
        except Exception as err:  # retry loop: any failed wait means draw again, until the deadline
            if time.perf_counter() > deadline:
                raise TimeoutError(
                    f"no prediction within {timeout_s:.0f} s of drawing ({redraws + 1} drawings)"
                ) from err
            redraws += 1


def open_and_time(page, url: str, path: str, title: str) -> tuple[float, float]:
    """Open a page; (seconds until its heading (h1) is visible: first paint, seconds until the
    script has also finished), both from the navigation's start."""
    t0 = time.perf_counter()
    page.goto(f"{url}/{path}")
    page.locator("h1").filter(has_text=title).first.wait_for(state="visible", timeout=120_000)
    paint = time.perf_counter() - t0
    wait_until_idle(page)
    return paint, time.perf_counter() - t0


def draw_digits(
    page, digits: list[str], repeats: int, clock: FrameClock | None = None, splits: list | None = None
) -> tuple[list[float], int, int]:
    """Draw each digit `repeats` times on an open Draw page, clearing in between; (seconds per
    drawing, how many were recognised, how many drawings were dropped and redrawn)."""
    times, recognised, redraws = [], 0, 0
    for _ in range(repeats):
        for digit in digits:
            page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
            seconds, answer, dropped = draw_and_time(page, DIGIT_STROKES[digit], clock=clock, splits=splits)
            times.append(seconds)
            redraws += dropped
            recognised += answer == digit
            page.get_by_role("button", name="Clear canvas").click()
            wait_until_idle(page)
    return times, recognised, redraws


def summary(times: list[float]) -> dict:
    return {
        "median": round(statistics.median(times), 3),
        "p95": round(float(np.percentile(times, 95)), 3),
        "n": len(times),
    }


# Which canvas the drawings went through: entries from before it had this key were measured on
# streamlit-drawable-canvas, which sent a stroke 200 ms after mouse-up.
CANVAS_COMPONENT = "app_pages/_canvas.py (sends at mouse-up)"
CANVAS_BEFORE = "streamlit-drawable-canvas waits 200 ms after a stroke before it sends, then encodes its PNG"


def split_summary(splits: list[dict | None]) -> dict | None:
    """The median of each part of the drawings' times (FrameClock.split) over the drawings it could split."""
    whole = [s for s in splits if s is not None]
    if not whole:
        return None
    return {
        **{part: round(statistics.median(s[part] for s in whole), 3) for part in whole[0]},
        "n": len(whole),
        "canvas": CANVAS_COMPONENT,
    }


class RssSampler:
    """The server's RSS (with its children: a training process too) every `every_s` seconds."""

    def __init__(self, pid: int, every_s: float = 0.5):
        self.pid, self.every_s, self.samples = pid, every_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(rss_mb(self.pid))
            except OSError:  # the server is gone
                return
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure(pages: list[str], digits: list[str], repeats: int, data_dir: Path, while_training: bool = False) -> dict:
    """Page loads, drawings and server memory against one fresh app server (and, `while_training`,
    drawings again while a CIFAR-10 run started from the Train page trains)."""
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="app-bench-"))
    # Runs the benchmark starts land in this temporary folder, never in the repo's runs/.
    proc, url, log = start_app(tmp, data_dir, {"CNN_RUNS_DIR": str(tmp / "runs")})
    idle_rss = rss_mb(proc.pid)
    loads: dict[str, list[float]] = {p: [] for p in pages}
    paints: dict[str, list[float]] = {p: [] for p in pages}
    first_load = {}
    training = None
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            for name in pages:
                path, title = PAGES[name]
                for i in range(repeats + 1):
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    paint, seconds = open_and_time(page, url, path, title)
                    if i == 0:
                        first_load[name] = seconds  # includes model loading (cold)
                    else:
                        loads[name].append(seconds)
                        paints[name].append(paint)
                    page.close()
            rss_models = rss_mb(proc.pid)

            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            clock, splits = FrameClock(page), []
            goto(page, url, *PAGES["draw"])
            draws, recognised, redraws = draw_digits(page, digits, repeats, clock, splits)
            peak_rss = rss_mb(proc.pid)
            if while_training:
                training = _draw_while_training(browser, page, url, proc.pid, digits, repeats, draws, clock)
            browser.close()
    except Exception:
        print(f"app server log: {log}", file=sys.stderr)
        raise
    finally:
        stop_app(proc)
    shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "page_load_seconds": {
            p: {
                "first": round(first_load[p], 3),
                "median_warm": round(statistics.median(v), 3),
                "p95_warm": round(float(np.percentile(v, 95)), 3),
            }
            for p, v in loads.items()
        },
        "first_paint_seconds": {
            p: {
                "median_warm": round(statistics.median(v), 3),
                "p95_warm": round(float(np.percentile(v, 95)), 3),
                "n": len(v),
            }
            for p, v in paints.items()
        },
        "draw_to_prediction_seconds": summary(draws),
        "draw_to_prediction_parts_seconds": split_summary(splits),
        "drawn_digits_recognised": f"{recognised}/{len(draws)}",
        "redrawn": redraws,
        "server_rss_mb": {
            "started": round(idle_rss, 1),
            "models_loaded": round(rss_models, 1),
            "after_drawing": round(peak_rss, 1),
        },
        "goals": dict(GOALS),
    }
    if training is not None:
        result["while_training"] = training
    return result


def _draw_while_training(
    browser,
    page,
    url: str,
    pid: int,
    digits: list[str],
    repeats: int,
    idle_draws: list[float],
    clock: FrameClock | None = None,
) -> dict:
    """Start a CIFAR-10 run in a second tab, draw in `page` while it trains, stop it."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    train_page = context.new_page()
    before = rss_mb(pid)
    with RssSampler(pid) as rss:
        to_first_batch = start_training(train_page, url, TRAIN_DATASET_TITLE, TRAIN_EPOCHS)
        at_start = train_progress(train_page)
        splits: list = []
        draws, recognised, redraws = draw_digits(page, digits, repeats, clock, splits)
        at_end = train_progress(train_page)  # None once the run has ended (or is stopping)
        to_stop = stop_training(train_page)
    context.close()
    idle = summary(idle_draws)
    busy = summary(draws)
    return {
        "dataset": TRAIN_DATASET,
        "epochs": TRAIN_EPOCHS,
        "recipe": "the Train page's default",
        "seconds_start_to_first_batch": round(to_first_batch, 1),
        "progress_when_drawing_began": "Epoch {}/{} · batch {}/{}".format(*at_start),
        "progress_when_drawing_ended": None if at_end is None else "Epoch {}/{} · batch {}/{}".format(*at_end),
        "trained_throughout": at_end is not None,
        "seconds_stop_to_ended": round(to_stop, 1),
        "draw_to_prediction_seconds": busy,
        "draw_to_prediction_parts_seconds": split_summary(splits),
        "drawn_digits_recognised": f"{recognised}/{len(draws)}",
        "redrawn": redraws,
        "median_over_idle_median": round(busy["median"] / idle["median"], 2),
        "server_rss_mb": {
            "before_start": round(before, 1),
            "median": round(statistics.median(rss.samples or [before]), 1),
            "peak": round(max(rss.samples or [before]), 1),
            "samples": len(rss.samples),
        },
    }


def _validate_entry(entry: dict, where: str) -> None:
    for key in (
        "command",
        "git_commit",
        "date",
        "repeats",
        "page_load_seconds",
        "draw_to_prediction_seconds",
        "drawn_digits_recognised",
        "server_rss_mb",
    ):
        _machines.need(key in entry, where, f"missing '{key}'")
    _machines.need(entry["page_load_seconds"], f"{where}.page_load_seconds", "no page measured")
    for page, v in entry["page_load_seconds"].items():
        _machines.need(page in PAGES, f"{where}.page_load_seconds", f"unknown page '{page}'")
        _machines.need(
            all(v[k] > 0 for k in ("first", "median_warm", "p95_warm")),
            f"{where}.page_load_seconds.{page}",
            "times must be positive",
        )
        _machines.need(v["median_warm"] <= v["p95_warm"], f"{where}.page_load_seconds.{page}", "needs median ≤ p95")
    d = entry["draw_to_prediction_seconds"]
    _machines.need(
        d["n"] > 0 and 0 < d["median"] <= d["p95"],
        f"{where}.draw_to_prediction_seconds",
        "needs drawings with 0 < median ≤ p95",
    )
    hits, total = map(int, entry["drawn_digits_recognised"].split("/"))
    _machines.need(total == d["n"] and 0 <= hits <= total, f"{where}.drawn_digits_recognised", "must be hits/drawings")
    _machines.need(all(v > 0 for v in entry["server_rss_mb"].values()), f"{where}.server_rss_mb", "must be positive")
    for page, v in entry.get("first_paint_seconds", {}).items():  # runs since the "watch it learn" issue
        _machines.need(
            page in entry["page_load_seconds"], f"{where}.first_paint_seconds", f"page '{page}' has no load times"
        )
        _machines.need(
            v["n"] > 0 and 0 < v["median_warm"] <= v["p95_warm"],
            f"{where}.first_paint_seconds.{page}",
            "needs warm loads with 0 < median ≤ p95",
        )
    if "goals" in entry:
        _machines.need(
            set(entry["goals"]) == set(GOALS) and all(v > 0 for v in entry["goals"].values()),
            f"{where}.goals",
            f"must give {sorted(GOALS)}, all positive",
        )
    if "while_training" in entry:
        _validate_while_training(entry["while_training"], d, f"{where}.while_training")


def _validate_while_training(t: dict, idle: dict, where: str) -> None:
    for key in (
        "dataset",
        "draw_to_prediction_seconds",
        "drawn_digits_recognised",
        "median_over_idle_median",
        "trained_throughout",
        "server_rss_mb",
    ):
        _machines.need(key in t, where, f"missing '{key}'")
    d = t["draw_to_prediction_seconds"]
    _machines.need(
        d["n"] > 0 and 0 < d["median"] <= d["p95"],
        f"{where}.draw_to_prediction_seconds",
        "needs drawings with 0 < median ≤ p95",
    )
    hits, total = map(int, t["drawn_digits_recognised"].split("/"))
    _machines.need(total == d["n"] and 0 <= hits <= total, f"{where}.drawn_digits_recognised", "must be hits/drawings")
    _machines.need(
        abs(t["median_over_idle_median"] - d["median"] / idle["median"]) <= 0.006,
        f"{where}.median_over_idle_median",
        "must be the median while training over the idle median",
    )
    rss = t["server_rss_mb"]
    _machines.need(
        rss["samples"] >= 0 and 0 < rss["median"] <= rss["peak"] and rss["before_start"] > 0,
        f"{where}.server_rss_mb",
        "needs 0 < median ≤ peak",
    )


def validate_results(doc: dict) -> None:
    """Raise ValueError unless `doc` is a well-formed app metrics document."""
    _machines.validate(doc, BENCHMARK, _validate_entry)


def render_markdown(doc: dict, notes: str = "") -> str:
    lines = [
        "# App metrics (real browser)",
        "",
        (
            "Generated by `python -m benchmarks.app_metrics` from `app_metrics.json`; one section per machine (CPU model | "
            "usable cores | CPU flags), times compare only within a machine."
        ),
        "",
    ]
    for key, e in _machines.entries(doc):
        lines += _machines.describe(key, e)
        lines.append(f"- Measured by `{e['command']}`, commit {e['git_commit']}, {e['date']}.")
        paints = e.get("first_paint_seconds")
        if paints is None:  # runs before first paint was timed on its own
            lines += ["", "| page | first load (s, cold) | warm median (s) | warm p95 (s) |", "|---|---|---|---|"]
        else:
            lines += [
                (
                    "- Load: until the heading is shown and the script has finished; first paint: until the "
                    "heading (h1) is shown."
                ),
                "",
                (
                    "| page | first load (s, cold) | warm median (s) | warm p95 (s) | warm first paint median (s) "
                    "| warm first paint p95 (s) |"
                ),
                "|---|---|---|---|---|---|",
            ]
        for p, v in e["page_load_seconds"].items():
            lines.append(
                f"| {p} | {v['first']} | {v['median_warm']} | {v['p95_warm']} |"
                + (
                    ""
                    if paints is None or p not in paints
                    else f" {paints[p]['median_warm']} | {paints[p]['p95_warm']} |"
                )
            )
        d = e["draw_to_prediction_seconds"]
        rss = e["server_rss_mb"]
        redrawn = e.get("redrawn")
        lines += [
            "",
            f"Draw-to-prediction (mouse-up → digit shown): median {d['median']} s, p95 {d['p95']} s over "
            f"{d['n']} drawings; recognised {e['drawn_digits_recognised']}"
            + ("" if redrawn is None else f"; {redrawn} drawing(s) dropped by a starting canvas and redrawn")
            + "."
            + parts_text(e),
            "",
            (
                f"Server RSS: {rss['started']} MB after start, "
                f"{rss.get('models_loaded', rss.get('both_models_loaded'))} MB with the pages' models loaded, "
                f"{rss['after_drawing']} MB after the drawing runs."
            ),
            "",
        ]
        if "while_training" in e:
            lines += _while_training_lines(e["while_training"])
        if "goals" in e:
            lines += goal_lines(e)
    return "\n".join(lines) + "\n" + _machines.NOTES_MARKER + notes


def parts_text(e: dict) -> str:
    """' Of the median: …' for an entry whose drawings were split by a FrameClock ('' for older entries)."""
    parts = e.get("draw_to_prediction_parts_seconds")
    if not parts:
        return ""
    return (
        f" Its parts, medians over {parts['n']} drawings: mouse-up → canvas value sent {parts['to_value_sent']} s "
        f"({'the canvas encodes its PNG and sends it at mouse-up' if 'canvas' in parts else CANVAS_BEFORE}), "
        f"→ the server's first reply {parts['sent_to_first_reply']} s, → digit shown {parts['reply_to_shown']} s "
        "(the rest of the rerun, the transfer and the render)."
    )


def _while_training_lines(t: dict) -> list[str]:
    d, rss = t["draw_to_prediction_seconds"], t["server_rss_mb"]
    throughout = (
        "it trained throughout"
        if t["trained_throughout"]
        else "NOTE: the run had ended before the last drawing, so not every drawing overlapped training"
    )
    return [
        f"While a {t['dataset']} run started from the Train page trains ({t.get('recipe', 'default recipe')}, "
        f"{t.get('epochs', '?')} epoch(s); first batch {t.get('seconds_start_to_first_batch', '?')} s after "
        f"Start; progress {t.get('progress_when_drawing_began', '?')} → "
        f"{t.get('progress_when_drawing_ended') or 'ended'}, {throughout}): draw-to-prediction median "
        f"{d['median']} s, p95 {d['p95']} s over {d['n']} drawings; recognised {t['drawn_digits_recognised']}"
        + ("" if t.get("redrawn") is None else f"; {t['redrawn']} redrawn")
        + f"; {t['median_over_idle_median']}× the idle median."
        + parts_text(t),
        "",
        (
            f"Server RSS while training (with children, {rss['samples']} samples): {rss['before_start']} MB before "
            f"Start, median {rss['median']} MB, peak {rss['peak']} MB; the run was stopped and had ended "
            f"{t.get('seconds_stop_to_ended', '?')} s after Stop."
        ),
        "",
    ]


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def goal_lines(e: dict) -> list[str]:
    """One line per goal of the issue "watch it learn", met or NOT met, with the numbers."""
    goals, idle = e["goals"], e["draw_to_prediction_seconds"]["median"]
    lines = [
        "Goals:",
        "",
        (
            f"- Draw-to-prediction idle ≤ {goals['draw_idle_median_s']} s median: "
            f"{_verdict(idle <= goals['draw_idle_median_s'])} (median {idle} s)."
        ),
    ]
    t = e.get("while_training")
    if t is None:
        lines.append(
            f"- Draw-to-prediction while training ≤ {goals['draw_training_over_idle']}× idle: not measured "
            "(run with --while-training)."
        )
    else:
        ratio = t["median_over_idle_median"]
        lines.append(
            f"- Draw-to-prediction while training ≤ {goals['draw_training_over_idle']}× idle: "
            f"{_verdict(ratio <= goals['draw_training_over_idle'])} (median "
            f"{t['draw_to_prediction_seconds']['median']} s = {ratio}× the idle {idle} s)."
        )
    paints = e.get("first_paint_seconds", {})
    if paints:
        goal = goals["first_paint_warm_s"]
        per_page = [f"{p} {_verdict(v['median_warm'] <= goal)} ({v['median_warm']} s)" for p, v in paints.items()]
        lines.append(
            f"- First paint (heading shown) on a warm server ≤ {goal} s, median per page: " + "; ".join(per_page) + "."
        )
    return lines + [""]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="loads per page and drawings per digit")
    parser.add_argument(
        "--pages", nargs="+", choices=list(PAGES), default=list(PAGES), help="pages to time (default: all)"
    )
    parser.add_argument(
        "--digits",
        nargs="+",
        choices=list(DIGIT_STROKES),
        default=list(DIGIT_STROKES),
        help="digits to draw (default: all)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--while-training",
        action="store_true",
        help="also draw while a CIFAR-10 run started from the Train page trains (then stop it)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    from cnn_core.base.runtime import git_commit

    data_dir = Path(os.environ.get("CNN_DATA_DIR", HERE.parent.parent / "shared" / "datasets"))
    previous = _machines.load(args.out / "app_metrics.json", BENCHMARK)
    entry = {
        "machine": _machines.this_machine(),
        "command": " ".join(["python -m benchmarks.app_metrics", *(argv if argv is not None else sys.argv[1:])]),
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repeats": args.repeats,
        **measure(args.pages, args.digits, args.repeats, data_dir, args.while_training),
    }
    doc = _machines.merge(previous, BENCHMARK, entry)
    validate_results(doc)
    notes = _machines.read_notes(args.out / "app_metrics.md")
    _machines.write(args.out, "app_metrics", doc, render_markdown(doc, notes))
    print(render_markdown(doc, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
