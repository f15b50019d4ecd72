"""Interactive segmentation on a stored embedding, and the shared model store (random-weight vit_t)."""

import threading

import numpy as np
import pytest
import torch

from mobile_sam import SamPredictor
from samkit.prompts import Prompts
from webapp.image_session import embed_image, segment
from webapp.model_store import ModelStore


@pytest.fixture(scope="module")
def store() -> ModelStore:
    return ModelStore("cpu", checkpoint_dir=None, download=False)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def direct(store, image) -> SamPredictor:
    predictor = SamPredictor(store.model("vit_t", random_weights=True))
    predictor.set_image(image)
    return predictor


def test_segment_on_a_stored_embedding_equals_the_predictor(store, image, direct):
    embedding, _ = store.embedding("vit_t", True, image)
    prompts = Prompts.from_lists([[20, 30], [40, 10]], [1, 0])
    result = segment(embedding, prompts, multimask_output=True)
    masks, scores, logits = direct.predict(
        point_coords=prompts.points, point_labels=prompts.labels, multimask_output=True
    )
    assert result.candidates and result.masks.shape == (3, 48, 64)
    np.testing.assert_array_equal(result.masks, masks)
    np.testing.assert_allclose(result.scores, scores, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.low_res_logits, logits, rtol=0, atol=1e-5)


def test_several_boxes_give_one_mask_per_box_with_the_points_inside_each(store, image, direct):
    embedding, _ = store.embedding("vit_t", True, image)
    prompts = Prompts.from_lists([[10, 10]], [1], [[2, 2, 30, 30], [35, 5, 60, 40]])
    result = segment(embedding, prompts)
    assert not result.candidates and result.masks.shape == (2, 48, 64)
    first, _, _ = direct.predict(
        point_coords=np.array([[10, 10]]), point_labels=np.array([1]), box=prompts.boxes[0], multimask_output=False
    )
    second, _, _ = direct.predict(box=prompts.boxes[1], multimask_output=False)
    np.testing.assert_array_equal(result.masks[0], first[0])
    np.testing.assert_array_equal(result.masks[1], second[0])


def test_segment_validates_prompts_against_the_image(store, image):
    embedding, _ = store.embedding("vit_t", True, image)
    with pytest.raises(ValueError, match="zero area"):
        segment(embedding, Prompts.from_lists(boxes=[[3, 3, 3, 20]]))


def test_the_store_encodes_an_image_once_per_model(store, image):
    store.embedding("vit_t", True, image)
    again, cached = store.embedding("vit_t", True, image.copy())
    assert cached
    assert again.original_size == (48, 64)


def test_every_thread_gets_the_same_model_object(store):
    models = []
    threads = [threading.Thread(target=lambda: models.append(store.model("vit_t", True))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(model is models[0] for model in models)


def test_random_weight_models_are_reproducible_across_stores(store):
    other = ModelStore("cpu").model("vit_t", True)
    ours = store.model("vit_t", True)
    first = next(iter(ours.state_dict().values()))
    assert torch.equal(first, next(iter(other.state_dict().values())))


def test_missing_weights_are_reported_with_file_url_and_folder(tmp_path):
    status = ModelStore("cpu", checkpoint_dir=tmp_path, download=False).status("vit_t")
    assert status.state == "missing"
    assert "mobile_sam.pt" in status.detail and "https://" in status.detail and str(tmp_path) in status.detail


def test_loading_missing_weights_without_download_raises_a_checkpoint_error(tmp_path):
    from samkit.checkpoints import CheckpointError

    store = ModelStore("cpu", checkpoint_dir=tmp_path, download=False)
    with pytest.raises(CheckpointError, match="mobile_sam.pt"):
        store.model("vit_t")
    assert store.status("vit_t").state == "failed"


def test_embed_image_reports_the_sizes(store, image):
    embedding = embed_image(store.model("vit_t", True), image)
    assert embedding.features.shape == (1, 256, 64, 64)
    assert embedding.original_size == (48, 64) and embedding.input_size == (768, 1024)


def test_threads_decoding_on_one_shared_embedding_get_their_own_masks(store, image, direct):
    embedding, _ = store.embedding("vit_t", True, image)
    points = [[5 + 7 * i, 4 + 5 * i] for i in range(6)]
    results = {}

    def run(index):
        results[index] = segment(embedding, Prompts.from_lists([points[index]], [1]))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, point in enumerate(points):
        masks, _, _ = direct.predict(point_coords=np.array([point], float), point_labels=np.array([1]))
        np.testing.assert_array_equal(results[index].masks, masks)


def test_status_reports_download_progress_while_a_checkpoint_downloads(tmp_path, monkeypatch):
    import samkit.loading
    from samkit.checkpoints import CheckpointDownloadError

    store = ModelStore("cpu", checkpoint_dir=tmp_path, download=True)
    seen = []

    def fake_resolve(info, path=None, cache_dir=None, download=True, progress=None):
        progress(25_000_000, 100_000_000)
        seen.append(store.status(info.name))
        raise CheckpointDownloadError("no connection")

    monkeypatch.setattr(samkit.loading, "resolve_checkpoint", fake_resolve)
    with pytest.raises(CheckpointDownloadError):
        store.model("vit_t")
    assert (
        seen[0].state == "downloading" and seen[0].progress == pytest.approx(0.25) and "25 of 100 MB" in seen[0].detail
    )
    assert store.status("vit_t").state == "failed"
