"""Unguessable links to the visitors' embedding files (a visitor's image data): one live link per session.

A session publishes the file of its current image and gets a URL with a random token; publishing its next image
or revoking (new upload, session end) makes the previous URL answer 404 with a clear message, as does a token
that was never published or whose file is gone (the session's files are deleted with it and counted in its disk
cap where the caller writes them, e.g. in a `Sessions.named_folder`). A request must also name its session in
the SESSION_HEADER header (the page sends its Gradio session hash): a request of another session, or of none, is
refused with 403. Responses are never stored by the browser and never readable by other origins.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from .web_assets import PREFIX

EXPIRED = "This embedding link has expired (a newer image, or the session ended): reload the image."
NOT_YOURS = "This embedding belongs to another session: only the browser tab that opened the image may read it."
SESSION_HEADER = "X-Mobile-Sam-Session"
TOKEN_BYTES = 32


class EmbeddingLinks:
    """token -> (session id, file) for the sessions' current images, and the route that serves them.

    session_key maps the SESSION_HEADER value a request sends to a session id (as given to `publish`)."""

    def __init__(
        self, prefix: str = f"{PREFIX}/embeddings", session_key: Callable[[str], str] = lambda session: session
    ) -> None:
        self.prefix = prefix
        self.session_key = session_key
        self._files: dict[str, tuple[str, Path]] = {}
        self._lock = threading.Lock()

    def publish(self, session_id: str, path: str | Path) -> str:
        """The URL of a session's embedding file; the session's previous link stops working."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self._lock:
            self._drop(session_id)
            self._files[token] = (session_id, Path(path))
        return f"{self.prefix}/{token}"

    def revoke(self, session_id: str) -> None:
        """The session's link stops working (a new upload, or the session ended)."""
        with self._lock:
            self._drop(session_id)

    def file(self, token: str) -> tuple[str, Path] | None:
        """(session id, file) behind a live token, or None."""
        with self._lock:
            entry = self._files.get(token)
        return entry if entry is not None and entry[1].is_file() else None

    def route(self) -> Route:
        """GET/HEAD prefix/{token}: the file (no-store, same-origin only) for its session; 404 with EXPIRED for a
        dead token, 403 with NOT_YOURS for a request without the owner's SESSION_HEADER."""

        async def endpoint(request: Request) -> Response:
            entry = self.file(request.path_params["token"])
            if entry is None:
                return PlainTextResponse(EXPIRED, status_code=404, headers={"Cache-Control": "no-store"})
            owner, path = entry
            claimed = request.headers.get(SESSION_HEADER)
            if claimed is None or self.session_key(claimed) != owner:
                return PlainTextResponse(NOT_YOURS, status_code=403, headers={"Cache-Control": "no-store"})
            headers = {
                "Cache-Control": "private, no-store",
                "Cross-Origin-Resource-Policy": "same-origin",
                "X-Content-Type-Options": "nosniff",
            }
            return FileResponse(path, media_type="application/octet-stream", headers=headers)

        return Route(f"{self.prefix}/{{token}}", endpoint, methods=["GET", "HEAD"])

    def _drop(self, session_id: str) -> None:
        for token in [t for t, (owner, _) in self._files.items() if owner == session_id]:
            del self._files[token]
