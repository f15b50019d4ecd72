"""`mobile_sam.utils.amg` gives the official helpers' results on random inputs.

Each expected value is computed in this file from the official definition (written out independently,
in plain numpy / Python), never by the code under test.
"""

from __future__ import annotations

import math
from collections import deque
from itertools import groupby

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torchvision.ops import batched_nms

from mobile_sam.automatic_mask_generator import SamAutomaticMaskGenerator
from mobile_sam.utils import amg
from mobile_sam.utils.amg import MaskData

RNG = np.random.default_rng(0)


def _random_masks(shape: tuple[int, ...], density: float = 0.3) -> np.ndarray:
    return RNG.random(shape) < density


def _runs(mask: np.ndarray) -> list[int]:
    """Official uncompressed RLE counts: column-major runs, starting with background."""
    flat = mask.T.ravel().tolist()
    counts = [len(list(group)) for _, group in groupby(flat)]
    return counts if not flat[0] else [0] + counts


def _components(mask: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """8-connected components of True pixels: labels (0 = False pixels) and their sizes (label i at i - 1)."""
    labels = np.zeros(mask.shape, dtype=np.int64)
    sizes = []
    for start in zip(*np.nonzero(mask)):
        if labels[start]:
            continue
        sizes.append(0)
        labels[start] = len(sizes)
        queue = deque([start])
        while queue:
            y, x = queue.popleft()
            sizes[-1] += 1
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not labels[ny, nx]:
                        labels[ny, nx] = len(sizes)
                        queue.append((ny, nx))
    return labels, sizes


def _official_remove_small_regions(mask: np.ndarray, area: float, mode: str) -> tuple[np.ndarray, bool]:
    """Holes: small components of the background become foreground. Islands: small components of the
    foreground are dropped, but the largest one stays when all are small."""
    labels, sizes = _components(~mask if mode == "holes" else mask)
    small = [i + 1 for i, size in enumerate(sizes) if size < area]
    if not small:
        return mask, False
    if mode == "holes":
        return mask | np.isin(labels, small), True
    keep = [i + 1 for i, size in enumerate(sizes) if size >= area] or [int(np.argmax(sizes)) + 1]
    return np.isin(labels, keep), True


def _official_box(mask: np.ndarray) -> list[int]:
    rows, cols = np.nonzero(mask)
    return [0, 0, 0, 0] if len(rows) == 0 else [cols.min(), rows.min(), cols.max(), rows.max()]


def test_point_grids_are_cell_centres_row_by_row() -> None:
    for n in (1, 4, 7):
        expected = [[(j + 0.5) / n, (i + 0.5) / n] for i in range(n) for j in range(n)]
        np.testing.assert_allclose(amg.build_point_grid(n), expected, rtol=0, atol=1e-12)
    grids = amg.build_all_layer_point_grids(16, 2, 2)
    assert [len(grid) for grid in grids] == [256, 64, 16]


@pytest.mark.parametrize(
    "size, layers, ratio", [((603, 1072), 2, 512 / 1500), ((1200, 800), 1, 0.2), ((64, 64), 3, 0.5)]
)
def test_crop_boxes_are_the_official_overlapping_grid(size: tuple[int, int], layers: int, ratio: float) -> None:
    height, width = size
    expected, expected_layers = [[0, 0, width, height]], [0]
    for layer in range(1, layers + 1):
        n = 2**layer
        overlap = int(ratio * min(size) * 2 / n)
        crop_w, crop_h = (math.ceil((overlap * (n - 1) + side) / n) for side in (width, height))
        for i in range(n):  # x-major, as itertools.product(x0s, y0s)
            for j in range(n):
                x0, y0 = (crop_w - overlap) * i, (crop_h - overlap) * j
                expected.append([x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)])
                expected_layers.append(layer)
    assert amg.generate_crop_boxes(size, layers, ratio) == (expected, expected_layers)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stability_score_is_the_official_iou_of_two_thresholds(dtype: torch.dtype) -> None:
    logits = torch.from_numpy(RNG.normal(0, 2, (2, 3, 37, 53))).to(dtype)
    logits[0, 0, :3, :3] = 1.0  # exactly at the high threshold: counts as below
    logits[1, 2] = -5.0  # empty union: nan, as officially
    for threshold, offset in ((0.0, 1.0), (0.5, 0.3)):
        high = (logits > threshold + offset).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
        low = (logits > threshold - offset).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
        got = amg.calculate_stability_score(logits, threshold, offset)
        torch.testing.assert_close(got, high / low, equal_nan=True, rtol=0, atol=0)


