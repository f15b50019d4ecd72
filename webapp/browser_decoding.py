"""The server side of "masks in the browser", for the segment tab to plug in: `BrowserDecoding`.

It owns onnxruntime-web's files (put in place in the background when the app starts, `start`), the decoder files
(`DecoderCache`: exported in the background, never while a visitor waits), the visitors' embedding files and their
links (`EmbeddingLinks`), and the HTTP routes of all of them (`routes()`, for `launch(app_kwargs={"routes": ...})`).
For each encoded image, `publish` writes the embedding file into a folder of the visitor's session and returns
what the page needs (`PageDecoder`), or why the page cannot decode (`ServerOnly`: onnxruntime-web missing, a
model it does not serve, or files still being prepared): the page then uses the server round trip. The page side
is webapp/browser/controller.js and webapp/browser/segment_page.js.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from mobile_sam.modeling import Sam

from .decoder_cache import DecoderCache, DecoderFile, DecoderSettings, weights_sha256
from .embedding_file import EmbeddingHeader, write_embedding
from .embedding_links import SESSION_HEADER, EmbeddingLinks
from .ort_files import STATIC_DIR, OrtFilesError, OrtRelease, ensure_ort_files, ort_folder
from .web_assets import WebAssets

EMBEDDING_FILE = "embedding.bin"
LOADING = "loading"  # ServerOnly.reason while files are being prepared; the page's other reasons: runtime.js REASONS


class EncodedImage(Protocol):
    """An encoded image (webapp.image_session.ImageEmbedding has these)."""

    @property
    def features(self) -> torch.Tensor: ...  # (1, 256, 64, 64)

    @property
    def original_size(self) -> tuple[int, int]: ...

    @property
    def input_size(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class PageDecoder:
    """What the page needs for one image (URLs on this server; `dataclasses.asdict` gives the page's JSON): the
    embedding file's link, the header that names the page's session when it fetches it, and the folders of the
    decoder files, of onnxruntime-web and of our ES modules."""

    embedding_url: str
    decoder_base: str
    ort_url: str
    modules_url: str
    session_header: str = SESSION_HEADER


@dataclass(frozen=True)
class ServerOnly:
    """Why the page cannot decode an image (it uses the server round trip): reason is LOADING (files on their way:
    publish again later) or a key of the page's REASONS (webapp/browser/runtime.js); message says it in words."""

    reason: str
    message: str


class BrowserDecoding:
    """onnxruntime-web's files, the decoder files under decoder_dir, the sessions' embedding links, their routes.

    max_decoders bounds the decoder files kept (`DecoderCache.max_entries`); session_key maps the session a page
    names (its Gradio session hash) to the session ids given to `publish` (`EmbeddingLinks`)."""

    def __init__(
        self,
        decoder_dir: str | Path,
        static_dir: str | Path = STATIC_DIR,
        settings: DecoderSettings | None = None,
        release: OrtRelease | None = None,
        max_decoders: int | None = None,
        session_key: Callable[[str], str] = lambda session: session,
    ) -> None:
        self.release = release or OrtRelease.from_lockfile()
        self.static_dir = Path(static_dir)
        decoders = DecoderCache(decoder_dir, settings, max_decoders)
        self.assets = WebAssets(ort_folder(self.static_dir, self.release), self.release.version, decoders)
        self.links = EmbeddingLinks(session_key=session_key)
        self.error: str | None = None  # why onnxruntime-web's files are missing, once known
        self._ready = threading.Event()
        self._model_keys: weakref.WeakKeyDictionary[Sam, str] = weakref.WeakKeyDictionary()
        self._exports: dict[str, threading.Thread] = {}
        self._failed_exports: set[str] = set()
        self._lock = threading.Lock()

    def start(self, warm: Callable[[], object] | None = None, **ensure_options) -> threading.Thread:
        """In a background thread: put onnxruntime-web's files in place (`ensure_ort_files` options), then export
        the decoder of the model warm() returns (the model most visitors will use), so that no visitor waits."""

        def ensure() -> None:
            try:
                ensure_ort_files(self.static_dir, release=self.release, **ensure_options)
                self._ready.set()
            except OrtFilesError as error:
                self.error = str(error)
                print(f"In-browser decoder: {error}", file=sys.stderr, flush=True)
                return
            if warm is None:
                return
            try:
                sam = warm()
                if isinstance(sam, Sam):
                    self.assets.decoders.decoder(sam, self._weights_key(sam))
            except Exception as error:  # a model that cannot load or export now: visitors' images retry it
                print(f"In-browser decoder: no decoder prepared at start ({error})", file=sys.stderr, flush=True)

        thread = threading.Thread(target=ensure, name="onnxruntime-web files", daemon=True)
        thread.start()
        return thread

    @property
    def ready(self) -> bool:
        """True once onnxruntime-web's files are in place."""
        return self._ready.is_set()

    def routes(self) -> list:
        """The asset routes and the embedding links' route."""
        return [*self.assets.routes(), self.links.route()]

    def prepare(self, sam: object) -> DecoderFile | ServerOnly:
        """The decoder file of sam when it is exported; else start its export in the background (once) and return
        ServerOnly(LOADING), or why it has none. Never waits for an export."""
        if not isinstance(sam, Sam):
            return ServerOnly("unsupported-model", f"{type(sam).__name__} is not a SAM-family model")
        key = self._weights_key(sam)
        found = self.assets.decoders.lookup(key)
        if found is not None:
            return found
        with self._lock:
            if key in self._failed_exports:
                return ServerOnly("unsupported-model", "its decoder could not be exported for the page")
            if key not in self._exports or not self._exports[key].is_alive():
                thread = threading.Thread(target=self._export, args=(sam, key), name="decoder export", daemon=True)
                self._exports[key] = thread
                thread.start()
        return ServerOnly(LOADING, "the in-browser decoder is being prepared")

    def publish(
        self, session_id: str, folder: str | Path, sam: object, model: str, image: EncodedImage
    ) -> PageDecoder | ServerOnly:
        """Expire the session's previous link; then write the image's embedding file into folder (a session folder:
        deleted with the session, counted in its disk cap) and return what the page needs, or say why the page
        must use the server for this image."""
        self.links.revoke(session_id)
        if self.error is not None:  # the details (paths, npm's answer) are in the server's log, not for visitors
            return ServerOnly("load-failed", "onnxruntime-web's files are not available on this server")
        if not self.ready:
            return ServerOnly(LOADING, "onnxruntime-web is being fetched")
        decoder = self.prepare(sam)
        if isinstance(decoder, ServerOnly):
            return decoder
        header = EmbeddingHeader(
            image.original_size, image.input_size, sam.image_size, float(sam.mask_threshold), model, decoder.name
        )
        try:
            path = write_embedding(Path(folder) / EMBEDDING_FILE, image.features.detach().cpu().numpy(), header)
        except ValueError as error:  # an embedding float16 cannot carry
            return ServerOnly("unsupported-model", str(error))
        return PageDecoder(
            embedding_url=self.links.publish(session_id, path),
            decoder_base=self.assets.decoder_url(""),
            ort_url=self.assets.ort_url,
            modules_url=self.assets.module_url(""),
        )

    def forget(self, session_id: str) -> None:
        """The session ended (its files are deleted by its owner): its link stops working."""
        self.links.revoke(session_id)

    def _export(self, sam: Sam, key: str) -> None:
        try:
            self.assets.decoders.decoder(sam, key)
        except Exception as error:  # the exporter's errors vary; the page then uses the server for this model
            print(f"In-browser decoder: the decoder could not be exported ({error})", file=sys.stderr, flush=True)
            with self._lock:
                self._failed_exports.add(key)

    def _weights_key(self, sam: Sam) -> str:
        with self._lock:
            key = self._model_keys.get(sam)
        if key is None:
            key = weights_sha256(sam)
            with self._lock:
                self._model_keys[sam] = key
        return key
