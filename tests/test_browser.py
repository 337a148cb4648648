"""Real-browser end-to-end tests: `streamlit run app.py` driven by Playwright in headless Chromium.

Chromium comes from the system (Debian's `chromium`); its path is $CHROMIUM_PATH, default
/usr/bin/chromium. A screenshot of each failing page lands in test-artifacts/.
"""

import json
import re
import signal
import time

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from benchmarks import screenshots
from benchmarks.browser import (
    CANVAS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DIGIT_STROKES,
    SCRIBBLE,
    draw,
    draw_digit_and_read_prediction,
    goto,
    launch_chromium,
    start_app,
    start_training,
    stop_app,
    train_progress,
    wait_until_idle,
)
from conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = REPO / "test-artifacts"
NOT_A_DIGIT = "This does not look like a handwritten digit."
PAGES = {
    "": "CNN Studio",
    "train": "Train a model",
    "results": "Results",
    "draw": "Draw a digit",
    "probe": "Probe the model",
    "calibration": "Calibration",
    "labels": "Suspicious labels",
    "photo": "Classify a photo",
    "teach": "Teach your own classes",
}


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, data_dir):
    proc, url, _ = start_app(tmp_path_factory.mktemp("app"), data_dir)
    yield url
    stop_app(proc)


@pytest.fixture(scope="module")
def small_app_url(tmp_path_factory, small_data_dir):
    """The app over the small real-data folder: what it builds from a training or test set (the
    nearest-neighbour index, a label audit) is built in seconds, not minutes."""
    proc, url, _ = start_app(tmp_path_factory.mktemp("small_app"), small_data_dir)
    yield url
    stop_app(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        try:
            b = launch_chromium(pw)
        except FileNotFoundError as err:
            pytest.fail(str(err))
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_loads_without_an_exception(page, app_url, path):
    goto(page, app_url, path, PAGES[path])
    page.wait_for_timeout(500)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_drawn_digits_are_recognised(page, app_url):
    goto(page, app_url, "draw", "Draw a digit")
    recognised, warned = {}, []
    for digit, strokes in DIGIT_STROKES.items():
        page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
        recognised[digit] = draw_digit_and_read_prediction(page, strokes)
        if page.get_by_text(NOT_A_DIGIT).count():
            warned.append(digit)
        page.get_by_role("button", name="Clear canvas").click()
        wait_until_idle(page)
    hits = sum(recognised[d] == d for d in recognised)
    assert hits >= 3, recognised
    assert len(warned) <= 1, f"real drawn digits called 'not a digit': {warned}"


def test_a_scribble_on_the_canvas_is_called_not_a_digit(page, app_url):
    goto(page, app_url, "draw", "Draw a digit")
    page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
    draw_digit_and_read_prediction(page, SCRIBBLE)  # the network still guesses a digit ...
    page.get_by_text(NOT_A_DIGIT).wait_for(timeout=30_000)  # ... and the page says not to trust it


def test_uploaded_car_photo_shows_automobile_in_top3(page, app_url):
    goto(page, app_url, "photo", "Classify a photo")
    car = next((REPO / "assets" / "samples" / "cifar10").glob("automobile_*.png"))
    page.locator('input[type="file"]').first.set_input_files(str(car))
    page.get_by_text("What the network sees (32×32)").wait_for(timeout=60_000)
    wait_until_idle(page)
    bars = page.locator('[data-testid="stProgress"]')
    texts = [bars.nth(i).inner_text() for i in range(bars.count())]
    assert len(texts) == 3 and any("automobile" in t for t in texts), texts
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_webcam_shot_on_the_photo_page_is_classified(browser, app_url):
    """Chromium's fake camera (a test pattern) stands in for a webcam; the page asks for it only when the
    visitor switches it on."""
    fake_camera = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    with_camera = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + fake_camera)
    try:
        page = with_camera.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"]).new_page()
        goto(page, app_url, "photo", "Classify a photo")
        assert page.locator('[data-testid="stCameraInput"]').count() == 0  # no camera until asked for
        page.get_by_text("Take a photo with the webcam").click()
        page.wait_for_function(  # the stream is live: a shot taken before that is empty
            "() => { const v = document.querySelector('[data-testid=\"stCameraInput\"] video');"
            " return v && v.readyState >= 2 && v.videoWidth > 0; }",
            timeout=60_000,
        )
        page.get_by_role("button", name="Take Photo").click()
        page.get_by_text("webcam shot.jpg").wait_for(timeout=60_000)
        wait_until_idle(page)
        assert page.locator('[data-testid="stProgress"]').count() == 3
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        with_camera.close()


