"""Screenshots of the app's probing views for the README, taken from the real app in a real browser.

    CNN_DATA_DIR=../shared/datasets python -m benchmarks.screenshots [--model NAME] [--out DIR]

Starts `streamlit run app.py` (benchmarks/browser.py), drives headless Chromium and writes one PNG per
view into benchmarks/results/screenshots/: a scribble the Draw page calls "not a digit", a clicked
confusion-matrix cell, the Probe page's what-if edits, adversarial example and nearest training images,
the Calibration page and the Suspicious labels page, each for one model (default the README's). Each view
waits for what it must show, so a view that breaks fails the run (the browser suite runs them on every
dataset: tests/test_browser.py).
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from urllib.parse import quote

from benchmarks.browser import (
    SCRIBBLE,
    draw_digit_and_read_prediction,
    goto,
    launch_chromium,
    start_app,
    stop_app,
    wait_until_idle,
)

OUT = Path(__file__).resolve().parent / "results" / "screenshots"
MODEL = "cifar10_airbench12_s1"  # the README's pictures
LABELS_MODEL = "cifar10_airbench18_s2"  # the shipped CIFAR-10 audit's judge


def _main_area(page, path: Path) -> None:
    page.locator('[data-testid="stMain"]').screenshot(path=str(path))
    print(f"Wrote {path}")


def draw_scribble(page, url, out: Path) -> None:
    goto(page, url, "draw", "Draw a digit")
    page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
    draw_digit_and_read_prediction(page, SCRIBBLE)
    page.get_by_text("This does not look like a handwritten digit.").wait_for(timeout=30_000)
    _main_area(page, out / "not_a_digit.png")


def confusion_click(page, url, out: Path, model: str = MODEL) -> None:
    """The model's most confused cell, opened from its address (tests/test_browser.py clicks one)."""
    from cnn_core.analysis.evaluation import most_confused_cell
    from cnn_core.base.store import find_model

    evaluation = find_model(model).load_eval(model)
    true, pred = (evaluation["class_names"][i] for i in most_confused_cell(evaluation["confusion_matrix"]))
    goto(page, url, f"results?model={model}&cm_cell={quote(true)}%3E{quote(pred)}", "Results")
    page.get_by_text("its test-set number · the model's confidence").wait_for(timeout=120_000)
    wait_until_idle(page)
    _main_area(page, out / "confusion_click.png")


def probe(page, url, out: Path, model: str = MODEL) -> None:
    goto(page, url, f"probe?model={model}", "Probe the model")
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


def calibration(page, url, out: Path, model: str = MODEL) -> None:
    goto(page, url, f"calibration?model={model}", "Calibration")
    page.get_by_text("Reliability diagram").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    _main_area(page, out / "calibration.png")


def suspicious_labels(page, url, out: Path, model: str = LABELS_MODEL) -> None:
    """The model's most disputed test images; then the first one's verdict changed, which the tally counts.
    A model without an audit gets one on a click (the button), as a user would."""
    from playwright.sync_api import expect

    goto(page, url, f"labels?model={model}", "Suspicious labels")
    run = page.get_by_role("button", name=re.compile("Find the suspicious labels"))
    tally = page.get_by_test_id("stMarkdownContainer").filter(has_text="Of these 20:")
    tally.or_(run).first.wait_for(timeout=60_000)
    if run.is_visible():
        run.click()
    tally.wait_for(timeout=300_000)
    first = page.get_by_role("combobox", name=re.compile(r"^Verdict on #")).first  # the first image's verdict
    first.wait_for(timeout=60_000)
    wait_until_idle(page)
    page.wait_for_timeout(1000)  # the pictures paint
    _main_area(page, out / "suspicious_labels.png")  # the verdicts as the project's audit set them
    before = tally.inner_text()
    other = "Label wrong" if first.input_value() == "Model wrong" else "Model wrong"
    first.click()
    page.get_by_role("option", name=other).click()
    expect(tally).not_to_have_text(before, timeout=30_000)


def main(argv=None) -> None:
    from playwright.sync_api import sync_playwright

    from cnn_core.data.datasets import resolve_data_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--model", help=f"the model every view shows (default {MODEL}; {LABELS_MODEL} for labels)")
    args = parser.parse_args(argv)
    chosen = {"model": args.model} if args.model else {}
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, _ = start_app(Path(tmp), resolve_data_dir())
        try:
            with sync_playwright() as pw:
                browser = launch_chromium(pw)
                page = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
                draw_scribble(page, url, args.out)
                for view in (confusion_click, probe, calibration, suspicious_labels):
                    view(page, url, args.out, **chosen)
                browser.close()
        finally:
            stop_app(proc)


if __name__ == "__main__":
    main()
