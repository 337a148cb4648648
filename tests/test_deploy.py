"""Deploy: requirements resolve for Python 3.12 and 3.14 (without TensorFlow there); without TensorFlow the
Draw and Photo pages still predict and the others say what they need; the app serves every page from a
read-only repository with no dataset; TensorFlow's thread pools follow the CPU quota."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cnn_core.base.runtime import cpu_quota
from conftest import REPO

# -- requirements.txt ---------------------------------------------------------------------------


def _wheel_fits(filename: str, minor: int) -> bool:
    """Whether a wheel installs on CPython 3.`minor`."""
    from packaging.utils import parse_wheel_filename

    _, _, _, tags = parse_wheel_filename(filename)
    cp = f"cp3{minor}"
    return any(t.interpreter in (cp, "py3", f"py3{minor}") and t.abi in (cp, "abi3", "none") for t in tags) or any(
        t.interpreter.startswith("cp3") and t.abi == "abi3" and int(t.interpreter[3:]) <= minor for t in tags
    )


def _wanted(python: str) -> list:
    """requirements.txt's requirements that apply on Linux with that Python (their markers evaluated there)."""
    from packaging.requirements import Requirement

    target = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux"}
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    wanted = [Requirement(line) for line in lines if line]
    return [req for req in wanted if req.marker is None or req.marker.evaluate(target)]