def test_explain_page_opens_from_a_drawing(page, app_url):
    goto(page, app_url, "draw", "Draw a digit")
    page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
    draw_digit_and_read_prediction(page, DIGIT_STROKES["7"])
    page.get_by_text("Look inside the network for this drawing").click()
    page.get_by_role("heading", name="Inside the CNN").first.wait_for(timeout=60_000)
    wait_until_idle(page)
    page.get_by_text("Which pixels drove the decision (Grad-CAM)").wait_for(timeout=60_000)
    assert page.get_by_text("Centred by mass in 28×28").count() >= 1  # the drawing's preprocessing steps
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_canvas_painted_over_is_called_filled_not_empty(page, app_url):
    goto(page, app_url, "draw", "Draw a digit")
    page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
    canvas = page.locator(CANVAS).first
    canvas.wait_for(timeout=60_000)
    # Horizontal strokes 12 px apart with the default 18 px pen cover the whole 280×280 canvas.
    rows = [[(2, y), (140, y), (278, y)] for y in range(4, 280, 12)]
    message = page.get_by_text("The canvas is filled almost completely")
    for _ in range(3):  # the canvas can drop the first strokes while it initialises
        draw(page, canvas, rows)
        try:
            message.wait_for(timeout=10_000)
            break
        except PlaywrightTimeoutError:
            pass  # not shown yet: draw again
    wait_until_idle(page)
    assert message.count() == 1
    assert page.locator('[data-testid="stMetricValue"]').count() == 0  # no digit is claimed
    assert page.locator('[data-testid="stException"]').count() == 0


def _batches_done(progress) -> int:
    epoch, _, step, steps = progress
    return (epoch - 1) * steps + step


@pytest.mark.slow  # trains a model in the app
def test_a_run_started_in_the_browser_draws_live_per_batch_curves_and_survives_a_reload(page, app_url):
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    start_training(page, app_url, "MNIST handwritten digits", epochs=1, timeout_s=300)
    seen = []
    for _ in range(6):  # the progress moves on within the epoch, at least once a second
        page.wait_for_timeout(1_500)
        progress = train_progress(page)
        if progress is None:
            break  # the run ended
        seen.append(_batches_done(progress))
    assert len(seen) >= 2 and len(set(seen)) >= 2 and seen == sorted(seen), seen
    assert charts.count() >= 3  # loss, accuracy and learning rate, drawn from the batches before any epoch ends
    before = seen[-1]
    page.reload()  # a reload picks the run up where it is, curves and all
    page.get_by_role("heading", name="Train a model").first.wait_for(timeout=60_000)
    page.wait_for_timeout(2_000)
    progress = train_progress(page)
    assert progress is None or _batches_done(progress) >= before, (progress, before)
    if progress is not None:  # still training: this browser (its cookie, not the address) still owns the run
        assert page.get_by_role("button", name="Stop").count() == 1
    page.get_by_text(re.compile(r"finished after \d+ epoch")).wait_for(timeout=300_000)
    wait_until_idle(page)
    assert charts.count() >= 3 and page.get_by_text("Smoothing").count() >= 1
    # The epoch slider replays the filters and feature maps (the quick recipe keeps no validation split).
    page.get_by_text("no validation split, so its confusion matrix cannot be replayed").first.wait_for(timeout=30_000)
    wait_until_idle(page)
    filters = page.locator('[data-testid="stImage"]').filter(has_text="Filters of")
    for _ in range(60):  # the end of the run reruns the page: wait until its old elements are gone
        if filters.count() == 1:
            break
        page.wait_for_timeout(500)
    assert filters.count() == 1
    before = filters.locator("img").get_attribute("src")
    epoch_slider = page.locator('[data-testid="stExpander"]').get_by_role("slider").first
    assert "after epoch 1" in epoch_slider.get_attribute("aria-valuetext")
    epoch_slider.focus()
    page.keyboard.press("ArrowLeft")
    for _ in range(180):
        if "before training" in (epoch_slider.get_attribute("aria-valuetext") or ""):
            break
        page.wait_for_timeout(500)
    assert "before training" in epoch_slider.get_attribute("aria-valuetext")
    wait_until_idle(page)
    page.wait_for_timeout(500)
    assert filters.locator("img").get_attribute("src") != before  # the untrained filters are drawn instead
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_copied_address_restores_the_train_settings_in_another_browser_without_the_run_token(browser, app_url):
    first = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = first.new_page()
        goto(page, app_url, "train", "Train a model")
        seed = page.locator('[data-testid="stNumberInput"]').filter(has_text="Seed").locator("input").first
        seed.fill("1234")
        seed.press("Enter")
        wait_until_idle(page)
        page.wait_for_function("() => location.search.includes('seed_mnist_quick=1234')", timeout=30_000)
        address = page.url
        token = next(c["value"] for c in first.cookies() if c["name"] == "cnn_studio_owner")
        assert token and token not in address and "tab=" not in address, address
    finally:
        first.close()
    second = browser.new_context(viewport={"width": 1400, "height": 1000})  # someone the link was sent to
    try:
        page = second.new_page()
        page.goto(address)
        page.get_by_role("heading", name="Train a model").first.wait_for(timeout=120_000)
        wait_until_idle(page)
        seed = page.locator('[data-testid="stNumberInput"]').filter(has_text="Seed").locator("input").first
        # The address's value reaches the widget with a rerun right after the first one (the page can go
        # idle in between), so wait for it rather than read it once.
        from playwright.sync_api import expect

        expect(seed).to_have_value("1234", timeout=15_000)
        assert all(c["value"] != token for c in second.cookies() if c["name"] == "cnn_studio_owner")
    finally:
        second.close()


