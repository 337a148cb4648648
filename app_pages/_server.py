"""How the app is served: Streamlit's own server (uvicorn + Starlette, `streamlit run app.py`) with one
middleware in front that serves Streamlit's front-end bundle from memory.

Why: every visitor in a fresh browser fetches the whole bundle, about 110 files and 4 MB. Streamlit's
static route reads each file from disk in 64 KB chunks, each chunk a hop to a worker thread, and that was
most of the server's CPU time per visit (the load benchmark, `python -m benchmarks.load`). The bundle never changes while the
server runs and its file names carry their content hash, so each file is read and gzip-compressed once,
on its first request, and every later request is two ASGI messages from memory. Only files asked for are kept,
so memory stays below the bundle's own size on disk plus its gzip forms.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import mimetypes
import threading
from pathlib import Path

# Bundle files carry their content hash in their names, so a browser may keep them a year, as Streamlit's
# own route allows. (The HTML page, which names them, is not under /static/ and stays Streamlit's.)
IMMUTABLE = b"public, max-age=31536000, immutable"
# Already-compressed formats gain nothing from gzip and would cost CPU on the visitor's side too.
INCOMPRESSIBLE = (".woff2", ".woff", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".ico", ".gz", ".br")
LARGEST_CACHED_BYTES = 8 * 2**20  # anything larger streams from disk through Streamlit's own route


class _CachedFile:
    """One static file's bytes, their gzip form where it is smaller, and the headers both share."""

    def __init__(self, path: Path):
        self.raw = path.read_bytes()
        self.gzipped = None
        if not path.name.endswith(INCOMPRESSIBLE):
            packed = gzip.compress(self.raw, compresslevel=6, mtime=0)
            if len(packed) < len(self.raw) * 0.9:
                self.gzipped = packed
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type in ("application/javascript", "application/json"):
            content_type += "; charset=utf-8"
        self.etag = b'"' + hashlib.sha1(self.raw).hexdigest()[:20].encode() + b'"'
        self.headers = [
            (b"content-type", content_type.encode()),
            (b"cache-control", IMMUTABLE),
            (b"etag", self.etag),
            (b"vary", b"accept-encoding"),
        ]


class StaticFilesFromMemory:
    """ASGI middleware: GET and HEAD requests under `prefix` for files in `directory` are answered from
    memory (gzip-encoded where the client accepts it); every other request goes on to `app` unchanged,
    as do ranges, paths outside `directory` and missing files (Streamlit's route answers those)."""

    def __init__(self, app, directory: str | Path, prefix: str = "/static/"):
        self.app = app
        self.root = Path(directory).resolve()
        self.prefix = prefix
        self._files: dict[str, _CachedFile | None] = {}
        self._lock = threading.Lock()

    def _lookup(self, relative: str) -> _CachedFile | None:
        if relative not in self._files:
            with self._lock:
                if relative not in self._files:
                    path = (self.root / relative).resolve()
                    inside = path.is_relative_to(self.root) and path.is_file()
                    small = inside and path.stat().st_size <= LARGEST_CACHED_BYTES
                    self._files[relative] = _CachedFile(path) if small else None
        return self._files[relative]

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        found = None
        if path.startswith(self.prefix) and scope["method"] in ("GET", "HEAD"):
            headers = dict(scope["headers"])
            if b"range" not in headers:
                found = self._lookup(path[len(self.prefix) :])
        if found is None:
            await self.app(scope, receive, send)
            return
        if headers.get(b"if-none-match") == found.etag:
            await send({"type": "http.response.start", "status": 304, "headers": found.headers})
            await send({"type": "http.response.body", "body": b""})
            return
        use_gzip = found.gzipped is not None and b"gzip" in headers.get(b"accept-encoding", b"")
        body = found.gzipped if use_gzip else found.raw
        extra = [(b"content-length", str(len(body)).encode())]
        if use_gzip:
            extra.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": found.headers + extra})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


@contextlib.asynccontextmanager
async def stop_runs_at_shutdown(_app):
    """The server's lifespan: when it shuts down (SIGTERM from a container platform, Ctrl-C), every training
    run stops with its finished epochs on disk and a card that says how to resume it. This cannot wait for
    the process's exit handlers: uvicorn ends a SIGTERM by raising it again once it has shut down, and that
    kills the process without them."""
    yield
    from cnn_core.service.jobs import shut_down_every_run

    await asyncio.to_thread(shut_down_every_run)  # waits for the run's last batch: off the event loop


def studio_middleware() -> list:
    """The middleware the app's server runs in front of Streamlit's own (app.py's st.App)."""
    from starlette.middleware import Middleware
    from streamlit import file_util

    # Streamlit mounts its static folder at the root; the hashed bundle is its static/ subfolder.
    return [Middleware(StaticFilesFromMemory, directory=Path(file_util.get_static_dir()) / "static")]