def test_batched_mask_to_box_gives_tight_inclusive_boxes_and_zeros_for_empty_masks() -> None:
    masks = _random_masks((2, 3, 20, 30), 0.02)
    masks[1, 1] = False
    got = amg.batched_mask_to_box(torch.from_numpy(masks))
    expected = [[_official_box(mask) for mask in row] for row in masks]
    assert got.dtype == torch.int64 and got.tolist() == expected
    assert amg.batched_mask_to_box(torch.from_numpy(masks[0, 0])).tolist() == _official_box(masks[0, 0])
    empty = amg.batched_mask_to_box(torch.zeros(0, 20, 30, dtype=torch.bool))
    assert empty.shape == (0, 4) and empty.dtype == torch.float32  # official: float zeros for no input


def test_is_box_near_crop_edge_flags_crop_edges_that_are_not_image_edges() -> None:
    boxes = torch.from_numpy(RNG.integers(0, 300, (200, 4)))
    crop_box, orig_box = [100, 50, 400, 350], [0, 0, 400, 500]
    shifted = boxes.numpy() + np.array([100, 50, 100, 50])
    near_crop = np.abs(shifted - np.array(crop_box)) <= 20
    near_image = np.abs(shifted - np.array(orig_box)) <= 20
    expected = (near_crop & ~near_image).any(axis=1)
    assert amg.is_box_near_crop_edge(boxes, crop_box, orig_box).numpy().tolist() == expected.tolist()


def test_box_xyxy_to_xywh_keeps_the_type_and_does_not_touch_its_input() -> None:
    box = torch.tensor([3, 4, 10, 20])
    assert amg.box_xyxy_to_xywh(box).tolist() == [3, 4, 7, 16] and box.tolist() == [3, 4, 10, 20]
    assert amg.box_xyxy_to_xywh([1.5, 2, 4, 8]) == [1.5, 2, 2.5, 6]


