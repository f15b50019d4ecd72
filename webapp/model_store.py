"""
Lazily loaded, shared, read-only models for a server, with a per-model status.

A `ModelStore` builds each model on first use (one load even when several threads ask at once),
keeps it for every later caller, and reports for each model whether its weights are loaded,
being downloaded (with progress), available on disk, or missing (with the file, URL and folder).
It also owns the embedding cache, so an image is encoded once per model for all users. At most
`max_models` models (pretrained, random-weight and `shared` ones together) stay loaded; the least
recently used one is dropped first. Large SAM checkpoints (ViT-B/L/H) are downloaded only with
`download_large`. Models with random weights (for trying an interface without checkpoints) are built from a
fixed seed, so every caller gets the same random model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from mobile_sam.build_sam import CheckpointError
from mobile_sam.modeling import Sam
from samkit.checkpoints import checkpoint_status
from samkit.loading import load_model
from samkit.models import MODELS, model_info

from .embedding_cache import EmbeddingCache, image_key
from .image_session import ImageEmbedding, embed_image

RANDOM_SEED = 0
T = TypeVar("T")


@dataclass(frozen=True)
class ModelStatus:
    """What a model's weights are doing right now."""

    model_type: str
    state: str  # "loaded", "loading", "downloading", "available", "missing" or "failed"
    detail: str  # a human-readable sentence: path, progress, or what to download where
    progress: float | None = None  # download progress in [0, 1] while downloading


class ModelStore:
    """Thread-safe lazy registry of SAM-family models and their image embeddings."""

    def __init__(
        self,
        device: torch.device | str = "cpu",
        checkpoint_dir: str | Path | None = None,
        download: bool = True,
        embedding_cache_items: int = 8,
        max_models: int = 8,
        download_large: bool = True,
    ) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1, got {max_models}")
        self.device = torch.device(device)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.download = download
        self.download_large = download_large
        self.max_models = max_models
        self.embeddings: EmbeddingCache[ImageEmbedding] = EmbeddingCache(embedding_cache_items)
        self._loaded: OrderedDict[Hashable, object] = OrderedDict()  # ("sam", type, random) or ("shared", key)
        self._lock = threading.Lock()
        self._load_locks: dict[Hashable, threading.Lock] = {}
        self._activity: dict[str, ModelStatus] = {}
        self._errors: dict[str, str] = {}

    def model(self, model_type: str, random_weights: bool = False) -> Sam:
        """
        The model of a catalog name (`samkit.models`: a SAM-family `Sam`, or an ultralytics network for FastSAM
        and the ObjectAwareModel), on the store's device, loaded on first use.

        Raises:
          ValueError: unknown model.
          CheckpointError: the weights are missing and could not be downloaded (the message says
            which file to put where).
        """
        if model_type not in MODELS:
            raise ValueError(f"Unknown model type {model_type!r}; expected one of {', '.join(MODELS)}.")
        return self._get(
            ("model", model_type, bool(random_weights)), lambda: self._build(model_type, bool(random_weights))
        )

    def shared(self, key: Hashable, build: Callable[[], T]) -> T:
        """Any other read-only object (another model family, say) built once by build() and kept."""
        return self._get(("shared", key), build)

    def _get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value for key, built once (concurrent callers wait for one build) and marked recently used."""
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            load_lock = self._load_locks.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                if key in self._loaded:
                    return self._loaded[key]
            value = build()
            with self._lock:
                self._loaded[key] = value
                while len(self._loaded) > self.max_models:  # callers holding an evicted model keep it alive
                    self._loaded.popitem(last=False)
            return value

    def loaded_count(self) -> int:
        """Models (and shared objects) held right now."""
        with self._lock:
            return len(self._loaded)

    def may_download(self, name: str) -> bool:
        """Whether a missing checkpoint may be downloaded (SAM ViT-B/L/H only with download_large)."""
        return self.download and (self.download_large or not model_info(name).is_large)

    def embedding(
        self, model_type: str, random_weights: bool, image: np.ndarray, key: str | None = None
    ) -> tuple[ImageEmbedding, bool]:
        """
        The image embedding of an HxWx3 uint8 image, from the cache or computed once; key is the image's
        `image_key` where the caller keeps it (hashing a large image takes milliseconds on every click).

        Returns:
          (ImageEmbedding): shared, read-only.
          (bool): True if it came from the cache.
        """
        model = self.model(model_type, random_weights)
        cache_key = (key or image_key(image), model_type, bool(random_weights))
        return self.embeddings.get_or_compute(cache_key, lambda: embed_image(model, image))

    def is_loaded(self, model_type: str, random_weights: bool = False) -> bool:
        with self._lock:
            return ("model", model_type, bool(random_weights)) in self._loaded

    def status(self, model_type: str) -> ModelStatus:
        """The status of model_type's pretrained weights (random-weight models do not count)."""
        with self._lock:
            if ("model", model_type, False) in self._loaded:
                return ModelStatus(model_type, "loaded", f"loaded on {self.device}")
            if model_type in self._activity:
                return self._activity[model_type]
            error = self._errors.get(model_type)
        if error is not None:
            return ModelStatus(model_type, "failed", error)
        found = checkpoint_status(model_type, cache_dir=self.checkpoint_dir)
        if found.present:
            return ModelStatus(model_type, "available", f"on disk at {found.path}; loads on first use")
        info = found.info
        return ModelStatus(
            model_type,
            "missing",
            f"{info.filename} is not in {found.path.parent}"
            + (" (it is downloaded on first use)" if self.may_download(model_type) else "")
            + f"; to install it by hand, download {info.url} and save it as {found.path}",
        )

    def _build(self, model_type: str, random_weights: bool) -> torch.nn.Module:
        if random_weights:
            return load_model(model_type, random_weights=True, seed=RANDOM_SEED).to(self.device).eval()
        self._set_activity(model_type, ModelStatus(model_type, "loading", "looking for the checkpoint"))
        try:
            model = load_model(
                model_type,
                checkpoint_dir=self.checkpoint_dir,
                download=self.may_download(model_type),
                progress=lambda done, total: self._set_activity(model_type, _download_status(model_type, done, total)),
            )
            model = model.to(self.device).eval()
        except (CheckpointError, OSError, RuntimeError, ValueError) as error:
            with self._lock:
                self._errors[model_type] = str(error)
            raise
        finally:
            with self._lock:
                self._activity.pop(model_type, None)
        with self._lock:
            self._errors.pop(model_type, None)
        return model

    def _set_activity(self, model_type: str, status: ModelStatus) -> None:
        with self._lock:
            self._activity[model_type] = status


def _download_status(model_type: str, done: int, total: int | None) -> ModelStatus:
    if total:
        fraction = min(1.0, done / total)
        return ModelStatus(
            model_type, "downloading", f"downloading, {done / 1e6:.0f} of {total / 1e6:.0f} MB", fraction
        )
    return ModelStatus(model_type, "downloading", f"downloading, {done / 1e6:.0f} MB so far")
