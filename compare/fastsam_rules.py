"""FastSAM's prompt rules: choose among its everything-mode instance masks (pure functions, no model).

FastSAM segments every instance first, then a prompt only selects:
- points: instances are visited from the largest to the smallest; an instance containing a background point
  clears its pixels, otherwise one containing a foreground point sets them (the published FastSAM
  `point_prompt` rule; for the paper's foreground-then-background pairs it is the same as the original code).
  The result is the union of the instances with a foreground point, minus the pixels of those with a
  background point drawn after them.
- box: the one instance with the highest IoU with the box (box taken as a filled rectangle).
- no instance selected: an empty mask.
"""

from __future__ import annotations

import numpy as np


def _check_instances(instances: np.ndarray) -> np.ndarray:
    instances = np.asarray(instances)
    if instances.ndim != 3:
        raise ValueError(f"instance masks must have shape KxHxW, got {instances.shape}")
    return instances.astype(bool, copy=False)


def _pixel_indices(points: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest pixel (row, col) of each (x, y) point, clipped to the image."""
    xy = np.rint(np.asarray(points, dtype=np.float64)).astype(np.int64)
    cols = np.clip(xy[:, 0], 0, width - 1)
    rows = np.clip(xy[:, 1], 0, height - 1)
    return rows, cols


def select_by_points(instances: np.ndarray, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The FastSAM point-prompt mask.

    Arguments:
        instances: KxHxW boolean instance masks (K may be 0).
        points: Nx2 (x, y) pixel coordinates; each is rounded to the nearest pixel and clipped to the image.
        labels: N labels, 1 = foreground, 0 = background.
    Returns:
        HxW boolean mask (empty when no instance contains a foreground point).
    """
    instances = _check_instances(instances)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != points.shape[0]:
        raise ValueError(f"got {points.shape[0]} points but {labels.shape[0]} labels")
    k, h, w = instances.shape
    out = np.zeros((h, w), dtype=bool)
    if k == 0 or points.shape[0] == 0:
        return out
    rows, cols = _pixel_indices(points, h, w)
    hits = instances[:, rows, cols]  # K x N: instance k contains point n
    has_fg = hits[:, labels == 1].any(axis=1)
    has_bg = hits[:, labels == 0].any(axis=1)
    areas = instances.reshape(k, -1).sum(axis=1)
    for idx in np.argsort(-areas, kind="stable"):
        if has_bg[idx]:
            out[instances[idx]] = False
        elif has_fg[idx]:
            out[instances[idx]] = True
    return out


def box_ious(instances: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of each KxHxW instance mask with an XYXY box taken as a filled rectangle (pixels x0..x1, y0..y1)."""
    instances = _check_instances(instances)
    k, h, w = instances.shape
    x0, y0, x1, y1 = np.rint(np.asarray(box, dtype=np.float64)).astype(np.int64)
    x0, x1 = np.clip([x0, x1], 0, w - 1)
    y0, y1 = np.clip([y0, y1], 0, h - 1)
    box_area = (x1 - x0 + 1) * (y1 - y0 + 1)
    inside = instances[:, y0 : y1 + 1, x0 : x1 + 1].reshape(k, -1).sum(axis=1)
    areas = instances.reshape(k, -1).sum(axis=1)
    return inside / (box_area + areas - inside)


def select_by_box(instances: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The FastSAM box-prompt mask: the instance with the highest IoU with the box (first one on ties).

    Returns an empty HxW mask when there are no instances or none overlaps the box.
    """
    instances = _check_instances(instances)
    k, h, w = instances.shape
    if k == 0:
        return np.zeros((h, w), dtype=bool)
    ious = box_ious(instances, box)
    best = int(np.argmax(ious))
    if ious[best] <= 0.0:
        return np.zeros((h, w), dtype=bool)
    return instances[best].copy()