@pytest.mark.slow  # resolves every requirement against the package index
def test_requirements_resolve_for_python_312_with_pip_from_the_registry(tmp_path):
    """What pip does with Python 3.12, against the real package index (--isolated: no local wheel folders or
    constraints), binary wheels only. (pip evaluates markers for the Python it runs on, not --python-version:
    the other Pythons are resolved with uv below.)"""
    python = "3.12"

    report = tmp_path / "report.json"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--isolated",
            "--dry-run",
            "--quiet",
            "--no-input",
            "--python-version",
            python,
            "--only-binary=:all:",
            "--target",
            str(tmp_path / "target"),
            "--report",
            str(report),
            "-r",
            str(REPO / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    resolved = {
        item["metadata"]["name"].lower().replace("_", "-"): item for item in json.loads(report.read_text())["install"]
    }
    wanted = _wanted(python)
    assert "tensorflow" in {req.name for req in wanted}
    for req in wanted:
        item = resolved.get(req.name.lower().replace("_", "-"))
        assert item is not None, f"{req.name} was not resolved"
        assert req.specifier.contains(item["metadata"]["version"], prereleases=True), (req, item["metadata"]["version"])
    for name, item in resolved.items():
        filename = item["download_info"]["url"].rsplit("/", 1)[-1]
        assert filename.endswith(".whl") and _wheel_fits(filename, int(python.split(".")[1])), (name, filename)
        assert not item["download_info"]["url"].startswith("file:"), (name, "resolved from a local folder")
    assert not (tmp_path / "target").exists()  # a dry run installs nothing


@pytest.mark.slow  # resolves every requirement against the package index
@pytest.mark.parametrize("python", ["3.12", "3.14"])
def test_requirements_resolve_with_uv_as_community_cloud_installs_them(python):
    """Community Cloud installs with uv, on the Python the deployer picks; TensorFlow has no wheel for 3.14,
    where the requirements leave it out and LiteRT's nightly build (which has one) serves predictions."""
    out = subprocess.run(
        [sys.executable, "-m", "uv", "pip", "compile", str(REPO / "requirements.txt"), "--python-version", python,
         "--python-platform", "x86_64-manylinux_2_28", "--only-binary", ":all:", "--no-header", "--no-annotate",
         "--no-config", "--quiet"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    pinned = dict(line.split("==", 1) for line in out.stdout.split() if "==" in line)
    wanted = _wanted(python)
    for req in wanted:
        assert req.name in pinned and req.specifier.contains(pinned[req.name], prereleases=True), (req, pinned)
    assert ("tensorflow" in pinned) == ("keras" in pinned) == (python == "3.12"), sorted(pinned)
    assert ("ai-edge-litert" in pinned) != ("ai-edge-litert-nightly" in pinned)


# -- no TensorFlow (a Python it has no wheel for) ----------------------------------------------------

NO_TENSORFLOW_SCRIPT = textwrap.dedent('''
    """Runs in an environment without TensorFlow and Keras; prints one JSON line."""
    import json, sys

    from streamlit.testing.v1 import AppTest

    from cnn_core.cli import main

    digit, photo = (open(p, "rb").read() for p in sys.argv[1:3])
    at = AppTest.from_file("app.py", default_timeout=120)
    at.run()
    seen = {}
    for page in ("home", "train", "results", "draw", "photo", "explain", "probe", "calibration", "labels", "compare"):
        at.switch_page(f"app_pages/{page}.py").run()
        if page == "draw":
            at.file_uploader(key="digit_upload").set_value(("seven.png", digit, "image/png")).run()
        if page == "photo":
            at.file_uploader(key="photo_upload").set_value([("photo.png", photo, "image/png")]).run()
        seen[page] = {
            "exceptions": [e.value for e in at.exception],
            "errors": [e.value for e in at.error],
            "digit": at.metric[0].value if page == "draw" and at.metric else None,
            "top3": [p.proto.text for p in at.get("progress")] if page == "photo" else None,
        }
    seen["predict_exit"] = main(["predict", "--model", "mnist_fast30", sys.argv[1]])
    seen["train_exit"] = main(["train", "--dataset", "mnist", "--epochs", "1"])
    seen["tensorflow_imported"] = any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
    print(json.dumps(seen))
''')


NOT_INSTALLED = ("tensorflow", "keras", "tensorboard", "tensorboard_data_server", "tf_keras")


@pytest.fixture(scope="module")
def python_without_tensorflow(tmp_path_factory) -> str:
    """A fresh virtual environment with every package of this one but TensorFlow and Keras, as on a Python
    they have no wheel for: its interpreter. The packages are this environment's own, linked (a download
    of the rest would take minutes); TensorFlow and Keras are simply not there to import."""
    import sysconfig
    import venv

    root = tmp_path_factory.mktemp("no-tf")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    packages = root / "linked" / "site-packages"  # Streamlit runs in development mode outside a site-packages
    packages.mkdir(parents=True)
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name.split("-")[0].split(".")[0].lower() not in NOT_INSTALLED:
            (packages / entry.name).symlink_to(entry)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    (Path(site.stdout.strip()) / "studio.pth").write_text(f"import site; site.addsitedir({str(packages)!r})\n")
    probe = subprocess.run(
        [python, "-c", "import streamlit, ai_edge_litert, tensorflow"], capture_output=True, text=True, check=False
    )
    assert "No module named 'tensorflow'" in probe.stderr, probe.stderr[-2000:]
    return str(python)


@pytest.mark.browser
@pytest.mark.slow  # a server of its own
def test_a_server_without_tensorflow_answers_drawings_and_photos_in_a_browser(
    python_without_tensorflow, tmp_path, data_dir
):
    from playwright.sync_api import sync_playwright

    from benchmarks.browser import (
        CANVAS,
        DIGIT_STROKES,
        draw_digit_and_read_prediction,
        goto,
        launch_chromium,
        start_app,
        stop_app,
    )
    from cnn_core.base.runtime import tensorflow_missing_message

    proc, url, log = start_app(tmp_path, data_dir, python=python_without_tensorflow)
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            page = browser.new_context(viewport={"width": 1300, "height": 950}).new_page()
            goto(page, url, "draw", "Draw a digit")
            page.locator(CANVAS).first.wait_for()
            assert draw_digit_and_read_prediction(page, DIGIT_STROKES["7"]) == "7"
            goto(page, url, "photo", "Classify a photo")
            car = next((REPO / "assets" / "samples" / "cifar10").glob("automobile_*.png"))
            page.locator('input[type="file"]').first.set_input_files(str(car))
            page.locator('[data-testid="stProgress"]').first.wait_for(timeout=60_000)
            assert "automobile" in page.locator('[data-testid="stProgress"]').first.inner_text()
            page.goto(f"{url}/train")
            page.get_by_text(tensorflow_missing_message()).wait_for(timeout=60_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            browser.close()
    finally:
        stop_app(proc)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.mark.slow  # a fresh process
def test_without_tensorflow_draw_and_photo_predict_and_the_other_pages_say_what_they_need(
    python_without_tensorflow, tmp_path
):
    from cnn_core.base.runtime import tensorflow_missing_message
    from tests.test_bad_input import _canvas, _png, _seven

    digit = tmp_path / "seven.png"
    digit.write_bytes(_png(_canvas(_seven)))
    photo = min((REPO / "assets" / "samples" / "cifar10").glob("*.png"))
    out = subprocess.run(
        [python_without_tensorflow, "-c", NO_TENSORFLOW_SCRIPT, str(digit), str(photo)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "CNN_RUNS_DIR": str(tmp_path / "runs")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert not seen.pop("tensorflow_imported"), "a page or predict imported TensorFlow"
    assert seen.pop("predict_exit") == 0 and seen.pop("train_exit") == 2
    assert tensorflow_missing_message("This command") in out.stderr  # train's one line
    assert seen["draw"]["digit"] == "7" and len(seen["photo"]["top3"]) == 3
    for page, view in seen.items():
        assert not view["exceptions"], (page, view["exceptions"])
        needs = page not in ("home", "draw", "photo")
        assert view["errors"] == ([tensorflow_missing_message()] if needs else []), (page, view["errors"])


# -- read-only repository, no dataset ------------------------------------------------------------------

CHECK_SCRIPT = textwrap.dedent('''
    """Runs inside the read-only environment; prints one JSON line with what it saw."""
    import json, os, sys, tempfile, time
    from pathlib import Path

    repo = Path(sys.argv[1])
    os.chdir(repo)  # the repository comes first on PYTHONPATH
    out = {}
    try:
        (repo / "probe-write").write_text("x")
        out["repo_writable"] = True
    except OSError as err:
        out["repo_writable"] = False
        out["repo_write_error"] = err.strerror

    from streamlit.testing.v1 import AppTest
    from cnn_core.base.store import runs_store, list_model_names

    store = runs_store()
    out.update(ephemeral=store.ephemeral, runs_root=str(store.root), tmp=tempfile.gettempdir(),
               models=list_model_names())

    def texts(at):
        parts = [m.value for kind in ("markdown", "info", "warning", "error", "success", "caption")
                 for m in getattr(at, kind)]
        return "\\n".join(str(p) for p in parts)

    pages = {}
    for page in ["app_pages/home.py", "app_pages/train.py", "app_pages/results.py", "app_pages/draw.py", "app_pages/photo.py"]:
        at = AppTest.from_file(str(repo / "app.py"), default_timeout=240)
        at.run()
        at.switch_page(page)
        at.run()
        pages[page] = {"exceptions": [str(e.value) for e in at.exception],
                       "title": at.title[0].value if at.title else None, "text": texts(at),
                       "metrics": [m.value for m in at.metric]}
        if page == "app_pages/photo.py":
            samples = sorted(p.stem for p in (repo / "assets" / "samples").rglob("*.png") if "cifar10" in p.stem)
            at.get("button_group")[-1].set_value(samples[:1]).run()  # the sample pills come last
            pages[page]["after_sample"] = {"exceptions": [str(e.value) for e in at.exception],
                                           "progress": len(at.get("progress"))}
        if page == "app_pages/train.py":  # no data and no network: pressing Start must end in a clear message
            from app_pages._common import get_jobs
            at.selectbox(key="arch").set_value("seed").run()  # the original recipe, not the first offered
            at.number_input(key="epochs_mnist_seed").set_value(1)
            at.text_input(key="run_name").set_value("nodata")
            at.run()
            at.button(key="start").click().run()
            get_jobs().wait(180)
            time.sleep(0.5)
            at.run()
            snap = get_jobs().snapshot()
            pages[page]["job"] = {"state": snap.state, "error": snap.error}
            pages[page]["after_start"] = {"exceptions": [str(e.value) for e in at.exception],
                                          "errors": [e.value for e in at.error]}
    out["pages"] = pages

    # A run saved now lands in the temporary store and is listed with the shipped models.
    import keras
    inputs = keras.Input((28, 28, 1))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    saved = runs_store().save_model(model, "tmp_run")
    runs_store().save_json("tmp_run", ".json", {"name": "tmp_run", "dataset": "mnist"})
    out.update(saved=str(saved), listed_after_save="tmp_run" in list_model_names())
    print("RESULT " + json.dumps(out))
''')


def _unshare_works() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --bind / /mnt 2>/dev/null && umount /mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture
def read_only_app(tmp_path):
    """A command prefix that runs Python with the repository on a truly read-only mount when
    possible (a private mount namespace: EROFS), otherwise a read-only copy (no write permission)."""
    if _unshare_works():

        def command(script: Path, env_runs: str | None):
            inner = (
                f"mount --bind {REPO} {REPO} && mount -o remount,ro,bind {REPO} && "
                f"exec {sys.executable} {script} {REPO}"
            )
            return ["unshare", "-m", "sh", "-c", inner], REPO

        yield command
        return
    if os.geteuid() == 0:
        pytest.fail(
            "Cannot make the repository read-only here: running as root without mount namespaces "
            "(unshare -m). Run as a normal user or with CAP_SYS_ADMIN."
        )
    copy = tmp_path / "repo"
    for part in ("app.py", "app_pages", "cnn_core", "trained_models", "assets", ".streamlit"):
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            copy.mkdir(exist_ok=True)
            shutil.copy2(src, copy / part)
    for path in sorted(copy.rglob("*"), reverse=True) + [copy]:
        path.chmod(0o555 if path.is_dir() else 0o444)

    def command(script: Path, env_runs: str | None):
        return [sys.executable, str(script), str(copy)], copy

    yield command
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.slow  # a fresh process serves every page from a read-only copy
@pytest.mark.parametrize("runs_dir", ["default", "read_only_dir"])
def test_app_serves_every_page_read_only_without_data(read_only_app, tmp_path, runs_dir):
    script = tmp_path / "check.py"
    script.write_text(CHECK_SCRIPT)
    home = tmp_path / "home"
    home.mkdir()
    argv, repo = read_only_app(script, None)
    env = {k: v for k, v in os.environ.items() if k not in ("CNN_DATA_DIR", "CNN_RUNS_DIR")}
    env.update(
        HOME=str(home),
        KERAS_HOME=str(home / ".keras"),
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=str(repo),
        MPLCONFIGDIR=str(home / "mpl"),
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
    )
    if runs_dir == "read_only_dir":
        env["CNN_RUNS_DIR"] = str(repo / "trained_models" / "runs")  # inside the read-only tree
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert out.returncode == 0 and lines, (out.stdout[-2000:], out.stderr[-4000:])
    seen = json.loads(lines[-1][len("RESULT ") :])

    assert seen["repo_writable"] is False  # the scenario is real
    assert seen["ephemeral"] is True and Path(seen["runs_root"]).is_relative_to(seen["tmp"])
    assert {"mnist_fast30", "cifar10_wide40"} <= set(seen["models"])
    for page, got in seen["pages"].items():
        assert not got["exceptions"], (page, got["exceptions"])
        assert got["title"], page
    home_page = seen["pages"]["app_pages/home.py"]
    assert len(home_page["metrics"]) >= 2 and all(m.endswith("%") for m in home_page["metrics"])
    train_page = seen["pages"]["app_pages/train.py"]
    assert "lost when it restarts" in train_page["text"]
    assert "data is not on this server" in train_page["text"]
    assert train_page["job"]["state"] == "failed" and "mnist dataset is not available" in train_page["job"]["error"]
    assert not train_page["after_start"]["exceptions"]
    assert any("mnist dataset is not available" in e for e in train_page["after_start"]["errors"])
    assert seen["pages"]["app_pages/results.py"]["metrics"]  # shipped evaluations need no dataset
    assert seen["pages"]["app_pages/photo.py"]["after_sample"] == {"exceptions": [], "progress": 3}
    assert Path(seen["saved"]).parent == Path(seen["runs_root"]) and seen["listed_after_save"]
    shutil.rmtree(seen["runs_root"], ignore_errors=True)


# -- CPU quota -------------------------------------------------------------------------------------------------


def test_cpu_quota_is_joblibs_count_within_the_visible_cpus():
    """cgroup v1/v2 quotas and the affinity mask are joblib's to read (`joblib.cpu_count`)."""
    import joblib

    visible = min(os.cpu_count() or 1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1 << 16)
    assert cpu_quota() == joblib.cpu_count()
    assert 1 <= cpu_quota() <= visible


def test_cpu_quota_follows_a_limit_set_for_the_process():
    code = "from cnn_core.base.runtime import cpu_quota; print(cpu_quota())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LOKY_MAX_CPU_COUNT": "1"},
        check=False,
    )
    assert out.returncode == 0 and out.stdout.split() == ["1"], out.stderr[-2000:]


@pytest.mark.slow  # a fresh process imports TensorFlow
def test_tensorflow_threads_follow_the_cpu_limit():
    """A process pinned to one CPU sizes TensorFlow's pools to it (configure_threads → cpu_quota)."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.fail("needs Linux CPU affinity")
    first = min(os.sched_getaffinity(0))
    code = textwrap.dedent(f"""
        import os, json
        os.sched_setaffinity(0, {{{first}}})
        from cnn_core.base.runtime import configure_threads, cpu_quota
        configure_threads()
        import tensorflow as tf
        print(json.dumps([cpu_quota(), tf.config.threading.get_intra_op_parallelism_threads(),
                          tf.config.threading.get_inter_op_parallelism_threads()]))
    """)
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    quota, intra, inter = json.loads(out.stdout.strip().splitlines()[-1])
    assert quota == 1 and intra == 1 and inter == 1
