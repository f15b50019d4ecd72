"""Mask IoU and mIoU."""

import numpy as np
import pytest

from samkit.metrics import mask_iou, mean_iou


def test_identical_masks_have_iou_one():
    mask = np.zeros((8, 10), dtype=bool)
    mask[2:5, 3:9] = True
    assert mask_iou(mask, mask.copy()) == 1.0


def test_two_empty_masks_have_iou_one():
    empty = np.zeros((4, 4), dtype=bool)
    assert mask_iou(empty, empty) == 1.0


def test_empty_against_nonempty_mask_has_iou_zero():
    a = np.zeros((4, 4), dtype=bool)
    b = a.copy()
    b[1, 1] = True
    assert mask_iou(a, b) == 0.0


def test_partial_overlap_is_intersection_over_union():
    a = np.zeros((1, 10), dtype=bool)
    b = np.zeros((1, 10), dtype=bool)
    a[0, 0:6] = True  # 6 pixels
    b[0, 4:10] = True  # 6 pixels, 2 shared
    assert mask_iou(a, b) == pytest.approx(2 / 10)


def test_iou_rejects_masks_of_different_shapes():
    with pytest.raises(ValueError, match="same shape"):
        mask_iou(np.zeros((3, 3), bool), np.zeros((3, 4), bool))


def test_mean_iou_averages_values():
    assert mean_iou([1.0, 0.5, 0.0]) == pytest.approx(0.5)


def test_mean_iou_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        mean_iou([])
