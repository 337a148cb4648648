"""Real-browser harness shared by the app benchmarks and the browser tests
(`from benchmarks.browser import ...`): start the real app with `streamlit run app.py` on a
free port, launch Debian's Chromium through Playwright, and draw digits on the canvas with
mouse drags."""

import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# (Not /usr/bin/chromium-browser: on Ubuntu that is a shim for a snap, which Playwright cannot drive.)
SYSTEM_CHROMIUMS = ("/usr/bin/chromium", "/usr/bin/google-chrome")
# The Train page's progress text while a run trains (app_pages/_job_view.py).
PROGRESS = re.compile(r"Epoch (\d+)/(\d+) · batch (\d+)/(\d+)")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_executable() -> str | None:
    """$CHROMIUM_PATH, else the system's Chromium (Debian's `chromium`), else None: Playwright's
    own browser build (`python -m playwright install chromium`, what tests/install.sh falls back
    to on Ubuntu, where Chromium is a snap)."""
    if os.environ.get("CHROMIUM_PATH"):
        return os.environ["CHROMIUM_PATH"]
    return next((path for path in SYSTEM_CHROMIUMS if Path(path).exists()), None)


CHROMIUM = chromium_executable()


def launch_chromium(playwright):
    if CHROMIUM is not None and not Path(CHROMIUM).exists():
        raise FileNotFoundError(
            f"Chromium not found at {CHROMIUM}: set CHROMIUM_PATH to a Chromium, or run `bash tests/install.sh`."
        )
    try:
        return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    except Exception as err:
        if CHROMIUM is None:
            raise FileNotFoundError(
                f"No Chromium on this machine ({err}). Run `bash tests/install.sh`, which "
                "installs Debian's chromium or Playwright's own build."
            ) from err
        raise


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(
    tmp_dir: Path,
    data_dir: Path,
    extra_env: dict | None = None,
    cpus: set[int] | None = None,
    python: str = sys.executable,
):
    """Start the real app on a free port; returns (process, base_url, log_path). `cpus`: the cores the
    server may run on (its affinity mask, as `taskset` sets it); by default this process's. `python`: the
    interpreter (of another environment) to serve it with."""
    port = _free_port()
    log = tmp_dir / f"streamlit-{port}.log"
    env = {
        **os.environ,
        "CNN_DATA_DIR": str(data_dir),
        "CNN_RUNS_DIR": str(tmp_dir / "runs"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        **(extra_env or {}),
    }
    pinned = [] if cpus is None else ["taskset", "-c", ",".join(map(str, sorted(cpus)))]  # execs the server in place
    proc = subprocess.Popen(
        [
            *pinned,
            python,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
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


def stop_app(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_until_idle(pg, timeout=90_000):
    """Wait for Streamlit to finish running the script (no 'Running…' status widget)."""
    pg.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    pg.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout,
    )


def goto(pg, url, path, expect_title):
    pg.goto(f"{url}/{path}")
    pg.get_by_role("heading", name=expect_title).first.wait_for(timeout=120_000)
    wait_until_idle(pg)


# The Draw page's canvas element (app_pages/_canvas.py; Playwright's CSS locators reach into its shadow root).
CANVAS = "canvas.digit-canvas"


# Strokes in canvas pixels (280×280): lists of polylines.
def _arc(cx, cy, rx, ry, start, end, n=24):
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in [start + (end - start) * i / n for i in range(n + 1)]
    ]


DIGIT_STROKES = {
    "0": [_arc(140, 140, 55, 90, -90, 275)],
    "1": [[(150, 45), (140, 140), (135, 235)]],
    "3": [_arc(135, 95, 50, 45, -160, 90) + _arc(135, 185, 55, 50, -90, 160)],
    "7": [[(75, 55), (205, 55), (170, 120), (140, 180), (120, 240)]],
}
# Not a digit: a tangle over the whole canvas, zigzags crossed by a wide loop and two diagonals.
SCRIBBLE = [
    [(20, 30), (260, 50), (30, 100), (250, 130), (20, 190), (260, 230), (40, 260)],
    [(140, 20), (40, 140), (140, 260), (240, 140), (150, 30)],
    [(60, 60), (220, 220)],
    [(220, 40), (50, 240)],
]


def draw(pg, canvas, strokes):
    box = canvas.bounding_box()
    for line in strokes:
        x0, y0 = line[0]
        pg.mouse.move(box["x"] + x0, box["y"] + y0)
        pg.mouse.down()
        for x, y in line[1:]:
            pg.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        pg.mouse.up()


def draw_digit_and_read_prediction(pg, strokes, timeout_ms=60_000) -> str:
    """Draw on the Draw page's canvas and return the predicted digit shown.

    The canvas may still be initialising right after the page renders, so a drawing that
    produced no prediction within a few seconds is drawn again."""
    deadline = time.time() + timeout_ms / 1000
    value = pg.locator('[data-testid="stMetricValue"]').first
    while True:
        canvas = pg.locator(CANVAS).first
        canvas.wait_for(timeout=timeout_ms)
        draw(pg, canvas, strokes)
        try:
            value.wait_for(timeout=8_000)
            wait_until_idle(pg)
            return value.inner_text().strip()
        except Exception:
            if time.time() > deadline:
                raise


def train_progress(train_page) -> tuple[int, int, int, int] | None:
    """(epoch, epochs, batch, batches) from the Train page's progress text, if it shows a batch."""
    bars = train_page.locator('[data-testid="stProgress"]')
    try:  # the live fragment redraws every second: the bar may go between the count and the read
        found = PROGRESS.search(bars.first.inner_text(timeout=2_000)) if bars.count() else None
    except Exception:  # noqa: BLE001 - polled by a retry loop: any failed read is just no batch shown yet
        found = None
    return tuple(int(g) for g in found.groups()) if found else None


def start_training(train_page, url: str, dataset_title: str, epochs: int, timeout_s: float = 900.0) -> float:
    """On a fresh Train page: the dataset titled `dataset_title`, the default recipe, `epochs` epoch(s),
    Start; wait until the progress shows a batch. Returns the seconds from the click to that first batch."""
    goto(train_page, url, "train", "Train a model")
    train_page.locator('[data-testid="stSelectbox"]').filter(has_text="Dataset").first.click()
    train_page.get_by_role("option", name=dataset_title).click()
    wait_until_idle(train_page)
    # Keyed per dataset and recipe: set after choosing them.
    box = train_page.locator('[data-testid="stNumberInput"]').filter(has_text="Epochs").locator("input")
    if box.count():
        box.first.fill(str(epochs))
        box.first.press("Enter")
        wait_until_idle(train_page)
    t0 = time.perf_counter()
    train_page.get_by_role("button", name="Start training").click()
    deadline = t0 + timeout_s
    while train_progress(train_page) is None:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the {dataset_title} run showed no batch within {timeout_s:.0f} s of Start")
        errors = train_page.locator('[data-testid="stAlertContentError"], [data-testid="stException"]')
        if errors.count():
            raise RuntimeError(f"the Train page refused the run: {errors.first.inner_text()[:500]}")
        train_page.wait_for_timeout(250)
    return time.perf_counter() - t0


def stop_training(train_page, timeout_s: float = 900.0) -> float:
    """Press Stop in the tab that started the run and wait until Start is enabled again (the run
    has ended and the server is free). Returns the seconds that took."""
    from playwright.sync_api import expect

    t0 = time.perf_counter()
    stop = train_page.get_by_role("button", name="Stop")
    if stop.count():
        stop.first.click()
    expect(train_page.get_by_role("button", name="Start training")).to_be_enabled(timeout=timeout_s * 1000)
    wait_until_idle(train_page)
    return time.perf_counter() - t0
