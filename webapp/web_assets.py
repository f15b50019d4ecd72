"""HTTP routes for the page's in-browser decoder: onnxruntime-web, the decoder files and our ES modules.

Gradio's own file route sends files of its upload cache as octet-stream attachments, which `import()` and
`WebAssembly.instantiateStreaming` refuse; these routes send each file with its real type (MEDIA_TYPES), the
gzip copy where one exists and the client accepts gzip, and a cache policy: forever for URLs that change with
their content (onnxruntime-web's version is in its URL, a decoder's content hash in its name), revalidated for
our modules. URL layout (`WebAssets`):

    /mobile-sam/ort/<version>/<file>        the ORT_FILES of onnxruntime-web (`ensure_ort_files`)
    /mobile-sam/decoders/decoder-<hash>.onnx  `DecoderCache` files
    /mobile-sam/js/<module>.js              webapp/browser/*.js

With Gradio: `demo.launch(app_kwargs={"routes": assets.routes()})`; add
`"middleware": [Middleware(CrossOriginIsolation)]` for the isolated mode (onnxruntime-web's threads).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .decoder_cache import DecoderCache
from .ort_files import ORT_FILES, RECORD

PREFIX = "/mobile-sam"
JS_DIR = Path(__file__).resolve().parent / "browser"
MEDIA_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".onnx": "application/octet-stream",
    ".bin": "application/octet-stream",
}
FOREVER = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
_MODULE_NAME = re.compile(r"[a-z][a-z0-9_]*\.js")

Resolver = Callable[[str], "Path | None"]


@dataclass(frozen=True)
class WebAssets:
    """Where the files are: onnxruntime-web's folder (`ort_files.ort_folder`; its files are served once
    `ensure_ort_files` has completed it) and version, the decoder cache and our modules' folder."""

    ort_folder: Path
    ort_version: str
    decoders: DecoderCache
    js_dir: Path = JS_DIR

    @property
    def ort_url(self) -> str:
        """The URL folder of onnxruntime-web's files, ending in "/" (onnxruntime-web's `env.wasm.wasmPaths`)."""
        return f"{PREFIX}/ort/{self.ort_version}/"

    def decoder_url(self, name: str) -> str:
        return f"{PREFIX}/decoders/{name}"

    def module_url(self, name: str) -> str:
        return f"{PREFIX}/js/{name}"

    def routes(self) -> list[Route]:
        """The three file routes (GET and HEAD)."""
        return [
            file_route(self.ort_url.rstrip("/"), self._ort_file, FOREVER),
            file_route(f"{PREFIX}/decoders", self.decoders.file, FOREVER),
            file_route(f"{PREFIX}/js", self._module_file, REVALIDATE),
        ]

    def _ort_file(self, name: str) -> Path | None:
        if name not in ORT_FILES or not (self.ort_folder / RECORD).is_file():
            return None
        return self.ort_folder / name

    def _module_file(self, name: str) -> Path | None:
        path = self.js_dir / name
        return path if _MODULE_NAME.fullmatch(name) and path.is_file() else None


def file_route(prefix: str, resolve: Resolver, cache_control: str) -> Route:
    """GET/HEAD prefix/{name}: the file `resolve(name)` gives (404 for None) with its media type and cache policy."""

    async def endpoint(request: Request) -> Response:
        path = resolve(request.path_params["name"])
        if path is None:
            return PlainTextResponse("Not found", status_code=404)
        return file_response(path, request, cache_control)

    return Route(f"{prefix}/{{name}}", endpoint, methods=["GET", "HEAD"])


def file_response(path: Path, request: Request, cache_control: str) -> FileResponse:
    """path with MEDIA_TYPES' type; its gzip copy (path + ".gz") instead where one exists and the client takes it."""
    headers = {"Cache-Control": cache_control, "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
    media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    compressed = path.with_name(f"{path.name}.gz")
    if "gzip" in request.headers.get("accept-encoding", "") and compressed.is_file():
        return FileResponse(compressed, media_type=media_type, headers={**headers, "Content-Encoding": "gzip"})
    return FileResponse(path, media_type=media_type, headers=headers)


class CrossOriginIsolation:
    """ASGI middleware: COOP same-origin and COEP require-corp on every response, so that the page is
    cross-origin isolated (`crossOriginIsolated`) and onnxruntime-web may run threads (SharedArrayBuffer)."""

    HEADERS = [(b"cross-origin-opener-policy", b"same-origin"), (b"cross-origin-embedder-policy", b"require-corp")]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in self.HEADERS if name not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
