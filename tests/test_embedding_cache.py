"""The embedding cache: content-keyed, bounded LRU, one computation per key under concurrency."""

import threading
import time

import numpy as np
import pytest

from webapp.embedding_cache import EmbeddingCache, image_key


def test_image_key_is_equal_for_equal_images_and_differs_for_one_changed_pixel():
    image = np.zeros((8, 8, 3), np.uint8)
    changed = image.copy()
    changed[3, 4, 1] = 1
    assert image_key(image) == image_key(image.copy())
    assert image_key(image) != image_key(changed)


def test_image_key_distinguishes_shapes_with_the_same_bytes():
    data = np.zeros(48, np.uint8)
    assert image_key(data.reshape(4, 4, 3)) != image_key(data.reshape(2, 8, 3))


def test_get_or_compute_computes_once_then_serves_from_the_cache():
    cache = EmbeddingCache(2)
    calls = []
    first = cache.get_or_compute("a", lambda: calls.append(1) or "value")
    second = cache.get_or_compute("a", lambda: calls.append(1) or "other")
    assert first == ("value", False) and second == ("value", True) and len(calls) == 1


def test_the_least_recently_used_entry_is_evicted():
    cache = EmbeddingCache(2)
    cache.get_or_compute("a", lambda: 1)
    cache.get_or_compute("b", lambda: 2)
    cache.get("a")  # a is now more recent than b
    cache.get_or_compute("c", lambda: 3)
    assert "a" in cache and "c" in cache and "b" not in cache and len(cache) == 2


def test_concurrent_requests_for_one_key_share_a_single_computation():
    cache = EmbeddingCache(4)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return "embedding"

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_compute("k", slow)[0])) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["embedding"] * 6 and len(calls) == 1


def test_a_failed_computation_stores_nothing():
    cache = EmbeddingCache(2)
    with pytest.raises(RuntimeError):
        cache.get_or_compute("k", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert "k" not in cache


def test_max_items_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        EmbeddingCache(0)
