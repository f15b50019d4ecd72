"""SamAutomaticMaskGenerator: edge cases, output modes, progress, cancellation, and the model path."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from support.reference_generator import ReferenceMaskGenerator
from test_everything_conformance import load_synthetic_decoder

from everything import Cancelled, SamAutomaticMaskGenerator
from mobile_sam.utils.mask_candidates import CandidateMasks
from mobile_sam.utils.transforms import ResizeLongestSide
from samkit.images import to_rgb_uint8


@pytest.fixture(scope="module")
def synthetic(conformance_dir: Path):
    return load_synthetic_decoder(conformance_dir)


def constant_decoder(logit: float, iou: float):
    """A decoder whose every candidate has the same logits and predicted IoU."""

    def decode(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = points.shape[0]
        return torch.full((batch, 3, 256, 256), logit), torch.full((batch, 3), iou)

    return decode


def photo(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def assert_valid_records(records: list[dict], height: int, width: int) -> None:
    for record in records:
        mask = record["segmentation"]
        assert mask.shape == (height, width) and mask.dtype == bool
        assert record["area"] == int(mask.sum()) > 0
        x, y, w, h = record["bbox"]
        ys, xs = np.nonzero(mask)
        assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max(), ys.max())


@pytest.mark.parametrize("crop_n_layers", [0, 1])
def test_no_candidate_above_the_iou_threshold_gives_an_empty_list(crop_n_layers: int) -> None:
    generator = SamAutomaticMaskGenerator(
        None, points_per_side=4, crop_n_layers=crop_n_layers, decode_points=constant_decoder(5.0, 0.1)
    )
    assert generator.generate(photo(60, 80)) == []


@pytest.mark.parametrize("crop_n_layers", [0, 1])
def test_all_background_masks_give_an_empty_list(crop_n_layers: int) -> None:
    generator = SamAutomaticMaskGenerator(
        None, points_per_side=4, crop_n_layers=crop_n_layers, decode_points=constant_decoder(-5.0, 0.99)
    )
    assert generator.generate(photo(60, 80)) == []


@pytest.mark.parametrize("crop_n_layers", [0, 1])
def test_one_pixel_image_gives_one_pixel_masks(crop_n_layers: int) -> None:
    generator = SamAutomaticMaskGenerator(
        None, points_per_side=2, crop_n_layers=crop_n_layers, decode_points=constant_decoder(5.0, 0.99)
    )
    records = generator.generate(photo(1, 1))
    assert len(records) >= 1
    assert_valid_records(records, 1, 1)


@pytest.mark.parametrize("shape", [(3, 700), (700, 3)])
def test_very_thin_images_give_valid_masks(synthetic, shape: tuple[int, int]) -> None:
    generator = SamAutomaticMaskGenerator(
        None,
        points_per_side=8,
        crop_n_layers=1,
        pred_iou_thresh=0.5,
        stability_score_thresh=0.5,
        decode_points=synthetic,
    )
    records = generator.generate(photo(*shape))
    assert len(records) >= 1
    assert_valid_records(records, *shape)


def test_too_thin_image_raises_value_error(synthetic) -> None:
    generator = SamAutomaticMaskGenerator(None, points_per_side=2, decode_points=synthetic)
    with pytest.raises(ValueError, match="too thin"):
        generator.generate(photo(1, 3000))


def test_grayscale_and_pil_images_are_converted_like_to_rgb_uint8(synthetic) -> None:
    gray = np.random.default_rng(1).integers(0, 256, (40, 50), dtype=np.uint8)
    generator = SamAutomaticMaskGenerator(None, points_per_side=4, output_mode="coco_rle", decode_points=synthetic)
    expected = generator.generate(to_rgb_uint8(gray))
    assert len(expected) >= 1
    assert generator.generate(gray) == expected
    assert generator.generate(Image.fromarray(gray)) == expected


def test_points_per_batch_larger_than_the_grid_gives_the_same_records(synthetic) -> None:
    image = photo(120, 160)
    small = SamAutomaticMaskGenerator(
        None, points_per_side=6, points_per_batch=5, output_mode="coco_rle", decode_points=synthetic
    )
    large = SamAutomaticMaskGenerator(
        None, points_per_side=6, points_per_batch=1000, output_mode="coco_rle", decode_points=synthetic
    )
    expected = small.generate(image)
    assert len(expected) >= 1
    assert large.generate(image) == expected


def test_chunk_size_does_not_change_the_records(synthetic) -> None:
    image = photo(120, 160)
    one_mask = SamAutomaticMaskGenerator(
        None, points_per_side=6, output_mode="coco_rle", decode_points=synthetic, chunk_megabytes=0.01
    )
    default = SamAutomaticMaskGenerator(None, points_per_side=6, output_mode="coco_rle", decode_points=synthetic)
    assert one_mask.generate(image) == default.generate(image)


def test_output_modes_encode_the_same_masks(synthetic) -> None:
    image = photo(50, 70)
    by_mode = {
        mode: SamAutomaticMaskGenerator(None, points_per_side=4, output_mode=mode, decode_points=synthetic).generate(
            image
        )
        for mode in ("binary_mask", "uncompressed_rle", "coco_rle")
    }
    assert len(by_mode["coco_rle"]) >= 1
    for binary, uncompressed, coco in zip(*by_mode.values()):
        from_coco = mask_utils.decode(coco["segmentation"]).astype(bool)
        from_uncompressed = mask_utils.decode(mask_utils.frPyObjects(uncompressed["segmentation"], 50, 70)).astype(bool)
        np.testing.assert_array_equal(binary["segmentation"], from_coco)
        np.testing.assert_array_equal(from_uncompressed, from_coco)
        assert sum(uncompressed["segmentation"]["counts"][1::2]) == coco["area"]


def test_upsampling_equals_the_official_postprocess_bit_for_bit(synthetic) -> None:
    reference = ReferenceMaskGenerator(None, decode_points=synthetic)
    low_res = torch.randn(2, 3, 256, 256) * 8
    for crop_size in [(603, 1072), (1200, 1800), (1072, 603), (1, 1), (3, 700), (333, 333), (1500, 1499)]:
        input_size = ResizeLongestSide.get_preprocess_shape(*crop_size, 1024)
        masks = CandidateMasks(
            1024, 256, input_size, [0, 0, crop_size[1], crop_size[0]], crop_size, 0.0, 1.0, 0.0, "torch", 1
        )
        expected = reference._postprocess_masks(low_res, input_size, crop_size).flatten(0, 1)
        assert torch.equal(masks.upsample(low_res.flatten(0, 1)), expected), crop_size


def test_progress_increases_to_one(synthetic) -> None:
    fractions: list[float] = []
    generator = SamAutomaticMaskGenerator(
        None, points_per_side=8, points_per_batch=16, crop_n_layers=1, decode_points=synthetic
    )
    generator.generate(photo(64, 64), progress=fractions.append)
    assert fractions[-1] == 1.0
    assert len(fractions) > 3
    assert all(a <= b for a, b in zip(fractions, fractions[1:]))


def test_setting_cancel_stops_generation(synthetic) -> None:
    cancel = threading.Event()
    calls: list[float] = []

    def progress(fraction: float) -> None:
        calls.append(fraction)
        if fraction > 0:
            cancel.set()

    generator = SamAutomaticMaskGenerator(None, points_per_side=8, points_per_batch=16, decode_points=synthetic)
    with pytest.raises(Cancelled):
        generator.generate(photo(64, 64), progress=progress, cancel=cancel)
    assert max(calls) < 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"points_per_side": 8, "point_grids": [np.zeros((1, 2))]}, "exactly one"),
        ({"points_per_side": None}, "exactly one"),
        ({"output_mode": "polygons"}, "output_mode"),
        ({"points_per_batch": 0}, "points_per_batch"),
        ({"crop_n_layers": 1, "points_per_side": None, "point_grids": [np.zeros((1, 2))]}, "point_grids"),
        ({"upsampling": "nearest"}, "upsampling"),
    ],
)
def test_invalid_arguments_raise_value_error(synthetic, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SamAutomaticMaskGenerator(None, decode_points=synthetic, **kwargs)


def test_a_model_or_decode_points_is_required() -> None:
    with pytest.raises(ValueError, match="model is required"):
        SamAutomaticMaskGenerator(None)


def test_model_path_gives_the_records_of_the_reference_path(conformance_dir: Path) -> None:
    from mobile_sam import sam_model_registry

    model = sam_model_registry["vit_t"](conformance_dir / "mobile_sam_vit_t_seed0.pt")
    image = np.asarray(Image.open(conformance_dir / "dogs.jpg").convert("RGB").resize((268, 151)))
    config = dict(points_per_side=5, pred_iou_thresh=0.0, stability_score_thresh=0.5, output_mode="coco_rle")
    ours = SamAutomaticMaskGenerator(model, **config).generate(image)
    reference = ReferenceMaskGenerator(model, **config).generate(image)
    assert len(ours) == len(reference) >= 1
    for got, expected in zip(ours, reference):
        assert mask_utils.iou([got["segmentation"]], [expected["segmentation"]], [0])[0, 0] >= 0.999
        assert np.abs(np.subtract(got["bbox"], expected["bbox"])).max() <= 1
        assert got["predicted_iou"] == pytest.approx(expected["predicted_iou"], abs=1e-4)
        assert got["stability_score"] == pytest.approx(expected["stability_score"], abs=1e-3)
