"""Prompts reach the model as the official `SamPredictor` passes them (points outside the image, label -1,
boxes in any corner order or beyond the image); only inputs that crash the official code or make it
return garbage give clear errors."""

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


def _input_frame(coords: np.ndarray) -> np.ndarray:
    """Original-image pixels -> the 1024 input frame: longest side scaled to 1024, sizes rounded half up."""
    scale = 1024 / max(HEIGHT, WIDTH)
    new_h, new_w = int(HEIGHT * scale + 0.5), int(WIDTH * scale + 0.5)
    return np.asarray(coords, dtype=float) * np.array([new_w / WIDTH, new_h / HEIGHT])


def _official_decode(predictor, coords=None, labels=None, boxes=None, multimask_output=True):
    """The official predict_torch sequence on input-frame prompts: prompt encoder, then mask decoder."""
    model = predictor.model
    points = None
    if coords is not None:
        points = (torch.as_tensor(coords, dtype=torch.float)[None], torch.as_tensor(labels, dtype=torch.int)[None])
    box = None if boxes is None else torch.as_tensor(boxes, dtype=torch.float).reshape(1, 4)
    with torch.no_grad():
        sparse, dense = model.prompt_encoder(points=points, boxes=box, masks=None)
        low_res, scores = model.mask_decoder(
            image_embeddings=predictor.features,
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
        )
    return low_res[0].numpy(), scores[0].numpy()


def _assert_same_decode(predicted, expected):
    np.testing.assert_allclose(predicted[2], expected[0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(predicted[1], expected[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("point", [[WIDTH + 25, 10], [-30, -7.5], [3 * WIDTH, 4 * HEIGHT]])
def test_points_outside_the_image_are_decoded_as_given(predictor, point):
    predicted = predictor.predict(point_coords=np.array([point]), point_labels=np.array([1]))
    _assert_same_decode(predicted, _official_decode(predictor, _input_frame([point]), [1]))
    inside = predictor.predict(point_coords=np.clip([point], 0, [WIDTH - 1, HEIGHT - 1]), point_labels=np.array([1]))
    assert np.abs(predicted[2] - inside[2]).max() > 1e-3  # not silently moved into the image


def test_label_minus_one_is_a_padding_point_whose_position_is_ignored(predictor):
    point = [[20, 12]]
    near = predictor.predict(point_coords=np.array(point + [[5, 5]]), point_labels=np.array([1, -1]))
    far = predictor.predict(point_coords=np.array(point + [[-500, 900]]), point_labels=np.array([1, -1]))
    _assert_same_decode(near, _official_decode(predictor, _input_frame(point + [[5, 5]]), [1, -1]))
    np.testing.assert_array_equal(near[2], far[2])


@pytest.mark.parametrize(
    "box",
    [
        [40, 30, 5, 6],
        [40, 6, 5, 30],
        [5, 6, WIDTH + 100, HEIGHT + 100],
        [-20, -10, 30, 20],
        [WIDTH + 1, 0, WIDTH + 9, 20],
    ],
)
def test_boxes_in_any_corner_order_or_beyond_the_image_are_decoded_as_given(predictor, box):
    predicted = predictor.predict(box=np.array(box, dtype=float), multimask_output=False)
    expected = _official_decode(predictor, boxes=_input_frame(np.reshape(box, (2, 2))), multimask_output=False)
    _assert_same_decode(predicted, expected)


def test_a_box_is_not_reordered(predictor):
    ordered = predictor.predict(box=np.array([5, 6, 40, 30]), multimask_output=False)
    reversed_corners = predictor.predict(box=np.array([40, 30, 5, 6]), multimask_output=False)
    assert np.abs(ordered[2] - reversed_corners[2]).max() > 1e-3


def test_no_prompt_decodes_the_model_output_without_prompts(predictor):
    predicted = predictor.predict()
    assert predicted[0].shape == (3, HEIGHT, WIDTH)
    _assert_same_decode(predicted, _official_decode(predictor))
    masks, scores, low_res = predictor.predict_torch(None, None)
    np.testing.assert_array_equal(low_res[0].numpy(), predicted[2])


@pytest.mark.parametrize(
    ("coords", "labels", "message"),
    [
        ([[10, 10]], None, "together"),
        (None, [1], "together"),
        ([[10, 10], [20, 20]], [1], "shape"),
        ([[10, 10]], [2], r"1 \(foreground\), 0 \(background\) or -1"),
        ([[10, 10]], [0.5], "-1 \\(padding\\)"),
        ([[np.nan, 10]], [1], "NaN"),
        ([[10, np.inf]], [1], "NaN or infinite"),
        ([[10, 10, 10]], [1], r"\(N, 2\)"),
    ],
)
def test_bad_points_raise(predictor, coords, labels, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict(
            point_coords=None if coords is None else np.array(coords, dtype=float),
            point_labels=None if labels is None else np.array(labels),
        )


@pytest.mark.parametrize(
    ("box", "message"), [([1, 2, 3], "shape"), ([[1, 2, 3, 4]] * 2, "shape"), ([1, 2, np.nan, 4], "NaN")]
)
def test_bad_boxes_raise(predictor, box, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict(box=np.array(box, dtype=float))


def test_predict_torch_takes_boxes_with_or_without_the_middle_axis(predictor):
    boxes = torch.tensor([[5.0, 6.0, 400.0, 300.0], [900.0, 700.0, -40.0, 20.0]])
    flat = predictor.predict_torch(None, None, boxes=boxes)
    nested = predictor.predict_torch(None, None, boxes=boxes[:, None, :])
    torch.testing.assert_close(flat[2], nested[2], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"point_labels": torch.tensor([[1, 3]])}, "-1 \\(padding\\)"),
        ({"boxes": torch.tensor([[0.0, 0.0, np.inf, 5.0]])}, "NaN"),
        ({"mask_input": torch.full((1, 1, 256, 256), np.nan)}, "NaN"),
        ({"mask_input": torch.zeros(1, 256, 256)}, "256, 256"),
    ],
)
def test_predict_torch_rejects_garbage(predictor, kwargs, message):
    args = {"point_coords": torch.zeros(1, 2, 2), "point_labels": torch.ones(1, 2, dtype=torch.int)} | kwargs
    with pytest.raises(ValueError, match=message):
        predictor.predict_torch(args.pop("point_coords"), args.pop("point_labels"), **args)


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
    monkeypatch.setattr("mobile_sam.utils.mask_resize.PLANE_GROUP", 7)
    boxes = torch.tensor([[0.0, 0.0, 500.0, 400.0]]).repeat(40, 1) + torch.arange(40.0)[:, None]
    masks, _, _ = predictor.predict_torch(None, None, boxes=boxes, multimask_output=True)
    logits, _, _ = predictor.predict_torch(None, None, boxes=boxes, multimask_output=True, return_logits=True)
    assert masks.dtype == torch.bool and masks.shape == (40, 3, HEIGHT, WIDTH)
    assert torch.equal(masks, logits > 0.0)
