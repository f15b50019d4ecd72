"""Both upsampling paths of `CandidateMasks` against plain re-derivations: every candidate resized to the whole
crop (OpenCV, or torch as the official `postprocess_masks`), counted, thresholded, encoded with pycocotools and
boxed from its pixels. Examining only the window of each plane that can hold mask pixels must change nothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

from mobile_sam.modeling.sam import low_res_extent
from mobile_sam.utils.mask_candidates import CandidateMasks
from mobile_sam.utils.opencv_masks import PlaneMasks
from mobile_sam.utils.rle import window_rle

IMAGE_SIZE = (300, 450)  # (H, W)
INPUT_SIZE = (683, 1024)  # ResizeLongestSide(1024) of IMAGE_SIZE
THRESHOLD, OFFSET = 0.0, 1.0


def blob_planes() -> np.ndarray:
    """Low-res planes (K, 256, 256) as a trained decoder gives them: a blob of positive logits (some tiny, some at
    the frame's edges or corners, one with a shallow slope whose logits stay between the thresholds over many
    samples), strongly negative far from it; plus one all negative, one just below the low threshold, one all
    positive and one of noise."""
    rng = np.random.default_rng(0)
    centres = [(40, 60), (0, 0), (170, 255), (5, 130), (100, 3), (90, 200), (150, 20), (60, 120)]
    radii = [12, 6, 9, 1.5, 20, 60, 0.7, 40]
    slopes = [2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 0.04]
    rows, cols = np.mgrid[0:256, 0:256].astype(np.float32)
    planes = [s * (r - np.hypot(rows - y, cols - x)) for (y, x), r, s in zip(centres, radii, slopes)]
    planes.append(np.full((256, 256), -30.0))
    planes.append(np.full((256, 256), THRESHOLD - OFFSET - 1e-6))
    planes.append(np.full((256, 256), 5.0))
    planes.append(rng.normal(0, 2, (256, 256)))
    return np.stack(planes).astype(np.float32)


def reference(
    plane: np.ndarray, crop_box: list[int], upsampling: str = "opencv", scale: int = 4
) -> tuple[list[int], dict, list[int]]:
    """(high, low) counts, the compressed RLE and the XYXY box in crop coordinates of one plane, the plain way."""
    rows, cols = low_res_extent(INPUT_SIZE, 1024, 256)
    x0, y0, x1, y1 = crop_box
    if upsampling == "opencv":
        framed = cv2.resize(plane[:rows, :cols], (scale * cols, scale * rows), interpolation=cv2.INTER_LINEAR)
        cropped = framed[: INPUT_SIZE[0], : INPUT_SIZE[1]]
        logits = cv2.resize(cropped, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    else:  # the official postprocess_masks
        framed = F.interpolate(torch.from_numpy(plane)[None, None], (1024, 1024), mode="bilinear", align_corners=False)
        cropped = framed[..., : INPUT_SIZE[0], : INPUT_SIZE[1]]
        logits = F.interpolate(cropped, (y1 - y0, x1 - x0), mode="bilinear", align_corners=False)[0, 0].numpy()
    counts = [int((logits > THRESHOLD + OFFSET).sum()), int((logits > THRESHOLD - OFFSET).sum())]
    mask = np.zeros(IMAGE_SIZE, dtype=bool)
    mask[y0:y1, x0:x1] = logits > THRESHOLD
    ys, xs = np.nonzero(logits > THRESHOLD)
    box = [xs.min(), ys.min(), xs.max(), ys.max()] if len(xs) else [0, 0, 0, 0]
    return counts, mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))), box


@pytest.mark.parametrize("upsampling", ["opencv", "torch"])
@pytest.mark.parametrize("crop_box", [[0, 0, 450, 300], [60, 40, 310, 207], [0, 100, 450, 300]])
def test_windowed_masks_equal_the_whole_crop_computation(crop_box: list[int], upsampling: str) -> None:
    planes = blob_planes()
    masks = CandidateMasks(1024, 256, INPUT_SIZE, crop_box, IMAGE_SIZE, THRESHOLD, OFFSET, 0.0, upsampling, 2**20)
    data = masks.keep(torch.from_numpy(planes), torch.arange(len(planes), dtype=torch.float32))
    height, width = IMAGE_SIZE
    expected = []
    for k, plane in enumerate(planes):
        counts, rle, box = reference(plane, crop_box, upsampling)
        # The official rule: dropped if its box (in the image) lies within 20 px of a crop edge that is not the
        # image's edge.
        in_image = np.array(box) + np.array(crop_box[:2] * 2)
        near_crop = np.abs(in_image - np.array(crop_box)) <= 20
        near_image = np.abs(in_image - np.array([0, 0, width, height])) <= 20
        if not (near_crop & ~near_image).any():
            expected.append((k, counts, rle, box))
    assert data["iou_preds"].tolist() == [k for k, *_ in expected]
    for i, (k, counts, rle, box) in enumerate(expected):
        assert data["rles"][i] == rle, k
        assert data["boxes"][i].tolist() == box, k
        stability = np.float32(counts[0]) / np.float32(counts[1]) if counts[1] else np.nan
        np.testing.assert_equal(data["stability_score"][i].item(), stability)


def test_the_stability_filter_sees_the_whole_crop_counts() -> None:
    rows, cols = low_res_extent(INPUT_SIZE, 1024, 256)
    planes = blob_planes()
    crop_box = [0, 0, 450, 300]
    masks = PlaneMasks((rows, cols), 4, INPUT_SIZE, crop_box, IMAGE_SIZE, THRESHOLD, OFFSET)
    stability, kept, rles, _ = masks.candidates(planes, 0.8)
    expected = []
    for k, plane in enumerate(planes):
        counts, _, _ = reference(plane, crop_box)
        if counts[1] and np.float32(counts[0]) / np.float32(counts[1]) >= np.float32(0.8):
            expected.append(k)
    assert 0 < len(expected) < len(planes)
    assert kept.tolist() == expected
    assert rles == [reference(planes[k], crop_box)[1] for k in expected]


def test_a_window_encodes_as_the_whole_mask() -> None:
    rng = np.random.default_rng(1)
    for _ in range(2000):
        height, width = rng.integers(1, 25, 2)
        top, left = int(rng.integers(0, height)), int(rng.integers(0, width))
        if rng.random() < 0.3:
            top = 0
        rows, cols = int(rng.integers(0, height - top + 1)), int(rng.integers(0, width - left + 1))
        if rng.random() < 0.3:  # whole columns
            top, rows = 0, int(height)
        window = rng.random((rows, cols)) < rng.random()
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[top : top + rows, left : left + cols] = window
        expected = mask_utils.encode(np.asfortranarray(mask))
        assert window_rle(np.ascontiguousarray(window.T), top, left, (int(height), int(width))) == expected
