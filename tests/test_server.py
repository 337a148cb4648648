"""app_pages/_server.py: Streamlit's front-end bundle served from memory, byte for byte what is on disk, and
every request it does not own passed on to Streamlit untouched."""

import asyncio
import gzip
from pathlib import Path

import pytest

from app_pages._server import StaticFilesFromMemory, studio_middleware


@pytest.fixture
def bundle(tmp_path):
    root = tmp_path / "static"
    (root / "js").mkdir(parents=True)
    (root / "js" / "index.abc123.js").write_text("const answer = 42;\n" * 500)
    (root / "media").mkdir()
    (root / "media" / "font.abc123.woff2").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "secret.txt").write_text("not part of the bundle")
    return root


def call(middleware, path: str, method: str = "GET", headers: dict | None = None):
    """Send one HTTP request through the middleware; returns (status, headers, body, passed on to Streamlit)."""
    sent, passed = [], []

    async def streamlit(scope, receive, send):
        passed.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"streamlit"})

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "path": path,
        "method": method,
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    asyncio.run(StaticFilesFromMemory(streamlit, middleware)(scope, None, send))
    start, body = sent
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body["body"], bool(passed)


def test_a_bundle_file_comes_from_memory_gzipped_when_the_browser_accepts_it(bundle):
    on_disk = (bundle / "js" / "index.abc123.js").read_bytes()
    status, headers, body, passed = call(bundle, "/static/js/index.abc123.js", headers={"accept-encoding": "gzip, br"})
    assert (status, passed) == (200, False)
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == on_disk
    assert int(headers["content-length"]) == len(body) < len(on_disk) / 10
    assert headers["content-type"].startswith("text/javascript") or "javascript" in headers["content-type"]
    assert "immutable" in headers["cache-control"] and headers["vary"] == "accept-encoding"

    status, headers, body, _ = call(bundle, "/static/js/index.abc123.js")
    assert status == 200 and body == on_disk and "content-encoding" not in headers


def test_compressed_formats_are_sent_as_they_are_and_head_sends_no_body(bundle):
    font = (bundle / "media" / "font.abc123.woff2").read_bytes()
    status, headers, body, _ = call(bundle, "/static/media/font.abc123.woff2", headers={"accept-encoding": "gzip"})
    assert status == 200 and body == font and "content-encoding" not in headers
    status, headers, body, _ = call(bundle, "/static/media/font.abc123.woff2", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) == len(font)


def test_a_known_etag_is_answered_not_modified(bundle):
    _, headers, _, _ = call(bundle, "/static/js/index.abc123.js")
    status, _, body, passed = call(bundle, "/static/js/index.abc123.js", headers={"if-none-match": headers["etag"]})
    assert (status, body, passed) == (304, b"", False)


@pytest.mark.parametrize(
    "path, method, headers",
    [
        ("/static/js/missing.js", "GET", {}),  # Streamlit answers 404 its own way
        ("/static/../secret.txt", "GET", {}),  # outside the bundle: never read from here
        ("/static/js/index.abc123.js", "POST", {}),
        ("/static/js/index.abc123.js", "GET", {"range": "bytes=0-10"}),
        ("/draw", "GET", {}),  # the pages and the HTML are Streamlit's
        ("/_stcore/health", "GET", {}),
    ],
)
def test_everything_else_goes_to_streamlit(bundle, path, method, headers):
    status, _, body, passed = call(bundle, path, method, headers)
    assert (status, body, passed) == (299, b"streamlit", True)


def test_the_app_serves_streamlits_own_bundle_folder():
    (middleware,) = studio_middleware()
    folder = Path(middleware.kwargs["directory"])
    assert folder.name == "static" and any(folder.glob("js/index.*.js")), folder
