"""Masks moved from a working copy to the uploaded image's size (`samkit.rescaling`), against PIL and OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from mobile_sam.utils.cancel import Cancelled
from mobile_sam.utils.rle import mask_to_rle, rle_to_mask
from samkit.rescaling import nearest_indices, rescale_records, resize_mask


def random_masks(size: tuple[int, int], count: int, seed: int) -> list[np.ndarray]:
    """Blobs: thresholded smooth noise, so masks have edges in every direction."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(count):
        coarse = rng.random((5, 7)).astype(np.float32)
        smooth = cv2.resize(coarse, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        masks.append(smooth > np.quantile(smooth, rng.uniform(0.5, 0.95)))
    return masks


def edge_ties(source: int, target: int) -> np.ndarray:
    """(target,) bool: target pixels whose centre, (i + 0.5) * source / target, lies exactly on a pixel edge."""
    return (2 * np.arange(target) + 1) * source % (2 * target) == 0


@pytest.mark.parametrize(
    ("source", "target"),
    [((68, 102), (120, 180)), ((91, 128), (300, 420)), ((50, 70), (33, 47)), ((683, 1024), (1200, 1800))],
)
def test_resize_mask_is_pil_and_opencv_nearest_away_from_edge_ties(source, target):
    keep = ~edge_ties(source[0], target[0])[:, None] & ~edge_ties(source[1], target[1])[None, :]
    for mask in random_masks(source, 3, seed=sum(source)):
        pil = np.array(Image.fromarray(mask.astype(np.uint8)).resize(target[::-1], Image.NEAREST)) > 0
        opencv = cv2.resize(mask.astype(np.uint8), target[::-1], interpolation=cv2.INTER_NEAREST_EXACT) > 0
        ours = resize_mask(mask, target)
        np.testing.assert_array_equal(ours[keep], pil[keep])
        np.testing.assert_array_equal(ours[keep], opencv[keep])
        assert (ours & pil).sum() / (ours | pil).sum() > 0.99  # ties included


def test_a_centre_on_a_pixel_edge_belongs_to_the_second_pixel():
    assert nearest_indices(2, 1).tolist() == [1]  # centre 1.0: pixel [1, 2)
    assert nearest_indices(68, 150)[37] == 17  # centre 37.5 * 68 / 150 = 17.0
    assert nearest_indices(3, 3).tolist() == [0, 1, 2] and nearest_indices(2, 4).tolist() == [0, 0, 1, 1]


def test_records_get_the_resized_masks_with_their_area_box_and_scaled_coordinates():
    source, target = (68, 102), (150, 225)
    masks = random_masks(source, 5, seed=3)
    records = [
        {
            "segmentation": mask_to_rle(mask),
            "area": int(mask.sum()),
            "bbox": [0, 0, 0, 0],
            "predicted_iou": 0.5 + i / 10,
            "stability_score": 0.9,
            "point_coords": [[10.0 + i, 20.0]],
            "crop_box": [0, 0, 102, 68],
            "box": [1.0, 2.0, 50.0, 60.0],
        }
        for i, mask in enumerate(masks)
    ]
    out = rescale_records(records, source, target)
    sx, sy = 225 / 102, 150 / 68
    for mask, record, rescaled in zip(masks, records, out):
        decoded = rle_to_mask(rescaled["segmentation"])
        pil = np.array(Image.fromarray(mask.astype(np.uint8)).resize((225, 150), Image.NEAREST)) > 0
        keep = ~edge_ties(68, 150)[:, None] & ~edge_ties(102, 225)[None, :]
        np.testing.assert_array_equal(decoded[keep], pil[keep])
        assert rescaled["area"] == int(decoded.sum())  # area and bbox: those of the mask given
        rows, columns = np.flatnonzero(decoded.any(axis=1)), np.flatnonzero(decoded.any(axis=0))
        assert rescaled["bbox"] == [columns[0], rows[0], columns[-1] - columns[0], rows[-1] - rows[0]]
        np.testing.assert_allclose(rescaled["point_coords"], [[record["point_coords"][0][0] * sx, 20.0 * sy]])
        assert rescaled["box"] == pytest.approx([1.0 * sx, 2.0 * sy, 50.0 * sx, 60.0 * sy])
        assert rescaled["crop_box"] == [0, 0, 225, 150]
        assert (rescaled["predicted_iou"], rescaled["stability_score"]) == (record["predicted_iou"], 0.9)
    assert records[0]["area"] == int(masks[0].sum())  # the input records are left as they were


def test_the_bbox_follows_the_official_generators_convention():
    import torch

    from mobile_sam.utils.amg import batched_mask_to_box, box_xyxy_to_xywh

    mask = random_masks((40, 60), 1, seed=9)[0]
    (rescaled,) = rescale_records([{"segmentation": mask_to_rle(mask)}], (40, 60), (80, 120))
    official = box_xyxy_to_xywh(batched_mask_to_box(torch.as_tensor(rle_to_mask(rescaled["segmentation"]))[None])[0])
    assert rescaled["bbox"] == official.tolist()


def test_a_mask_of_another_size_is_refused():
    with pytest.raises(ValueError, match="expected \\[40, 60\\]"):
        rescale_records([{"segmentation": mask_to_rle(np.ones((30, 60), bool))}], (40, 60), (80, 120))


def test_a_set_cancel_flag_stops_between_masks():
    class Set:
        def is_set(self) -> bool:
            return True

    with pytest.raises(Cancelled):
        rescale_records([{"segmentation": mask_to_rle(np.ones((4, 6), bool))}], (4, 6), (8, 12), cancel=Set())
