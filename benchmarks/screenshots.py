"""Screenshots of the app's probing views for the README, taken from the real app in a real browser.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.screenshots [--out DIR]

Starts `streamlit run app.py` (benchmarks/browser.py), drives headless Chromium and writes one PNG per
view into benchmarks/results/screenshots/: a scribble the Draw page calls "not a digit", a clicked
confusion-matrix cell, the Probe page's what-if edits, adversarial example and nearest training images,
and the Calibration page.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.browser import (SCRIBBLE, draw_digit_and_read_prediction, goto, launch_chromium, start_app,
                                stop_app, wait_until_idle)

OUT = Path(__file__).resolve().parent / "results" / "screenshots"


def _main_area(page, path: Path) -> None:
    page.locator('[data-testid="stMain"]').screenshot(path=str(path))
    print(f"Wrote {path}")


def draw_scribble(page, url, out: Path) -> None:
    goto(page, url, "draw", "Draw a digit")
    page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
    draw_digit_and_read_prediction(page, SCRIBBLE)
    page.get_by_text("This does not look like a handwritten digit.").wait_for(timeout=30_000)
    _main_area(page, out / "not_a_digit.png")


def confusion_click(page, url, out: Path) -> None:
    goto(page, url, "results?model=cifar10_airbench12_s1&cm_cell=cat%3Edog", "Results")
    page.get_by_text("its test-set number · the model's confidence").wait_for(timeout=120_000)
    wait_until_idle(page)
    _main_area(page, out / "confusion_click.png")


def probe(page, url, out: Path) -> None:
    goto(page, url, "probe?model=cifar10_airbench12_s1", "Probe the model")
    page.get_by_text("Edited:").first.wait_for(timeout=60_000)
    _main_area(page, out / "whatif.png")
    page.get_by_role("tab", name="Adversarial examples").click()
    page.get_by_role("button", name="Find the smallest ε that changes the answer").click()
    page.get_by_text("turns the answer into").wait_for(timeout=120_000)
    wait_until_idle(page)
    _main_area(page, out / "adversarial.png")
    page.get_by_role("tab", name="Nearest training images").click()
    page.get_by_role("button", name="Build the index").click()
    page.get_by_text("training images nearest to the input").wait_for(timeout=600_000)
    wait_until_idle(page)
    _main_area(page, out / "neighbours.png")


def calibration(page, url, out: Path) -> None:
    goto(page, url, "calibration?model=cifar10_airbench12_s1", "Calibration")
    page.get_by_text("Reliability diagram").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    _main_area(page, out / "calibration.png")


def main(argv=None) -> None:
    from playwright.sync_api import sync_playwright

    from cnn_core.datasets import resolve_data_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, _ = start_app(Path(tmp), resolve_data_dir())
        try:
            with sync_playwright() as pw:
                browser = launch_chromium(pw)
                page = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
                for view in (draw_scribble, confusion_click, probe, calibration):
                    view(page, url, args.out)
                browser.close()
        finally:
            stop_app(proc)


if __name__ == "__main__":
    main()
