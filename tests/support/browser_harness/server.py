"""A local server for the in-browser decoder harness (tests/test_browser_decoder.py, benchmarks/bench_browser.py):
the app's asset routes (`webapp.web_assets.WebAssets`), the harness page and a few named files, optionally with
the cross-origin isolation headers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from webapp.web_assets import FOREVER, REVALIDATE, CrossOriginIsolation, WebAssets, file_response

HARNESS_DIR = Path(__file__).resolve().parent
HARNESS_FILES = ("index.html", "harness.js")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_harness(assets: WebAssets, files: Mapping[str, Path], isolate: bool = False) -> Iterator[str]:
    """Serve on a free 127.0.0.1 port until the block ends; yield the base URL ("http://127.0.0.1:PORT").

    /harness/<index.html | harness.js>, /files/<name> for each of `files`, and `assets.routes()`.
    """

    async def harness(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in HARNESS_FILES:
            return PlainTextResponse("Not found", status_code=404)
        if name.endswith(".html"):
            return FileResponse(HARNESS_DIR / name, media_type="text/html")
        return file_response(HARNESS_DIR / name, request, REVALIDATE)

    async def named_file(request: Request) -> Response:
        path = files.get(request.path_params["name"])
        return (
            PlainTextResponse("Not found", status_code=404) if path is None else file_response(path, request, FOREVER)
        )

    routes = [*assets.routes(), Route("/harness/{name}", harness), Route("/files/{name}", named_file)]
    app = Starlette(routes=routes, middleware=[Middleware(CrossOriginIsolation)] if isolate else [])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the harness server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def harness_url(base: str, assets: WebAssets, embedding: str, size: tuple[int, int], **overrides: str) -> str:
    """The harness page's URL for an embedding file's URL and a display size (width, height)."""
    query = {
        "js": assets.module_url(""),
        "ort": assets.ort_url,
        "decoders": assets.decoder_url(""),
        "embedding": embedding,
        "width": str(size[0]),
        "height": str(size[1]),
        **overrides,
    }
    return f"{base}/harness/index.html?{urlencode(query)}"