def test_batch_iterator_slices_every_sequence_alike() -> None:
    a, b = list(range(7)), np.arange(7) * 10
    batches = list(amg.batch_iterator(3, a, b))
    assert [x for x, _ in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [y.tolist() for _, y in batches] == [[0, 10, 20], [30, 40, 50], [60]]
    with pytest.raises(ValueError, match="same length"):
        list(amg.batch_iterator(2, a, b[:3]))


def test_uncrop_boxes_points_and_masks_move_crop_results_into_the_image() -> None:
    crop_box = [5, 7, 25, 19]
    boxes = torch.from_numpy(RNG.integers(0, 10, (4, 3, 4)))
    np.testing.assert_array_equal(amg.uncrop_boxes_xyxy(boxes, crop_box), boxes.numpy() + [5, 7, 5, 7])
    np.testing.assert_array_equal(amg.uncrop_boxes_xyxy(boxes[0], crop_box), boxes[0].numpy() + [5, 7, 5, 7])
    points = torch.from_numpy(RNG.random((4, 1, 2)))
    np.testing.assert_allclose(amg.uncrop_points(points, crop_box), points.numpy() + [5, 7])
    masks = _random_masks((3, 12, 20))
    expected = np.zeros((3, 30, 40), dtype=bool)
    expected[:, 7:19, 5:25] = masks
    np.testing.assert_array_equal(amg.uncrop_masks(torch.from_numpy(masks), crop_box, 30, 40), expected)
    full = torch.from_numpy(masks)
    assert amg.uncrop_masks(full, [0, 0, 20, 12], 12, 20) is full


def test_uncompressed_rle_round_trips_and_matches_pycocotools() -> None:
    masks = _random_masks((4, 13, 17), 0.5)
    masks[1, 0, 0] = True  # foreground first pixel: counts start with 0
    masks[2] = False
    rles = amg.mask_to_rle_pytorch(torch.from_numpy(masks))
    for mask, rle in zip(masks, rles):
        assert rle == {"size": [13, 17], "counts": _runs(mask)}
        np.testing.assert_array_equal(amg.rle_to_mask(rle), mask)
        assert amg.area_from_rle(rle) == sum(rle["counts"][1::2]) == mask.sum()
        coco = amg.coco_encode_rle(rle)
        expected = mask_utils.frPyObjects(rle, 13, 17)
        assert coco == {"size": [13, 17], "counts": expected["counts"].decode("utf-8")}
        np.testing.assert_array_equal(mask_utils.decode(expected).astype(bool), mask)


@pytest.mark.parametrize("mode", ["holes", "islands"])
def test_remove_small_regions_follows_the_official_rule(mode: str) -> None:
    for _ in range(20):
        mask = _random_masks((24, 30), 0.45)
        for area in (1, 4, 40):
            got, changed = amg.remove_small_regions(mask, area, mode)
            expected, expected_changed = _official_remove_small_regions(mask, area, mode)
            np.testing.assert_array_equal(got, expected)
            assert changed == expected_changed


def test_postprocess_small_regions_is_the_official_static_step_on_uncompressed_rles() -> None:
    masks = _random_masks((12, 24, 30), 0.4)
    masks[3] = masks[2]  # a duplicate, removed by NMS
    rles = amg.mask_to_rle_pytorch(torch.from_numpy(masks))
    boxes = torch.tensor([_official_box(mask) for mask in masks])
    data = MaskData(rles=rles, boxes=boxes.clone(), iou_preds=torch.arange(12.0))
    returned = SamAutomaticMaskGenerator.postprocess_small_regions(data, 6, 0.7)

    cleaned, scores = [], []
    for mask in masks:
        filled, holes_changed = _official_remove_small_regions(mask, 6, "holes")
        kept, islands_changed = _official_remove_small_regions(filled, 6, "islands")
        cleaned.append(kept)
        scores.append(0.0 if holes_changed or islands_changed else 1.0)
    new_boxes = torch.tensor([_official_box(mask) for mask in cleaned])
    keep = batched_nms(new_boxes.float(), torch.tensor(scores), torch.zeros(12), iou_threshold=0.7).tolist()

    assert returned is data and data["iou_preds"].tolist() == [float(i) for i in keep]
    for row, i in enumerate(keep):
        expected_mask = cleaned[i] if scores[i] == 0.0 else masks[i]
        assert data["rles"][row] == {"size": [24, 30], "counts": _runs(expected_mask)}
        assert data["boxes"][row].tolist() == (new_boxes[i] if scores[i] == 0.0 else boxes[i]).tolist()


def test_postprocess_small_regions_keeps_the_rle_form_it_is_given() -> None:
    mask = np.zeros((10, 12), dtype=bool)
    mask[2:8, 2:9] = True
    mask[4, 5] = False  # a one-pixel hole
    compressed = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    data = MaskData(rles=[compressed], boxes=torch.tensor([[2, 2, 8, 7]]))
    SamAutomaticMaskGenerator.postprocess_small_regions(data, 4, 0.7)
    assert isinstance(data["rles"][0]["counts"], bytes)
    filled = mask.copy()
    filled[4, 5] = True
    np.testing.assert_array_equal(mask_utils.decode(data["rles"][0]).astype(bool), filled)
    assert (
        SamAutomaticMaskGenerator.postprocess_small_regions(MaskData(rles=[], boxes=torch.zeros(0, 4)), 4, 0.7)["rles"]
        == []
    )


def test_transposed_masks_encode_and_box_as_the_masks_they_transpose() -> None:
    from mobile_sam.utils.amg import transposed_mask_boxes, transposed_masks_to_rles

    rng = np.random.default_rng(3)
    masks = np.zeros((3, 14, 19), dtype=bool)  # (K, H, W)
    masks[0, 2:9, 4:17] = rng.random((7, 13)) > 0.3
    masks[1, 13, 0] = True
    masks_t = masks.transpose(0, 2, 1).copy()  # (K, W, H); masks[2] stays empty
    rles = transposed_masks_to_rles(masks_t)
    for mask, rle in zip(masks, rles):
        assert rle["size"] == [14, 19]
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), mask)
    expected = []
    for mask in masks:  # XYXY inclusive from the pixel coordinates; empty -> zeros
        ys, xs = np.nonzero(mask)
        expected.append([xs.min(), ys.min(), xs.max(), ys.max()] if len(xs) else [0, 0, 0, 0])
    assert transposed_mask_boxes(masks_t).tolist() == expected
    assert transposed_masks_to_rles(np.zeros((0, 19, 14), dtype=bool)) == []
