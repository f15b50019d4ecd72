"""The server side of "masks in the browser", for the segment tab to plug in: `BrowserDecoding`.

It owns onnxruntime-web's files (put in place in the background when the app starts), the decoder files
(`DecoderCache`), the visitors' embedding files and their links (`EmbeddingLinks`), and the HTTP routes of all of
them (`routes()`, for `launch(app_kwargs={"routes": ...})`). For each encoded image, `publish` writes the
embedding file into a folder of the visitor's session and returns what the page needs (`PageDecoder`), or None
when the page cannot decode (onnxruntime-web missing, or a model it does not serve): the page then uses the
server round trip. The page side is webapp/browser/controller.js.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from mobile_sam.modeling import Sam

from .decoder_cache import DecoderCache, DecoderSettings, weights_sha256
from .embedding_file import EmbeddingHeader, write_embedding
from .embedding_links import EmbeddingLinks
from .ort_files import STATIC_DIR, OrtFilesError, OrtRelease, ensure_ort_files, ort_folder
from .web_assets import WebAssets

EMBEDDING_FILE = "embedding.bin"


class EncodedImage(Protocol):
    """An encoded image (mobile_sam.session.ImageEmbedding has these)."""

    @property
    def features(self) -> torch.Tensor: ...  # (1, 256, 64, 64)

    @property
    def original_size(self) -> tuple[int, int]: ...

    @property
    def input_size(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class PageDecoder:
    """What the page needs for one image (URLs on this server; `dataclasses.asdict` gives the page's JSON): the
    embedding file's link, and the folders of the decoder files, of onnxruntime-web and of our ES modules."""

    embedding_url: str
    decoder_base: str
    ort_url: str
    modules_url: str


class BrowserDecoding:
    """onnxruntime-web's files, the decoder files under decoder_dir, the sessions' embedding links, their routes."""

    def __init__(
        self,
        decoder_dir: str | Path,
        static_dir: str | Path = STATIC_DIR,
        settings: DecoderSettings | None = None,
        release: OrtRelease | None = None,
    ) -> None:
        self.release = release or OrtRelease.from_lockfile()
        self.static_dir = Path(static_dir)
        self.assets = WebAssets(
            ort_folder(self.static_dir, self.release), self.release.version, DecoderCache(decoder_dir, settings)
        )
        self.links = EmbeddingLinks()
        self.error: str | None = None  # why onnxruntime-web's files are missing, once known
        self._ready = threading.Event()
        self._model_keys: weakref.WeakKeyDictionary[Sam, str] = weakref.WeakKeyDictionary()

    def start(self, **ensure_options) -> threading.Thread:
        """Put onnxruntime-web's files in place in a background thread (`ensure_ort_files` options)."""

        def ensure() -> None:
            try:
                ensure_ort_files(self.static_dir, release=self.release, **ensure_options)
                self._ready.set()
            except OrtFilesError as error:
                self.error = str(error)

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

    def publish(
        self, session_id: str, folder: str | Path, sam: Sam, model: str, image: EncodedImage
    ) -> PageDecoder | None:
        """Write the image's embedding file into folder (a session folder: deleted with the session, counted in
        its disk cap), expire the session's previous link, and return what the page needs; None while
        onnxruntime-web's files are missing (the page then uses the server)."""
        self.links.revoke(session_id)
        if not self.ready:
            return None
        decoder = self.assets.decoders.decoder(sam, self._weights_key(sam))
        header = EmbeddingHeader(
            image.original_size, image.input_size, sam.image_size, float(sam.mask_threshold), model, decoder.name
        )
        path = write_embedding(Path(folder) / EMBEDDING_FILE, image.features.detach().cpu().numpy(), header)
        return PageDecoder(
            embedding_url=self.links.publish(session_id, path),
            decoder_base=self.assets.decoder_url(""),
            ort_url=self.assets.ort_url,
            modules_url=self.assets.module_url(""),
        )

    def forget(self, session_id: str) -> None:
        """The session ended (its files are deleted by its owner): its link stops working."""
        self.links.revoke(session_id)

    def _weights_key(self, sam: Sam) -> str:
        key = self._model_keys.get(sam)
        if key is None:
            key = self._model_keys[sam] = weights_sha256(sam)
        return key
