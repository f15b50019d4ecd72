"""Mask agreement: IoU of two masks and mIoU of a model against the reference model."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def mask_iou(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """Intersection over union of two HxW boolean masks.

    Two empty masks agree perfectly, so their IoU is defined as 1.0 (a model that finds nothing where the
    reference finds nothing is right); an empty mask against a non-empty one gives 0.0.
    """
    a = np.asarray(mask_a)
    b = np.asarray(mask_b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"masks must be two HxW arrays of the same shape, got {a.shape} and {b.shape}")
    a = a.astype(bool, copy=False)
    b = b.astype(bool, copy=False)
    union = int(np.count_nonzero(a | b))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(a & b)) / union


def mean_iou(ious: Iterable[float]) -> float:
    """The mean of a non-empty collection of IoU values (the paper's mIoU)."""
    values = np.asarray(list(ious), dtype=np.float64)
    if values.size == 0:
        raise ValueError("mIoU of no masks is undefined")
    return float(values.mean())