def test_clicking_a_confusion_matrix_cell_opens_its_images(page, app_url):
    """The Results page's matrix is a Vega-Lite chart with a point selection: a click on a cell lists that
    cell's test images, and the address remembers the cell."""
    name = "cifar10_airbench12_s1"
    evaluation = json.loads((REPO / "trained_models" / f"{name}.eval.json").read_text())
    classes, cm = evaluation["class_names"], evaluation["confusion_matrix"]
    goto(page, app_url, f"results?model={name}", "Results")
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.wait_for(timeout=60_000)
    wait_until_idle(page)
    box = chart.bounding_box()
    page.mouse.click(box["x"] + box["width"] - 15, box["y"] + 12)  # the top row's last cell
    heading = page.get_by_text(re.compile(rf"test image\(s\) of {classes[0]} predicted as {classes[-1]}"))
    heading.wait_for(timeout=120_000)  # the first click reads the test set
    wait_until_idle(page)
    assert heading.inner_text().startswith(f"{cm[0][-1]:,} test image(s)")
    assert f"cm_cell={classes[0]}%3E{classes[-1]}" in page.url
    page.get_by_text("its test-set number · the model's confidence").wait_for(timeout=30_000)
    assert page.locator('[data-testid="stException"]').count() == 0

    # The tabs are lazy: a click runs the chosen one (and puts it in the address); the matrix is gone.
    page.get_by_role("tab", name="Training curves").click()
    page.locator('[data-testid="stImage"]').first.wait_for(timeout=60_000)
    wait_until_idle(page)
    assert "results_tab=Training" in page.url and page.locator('[data-testid="stVegaLiteChart"]').count() == 0


def test_a_deep_link_opened_first_on_a_fresh_server_gets_the_apps_navigation(page, small_app_url):
    """The first visit to a fresh server (small_app_url starts its own) is a deep link: the page runs
    inside app.py's navigation, titled as app.py names the pages, not alone as a legacy pages-folder app."""
    goto(page, small_app_url, "draw", "Draw a digit")
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.wait_for(timeout=60_000)
    for title in ("Classify a photo", "Suspicious labels", "Compare runs"):
        assert nav.get_by_text(title).count() == 1, title
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.mark.parametrize("model", ["mnist_fast30", "fashion_mnist_fast", "cifar10_seed"])
def test_the_probing_views_work_on_every_dataset(page, small_app_url, model, tmp_path):
    """What-if edits, the smallest adversarial ε, the nearest training images (index built on a click), the
    Calibration page and the Suspicious labels page (a verdict changed; cifar10_seed has no shipped
    audit, so the click makes one): benchmarks.screenshots' own views, each waiting for what it must show."""
    for view in (screenshots.probe, screenshots.calibration, screenshots.suspicious_labels):
        view(page, small_app_url, tmp_path, model)
        assert page.locator('[data-testid="stException"]').count() == 0, view.__name__
    for picture in ("whatif", "adversarial", "neighbours", "calibration", "suspicious_labels"):
        assert (tmp_path / f"{picture}.png").stat().st_size > 5_000


