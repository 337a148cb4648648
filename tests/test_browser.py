"""Real-browser end-to-end tests: `streamlit run app.py` driven by Playwright in headless Chromium.

Chromium comes from the system (Debian's `chromium`); its path is $CHROMIUM_PATH, default
/usr/bin/chromium. A screenshot of each failing page lands in test-artifacts/.
"""

import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
PAGES = {"": "CNN Studio", "train": "Train a model", "results": "Results", "draw": "Draw a digit",
         "photo": "Classify a photo"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(tmp_dir: Path, data_dir: Path, extra_env: dict | None = None):
    """Start the real app on a free port; returns (process, base_url, log_path)."""
    port = _free_port()
    log = tmp_dir / f"streamlit-{port}.log"
    env = {**os.environ, "CNN_DATA_DIR": str(data_dir), "CNN_RUNS_DIR": str(tmp_dir / "runs"),
           "TF_CPP_MIN_LOG_LEVEL": "3", **(extra_env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log.read_text()[-3000:]}")
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url, log
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"streamlit did not become healthy:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, data_dir):
    proc, url, log = start_app(tmp_path_factory.mktemp("app"), data_dir)
    yield url
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it (apt-get install -y chromium) "
                    "or set CHROMIUM_PATH.")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def wait_until_idle(pg, timeout=90_000):
    """Wait for Streamlit to finish running the script (no 'Running…' status widget)."""
    pg.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    pg.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout)


def goto(pg, url, path, expect_title):
    pg.goto(f"{url}/{path}")
    pg.get_by_role("heading", name=expect_title).first.wait_for(timeout=120_000)
    wait_until_idle(pg)


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_loads_without_an_exception(page, app_url, path):
    goto(page, app_url, path, PAGES[path])
    page.wait_for_timeout(500)
    assert page.locator('[data-testid="stException"]').count() == 0


# Strokes in canvas pixels (280×280): lists of polylines.
def _arc(cx, cy, rx, ry, start, end, n=24):
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in [start + (end - start) * i / n for i in range(n + 1)]]


DIGIT_STROKES = {
    "0": [_arc(140, 140, 55, 90, -90, 275)],
    "1": [[(150, 45), (140, 140), (135, 235)]],
    "3": [_arc(135, 95, 50, 45, -160, 90) + _arc(135, 185, 55, 50, -90, 160)],
    "7": [[(75, 55), (205, 55), (170, 120), (140, 180), (120, 240)]],
}


def draw(pg, canvas, strokes):
    box = canvas.bounding_box()
    for line in strokes:
        x0, y0 = line[0]
        pg.mouse.move(box["x"] + x0, box["y"] + y0)
        pg.mouse.down()
        for x, y in line[1:]:
            pg.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        pg.mouse.up()


def test_drawn_digits_are_recognised(page, app_url):
    goto(page, app_url, "draw", "Draw a digit")
    recognised = {}
    for digit, strokes in DIGIT_STROKES.items():
        page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
        canvas = page.locator("canvas.upper-canvas").first
        canvas.wait_for(timeout=60_000)
        draw(page, canvas, strokes)
        value = page.locator('[data-testid="stMetricValue"]').first
        value.wait_for(timeout=60_000)
        wait_until_idle(page)
        recognised[digit] = value.inner_text().strip()
        page.get_by_role("button", name="Clear canvas").click()
        wait_until_idle(page)
    hits = sum(recognised[d] == d for d in recognised)
    assert hits >= 3, recognised


def test_uploaded_car_photo_shows_automobile_in_top3(page, app_url):
    goto(page, app_url, "photo", "Classify a photo")
    car = next((REPO / "assets" / "samples").glob("automobile_*.png"))
    page.locator('input[type="file"]').first.set_input_files(str(car))
    page.get_by_text("What the network sees (32×32)").wait_for(timeout=60_000)
    wait_until_idle(page)
    bars = page.locator('[data-testid="stProgress"]')
    texts = [bars.nth(i).inner_text() for i in range(bars.count())]
    assert len(texts) == 3 and any("automobile" in t for t in texts), texts
    assert page.locator('[data-testid="stException"]').count() == 0
