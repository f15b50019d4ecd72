"""distill embed: the store holds the predictor's embeddings (fp16), resumes, lists unreadable images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.distill_support import make_store, save_teacher, write_images

from distill.embed import embed_folder
from distill.models import TEST_TEACHER, build_model
from distill.store import EmbeddingStore, StoreError
from mobile_sam import SamPredictor
from samkit.images import load_image


@pytest.fixture(scope="module")
def store_setup(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("embed"), count=5)


def test_stored_embedding_equals_predictor_embedding_within_fp16(store_setup):
    images, teacher_path, store_dir = store_setup
    store = EmbeddingStore(store_dir)
    predictor = SamPredictor(build_model(TEST_TEACHER, teacher_path))
    assert len(store) == 5
    for i in range(len(store)):
        image = load_image(store.image_path(i))
        predictor.set_image(image)
        expected = predictor.get_image_embedding()[0].numpy()
        stored = store.embedding(i)
        assert stored.dtype == np.float16 and stored.shape == expected.shape == (256, 4, 4)
        np.testing.assert_allclose(stored.astype(np.float32), expected, rtol=1e-3, atol=2e-3)
        assert tuple(store.index.images[i].original_size) == image.shape[:2]


def test_store_is_sharded_memory_mapped_and_indexed(store_setup):
    _, teacher_path, store_dir = store_setup
    index = json.loads((store_dir / "index.json").read_text())
    assert index["teacher"] == TEST_TEACHER
    import hashlib

    assert index["checkpoint_sha256"] == hashlib.sha256(teacher_path.read_bytes()).hexdigest()
    assert [r["shard"] for r in index["images"]] == [0, 0, 0, 1, 1]  # shard size 3
    shard = np.load(store_dir / index["shards"][0], mmap_mode="r")
    assert isinstance(shard, np.memmap) and shard.shape == (3, 256, 4, 4)
    assert not list(store_dir.glob("*.tmp"))


def test_unreadable_image_is_listed_and_skipped(tmp_path):
    images = tmp_path / "images"
    write_images(images, 2)
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (images / "notes.json").write_text("{}")  # not an image (SA-1B annotations sit beside the photos)
    teacher = save_teacher(tmp_path / "teacher.pt")
    summary = embed_folder(images, tmp_path / "store", TEST_TEACHER, teacher, "cpu", show_progress=False)
    assert (summary.embedded, summary.failed, summary.total) == (2, 1, 3)
    index = json.loads((tmp_path / "store" / "index.json").read_text())
    assert [f["path"] for f in index["failures"]] == ["broken.jpg"]
    assert index["failures"][0]["error"]
    assert sorted(r["path"] for r in index["images"]) == ["img_00.png", "img_01.png"]


def test_resume_embeds_only_missing_images_and_matches_one_run(tmp_path, store_setup):
    images, teacher_path, store_dir = store_setup
    resumed = tmp_path / "store"
    first = embed_folder(images, resumed, TEST_TEACHER, teacher_path, "cpu", shard_size=2, limit=3, show_progress=False)
    second = embed_folder(images, resumed, TEST_TEACHER, teacher_path, "cpu", shard_size=2, show_progress=False)
    third = embed_folder(images, resumed, TEST_TEACHER, teacher_path, "cpu", shard_size=2, show_progress=False)
    assert (first.embedded, second.embedded, second.skipped, third.embedded, third.skipped) == (3, 2, 3, 0, 5)
    a, b = EmbeddingStore(store_dir), EmbeddingStore(resumed)
    by_path = {r.path: i for i, r in enumerate(b.index.images)}
    for i, record in enumerate(a.index.images):
        np.testing.assert_array_equal(a.embedding(i), b.embedding(by_path[record.path]))


def test_resuming_with_another_teacher_checkpoint_is_refused(tmp_path, store_setup):
    images, _, store_dir = store_setup
    other = save_teacher(tmp_path / "other.pt", seed=1)
    copy = tmp_path / "store"
    copy.mkdir()
    (copy / "index.json").write_bytes((store_dir / "index.json").read_bytes())
    with pytest.raises(StoreError, match="checkpoint_sha256"):
        embed_folder(images, copy, TEST_TEACHER, other, "cpu", show_progress=False)


def test_ray_engine_stores_the_same_embeddings(tmp_path, store_setup):
    images, teacher_path, store_dir = store_setup
    (tmp_path / "images").mkdir()
    for path in sorted(images.iterdir()):
        (tmp_path / "images" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "images" / "broken.png").write_bytes(b"nope")
    summary = embed_folder(
        tmp_path / "images",
        tmp_path / "store",
        TEST_TEACHER,
        teacher_path,
        "cpu",
        batch_size=2,
        engine="ray",
        workers=1,
        show_progress=False,
    )
    assert (summary.embedded, summary.failed) == (5, 1)
    local, ray_store = EmbeddingStore(store_dir), EmbeddingStore(tmp_path / "store")
    by_path = {r.path: i for i, r in enumerate(ray_store.index.images)}
    for i, record in enumerate(local.index.images):
        j = by_path[record.path]
        assert ray_store.index.images[j].original_size == record.original_size
        np.testing.assert_allclose(
            ray_store.embedding(j).astype(np.float32), local.embedding(i).astype(np.float32), rtol=1e-3, atol=2e-3
        )
    assert [f["path"] for f in ray_store.index.failures] == ["broken.png"]
