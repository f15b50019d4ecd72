"""
A bounded, thread-safe LRU cache for image embeddings, keyed by image content and model.

Encoding an image is the expensive step of interactive segmentation (about a second for
MobileSAM on a CPU); every later click only runs the prompt encoder and mask decoder. The
cache lets every user of a server share embeddings read-only: a value is computed once per
key, even when several threads ask for the same key at the same time.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import numpy as np

V = TypeVar("V")


def image_key(image: np.ndarray) -> str:
    """A content hash of an image array (shape, dtype and pixels): equal images give equal keys."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"Expected a numpy array, got {type(image).__name__}.")
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.shape}|{image.dtype.str}|".encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


class EmbeddingCache(Generic[V]):
    """
    Least-recently-used cache holding at most max_items values.

    Values are shared between callers and must be treated as read-only.
    """

    def __init__(self, max_items: int = 8) -> None:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise ValueError(f"max_items must be a positive integer, got {max_items!r}.")
        self.max_items = max_items
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable) -> V | None:
        """The cached value for key (marked as recently used), or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> tuple[V, bool]:
        """
        The value for key, computing and storing it with compute() when absent.

        Concurrent callers with the same key wait for a single computation.
        An exception raised by compute() propagates and nothing is stored.

        Returns:
          (V): the value.
          (bool): True if the value came from the cache, False if this call computed it.
        """
        value = self.get(key)
        if value is not None:
            return value, True
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        try:
            with key_lock:
                value = self.get(key)
                if value is not None:
                    return value, True
                value = compute()
                self._put(key, value)
                return value, False
        finally:
            with self._lock:
                if not key_lock.locked():
                    self._key_locks.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def _put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