@pytest.mark.parametrize("mode", ["on", "off"], ids=["training process", "training thread"])
def test_sigterm_to_the_server_mid_run_exits_within_seconds_and_the_run_resumes(
    browser, tmp_path, small_data_dir, mode
):
    """A container restart sends SIGTERM and waits a few seconds: the server must not wait on a training run."""
    from cnn_core.base.store import ModelStore
    from cnn_core.train.training import train

    proc, url, log = start_app(tmp_path, small_data_dir, {"CNN_TRAINING_PROCESS": mode})
    runs = tmp_path / "runs"
    try:
        page = browser.new_page()
        start_training(page, url, "MNIST handwritten digits", epochs=20, timeout_s=300)
        deadline = time.monotonic() + 300
        while not list(runs.glob("*.last.json")) and time.monotonic() < deadline:  # an epoch is on disk
            time.sleep(0.1)
        page.close()
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        took = time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took <= 5, f"the server took {took:.1f} s to exit after SIGTERM:\n{log.read_text()[-2000:]}"
    (state,) = runs.glob("*.last.json")
    name = state.name.removesuffix(".last.json")
    store = ModelStore(runs, "runs", writable=True)
    card = store.load_card(name)
    assert card["status"] == "stopped" and card["end_of_run"]["deferred"] and 1 <= card["epochs_run"] < 20, card
    result = train({"epochs": card["epochs_run"] + 1}, name, resume=True, store=store, data_dir=small_data_dir)
    assert result.status == "finished" and result.card["epochs_run"] == card["epochs_run"] + 1
    assert result.card["test_size"] == 500 and "end_of_run" not in result.card


def test_a_visitor_teaches_three_classes_from_a_zip_uploads_and_the_webcam_and_classifies_a_new_picture(
    browser, app_url, data_dir, tmp_path
):
    """Issue "yours" item 1 end to end: a zip makes two classes, a third gets uploads, the webcam (Chromium's
    fake camera) adds a shot, Train shows the held-out accuracy, and a new picture gets its classes."""
    from test_teach import fashion_lesson, png

    from cnn_core.data.datasets import load_dataset

    data = load_dataset("fashion_mnist", data_dir)
    lesson = fashion_lesson(data, 5)
    bags = lesson.classes.pop("bag")
    (tmp_path / "two.zip").write_bytes(lesson.to_zip())
    for picture in bags:
        (tmp_path / picture.name).write_bytes(picture.data)
    new_bag = tmp_path / "new bag.png"
    new_bag.write_bytes(png(data.x_test[np.flatnonzero(data.y_test == 8)[0]]))
    fake_camera = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    with_camera = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + fake_camera)
    try:
        page = with_camera.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"]).new_page()
        goto(page, app_url, "teach", "Teach your own classes")
        uploader = page.locator('[data-testid="stFileUploader"]')
        uploader.filter(has_text="Import a picture set").locator("input[type=file]").set_input_files(
            tmp_path / "two.zip"
        )
        names = "() => [...document.querySelectorAll('input[aria-label=\"Class name\"]')].map(i => i.value).join(',')"
        page.wait_for_function(f"() => ({names})() == 'trouser,sandal'", timeout=60_000)
        page.get_by_role("button", name="Add a class").click()
        third = page.locator('input[aria-label="Class name"]').nth(2)
        third.wait_for(timeout=30_000)
        third.fill("bag")
        third.press("Enter")
        page.get_by_text("Pictures of 'bag'").wait_for(timeout=30_000)
        files = [tmp_path / p.name for p in bags]
        uploader.filter(has_text="Pictures of 'bag'").locator("input[type=file]").set_input_files(files)
        page.get_by_text(f"{len(bags)} pictures").first.wait_for(timeout=60_000)
        # A webcam shot for the first class.
        page.locator("button", has_text="Webcam").first.click()
        page.wait_for_function(
            "() => { const v = document.querySelector('[data-testid=\"stCameraInput\"] video');"
            " return v && v.readyState >= 2 && v.videoWidth > 0; }",
            timeout=60_000,
        )
        page.get_by_role("button", name="Take Photo").click()
        page.get_by_text("6 pictures").first.wait_for(timeout=60_000)  # the trousers' five and the shot
        wait_until_idle(page)
        page.get_by_role("button", name=re.compile(r"Train on 16 pictures")).click()
        page.get_by_text("Accuracy on held-out pictures").wait_for(timeout=120_000)
        wait_until_idle(page)
        accuracy = page.locator('[data-testid="stMetricValue"]').first.inner_text()
        assert float(accuracy.rstrip("%")) >= 50, accuracy
        page.get_by_text("5-fold cross-validation over 16 pictures").wait_for(timeout=10_000)  # 5 bags, 5 folds
        for download in ("Download the pictures (.zip)", "Download the taught network"):
            assert page.get_by_role("button", name=re.compile(re.escape(download))).count() == 1
        uploader.filter(has_text="Pictures to classify").locator("input[type=file]").set_input_files(new_bag)
        page.get_by_text("Grad-CAM: where it looked").wait_for(timeout=60_000)
        wait_until_idle(page)
        bars = page.locator('[data-testid="stProgress"]')
        assert bars.count() == 3 and "bag" in bars.first.inner_text(), bars.first.inner_text()
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        with_camera.close()
