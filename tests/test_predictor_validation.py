"""Bad prompts and images give clear errors; documented prompt conventions hold."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mobile_sam import SamPredictor, sam_model_registry
from mobile_sam.predictor import ImageNotSetError

HEIGHT, WIDTH = 48, 64


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return sam_model_registry["vit_t"]()


@pytest.fixture(scope="module")
def predictor(model):
    predictor = SamPredictor(model)
    rng = np.random.default_rng(0)
    predictor.set_image(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    return predictor


def test_predict_before_set_image_raises(model):
    with pytest.raises(ImageNotSetError, match="set_image"):
        SamPredictor(model).predict(point_coords=np.array([[1, 1]]), point_labels=np.array([1]))


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        ([[1, 2, 3]], TypeError, "numpy array"),
        (np.zeros((8, 8), np.uint8), ValueError, "to_rgb_uint8"),
        (np.zeros((8, 8, 4), np.uint8), ValueError, r"\(H, W, 3\)"),
        (np.zeros((8, 8, 3), np.uint16), TypeError, "uint8"),
        (np.zeros((0, 8, 3), np.uint8), ValueError, "empty"),
    ],
)
def test_set_image_rejects_bad_images(model, image, error, message):
    with pytest.raises(error, match=message):
        SamPredictor(model).set_image(image)


def test_set_image_rejects_unknown_format(model):
    with pytest.raises(ValueError, match="image_format"):
        SamPredictor(model).set_image(np.zeros((8, 8, 3), np.uint8), image_format="HSV")


def test_no_prompt_raises(predictor):
    with pytest.raises(ValueError, match="no prompt"):
        predictor.predict()


@pytest.mark.parametrize(
    ("coords", "labels", "message"),
    [
        ([[10, 10]], None, "together"),
        ([[10, 10], [20, 20]], [1], "shape"),
        ([[10, 10]], [2], "1 \\(foreground\\) or 0"),
        ([[np.nan, 10]], [1], "NaN"),
        ([[10, 10, 10]], [1], r"\(N, 2\)"),
        ([[WIDTH + 5, 10]], [1], "outside"),
        ([[10, -1]], [1], "outside"),
    ],
)
def test_bad_points_raise(predictor, coords, labels, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict(
            point_coords=np.array(coords, dtype=float), point_labels=None if labels is None else np.array(labels)
        )


def test_point_on_the_far_edge_is_accepted(predictor):
    masks, _, _ = predictor.predict(point_coords=np.array([[WIDTH, HEIGHT]]), point_labels=np.array([1]))
    assert masks.shape == (3, HEIGHT, WIDTH)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([1, 2, 3], "shape"),
        ([1, 2, np.nan, 4], "NaN"),
        ([10, 10, 10, 30], "zero area"),
        ([WIDTH + 1, 0, WIDTH + 9, 20], "zero area"),
    ],
)
def test_bad_boxes_raise(predictor, box, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict(box=np.array(box, dtype=float))


def test_inverted_box_gives_the_same_result_as_the_normalised_box(predictor):
    normal = predictor.predict(box=np.array([5, 6, 40, 30]), multimask_output=False)
    inverted = predictor.predict(box=np.array([40, 30, 5, 6]), multimask_output=False)
    np.testing.assert_array_equal(normal[2], inverted[2])


def test_box_beyond_the_image_is_clipped(predictor):
    clipped = predictor.predict(box=np.array([5, 6, WIDTH, HEIGHT]), multimask_output=False)
    beyond = predictor.predict(box=np.array([5, 6, WIDTH + 100, HEIGHT + 100]), multimask_output=False)
    np.testing.assert_array_equal(clipped[2], beyond[2])


def test_mask_input_of_wrong_shape_raises(predictor):
    with pytest.raises(ValueError, match=r"\(1, 256, 256\)"):
        predictor.predict(point_coords=np.array([[3, 3]]), point_labels=np.array([1]), mask_input=np.zeros((256, 256)))


def test_outputs_have_documented_shapes_and_types(predictor):
    masks, scores, low_res = predictor.predict(point_coords=np.array([[3, 3]]), point_labels=np.array([1]))
    assert masks.shape == (3, HEIGHT, WIDTH) and masks.dtype == bool
    assert scores.shape == (3,) and low_res.shape == (3, 256, 256)
    logits, _, _ = predictor.predict(point_coords=np.array([[3, 3]]), point_labels=np.array([1]), return_logits=True)
    np.testing.assert_array_equal(logits > 0.0, masks)


def test_bgr_input_equals_rgb_input_reversed(model):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    rgb, bgr = SamPredictor(model), SamPredictor(model)
    rgb.set_image(image)
    bgr.set_image(np.ascontiguousarray(image[..., ::-1]), image_format="BGR")
    torch.testing.assert_close(rgb.get_image_embedding(), bgr.get_image_embedding(), rtol=0, atol=0)


def test_predict_torch_rejects_disagreeing_batches(predictor):
    with pytest.raises(ValueError, match="disagree"):
        predictor.predict_torch(
            torch.zeros(2, 1, 2), torch.ones(2, 1, dtype=torch.int), boxes=torch.tensor([[0.0, 0.0, 5.0, 5.0]])
        )


def test_reset_image_forgets_the_embedding(model):
    predictor = SamPredictor(model)
    predictor.set_image(np.zeros((8, 8, 3), np.uint8))
    predictor.reset_image()
    assert not predictor.is_image_set
    with pytest.raises(ImageNotSetError):
        predictor.get_image_embedding()


def test_postprocess_equals_full_upsample_then_crop(model):
    import torch.nn.functional as F

    low_res = torch.randn(2, 3, 256, 256)
    for input_size, original_size in [((576, 1024), (603, 1072)), ((1024, 683), (1200, 800)), ((1, 1024), (1, 1500))]:
        full = F.interpolate(low_res, (1024, 1024), mode="bilinear", align_corners=False)
        expected = F.interpolate(
            full[..., : input_size[0], : input_size[1]], original_size, mode="bilinear", align_corners=False
        )
        assert torch.equal(model.postprocess_masks(low_res, input_size, original_size), expected)


def test_large_batches_are_thresholded_like_the_logits(predictor, monkeypatch):
    monkeypatch.setattr("mobile_sam.predictor.POSTPROCESS_CHUNK_BYTES", 4 * 3 * HEIGHT * WIDTH * 7)  # chunks of 7
    boxes = torch.tensor([[0.0, 0.0, 500.0, 400.0]]).repeat(40, 1) + torch.arange(40.0)[:, None]
    masks, _, _ = predictor.predict_torch(None, None, boxes=boxes, multimask_output=True)
    logits, _, _ = predictor.predict_torch(None, None, boxes=boxes, multimask_output=True, return_logits=True)
    assert masks.dtype == torch.bool and masks.shape == (40, 3, HEIGHT, WIDTH)
    assert torch.equal(masks, logits > 0.0)
