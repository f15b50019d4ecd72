"""FastSAM's prompt rules: choose among its everything-mode instance masks (pure functions, no model).

FastSAM segments every instance first; a prompt only selects among them. Two rule sets exist, and they differ:

- "original": the FastSAM authors' `FastSAMPrompt` (CASIA-IVA-Lab/FastSAM, `fastsam/prompt.py`), the default.
  Points: instances are visited from the largest to the smallest (ties in their given order); within one
  instance the points it contains are applied in prompt order, a foreground point setting its pixels and a
  background point clearing them, so the last point it contains decides. Box: the instance with the highest IoU
  with the box (corners rounded half to even, the low corner clipped to 0, the high one to the image side, end
  exclusive), even when that IoU is 0 (then the first instance).
- "ultralytics": ultralytics' `FastSAMPredictor.prompt`. Points (truncated to integers, clipped to the image):
  the union of the whole instances that contain a foreground point (every instance when there is none) and no
  background point. Box (corners truncated, clipped to the image, end exclusive): the instance with the highest
  IoU, even when it is 0.

"original" is the default: it is the code the FastSAM authors published with their paper. Where the original
code fails, both rule sets answer as ultralytics does: points and box corners outside the image are clipped to it
(the original code raises for points past the image, wraps negative ones around and mis-measures boxes past the
image), no instance at all gives an empty mask (the original code raises), and coordinates that are not whole
pixels are rounded to the nearest one for "original" (its point rule accepts integers only). Instances are in
FastSAM's order (by confidence); `tests/conformance_data/fastsam_rules` holds both peers' outputs, which these
rules reproduce.
"""

from __future__ import annotations

import numpy as np

FASTSAM_RULES = ("original", "ultralytics")
DEFAULT_FASTSAM_RULES = "original"
# One line per rule set, for help texts, the app and reports.
FASTSAM_RULES_DESCRIPTIONS = {
    "original": "the FastSAM authors' point_prompt / box_prompt (CASIA-IVA-Lab/FastSAM): instances from the largest "
    "down, the last point inside each sets (foreground) or clears (background) its pixels",
    "ultralytics": "ultralytics' FastSAMPredictor.prompt: whole instances holding a foreground point and no "
    "background point",
}


def check_rules(rules: str) -> str:
    """`rules` if it is one of FASTSAM_RULES, else a ValueError naming them."""
    if rules not in FASTSAM_RULES:
        raise ValueError(f"FastSAM rules must be one of {', '.join(FASTSAM_RULES)}, got {rules!r}")
    return rules


def _check_instances(instances: np.ndarray) -> np.ndarray:
    instances = np.asarray(instances)
    if instances.ndim != 3:
        raise ValueError(f"instance masks must have shape KxHxW, got {instances.shape}")
    return instances.astype(bool, copy=False)


def _whole(values: np.ndarray, rules: str) -> np.ndarray:
    """Coordinates as integers: rounded half to even ("original", Python's round) or truncated toward zero
    ("ultralytics", a float tensor cast to an integer one)."""
    values = np.asarray(values, dtype=np.float64)
    return (np.rint(values) if rules == "original" else np.trunc(values)).astype(np.int64)


def select_by_points(
    instances: np.ndarray, points: np.ndarray, labels: np.ndarray, rules: str = DEFAULT_FASTSAM_RULES
) -> np.ndarray:
    """The FastSAM point-prompt mask under `rules` (see the module doc).

    Arguments:
        instances: KxHxW boolean instance masks in FastSAM's order (K may be 0).
        points: Nx2 (x, y) pixel coordinates.
        labels: N labels, 1 = foreground, 0 = background.
    Returns:
        HxW boolean mask (empty when no instance is selected).
    """
    check_rules(rules)
    instances = _check_instances(instances)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != points.shape[0]:
        raise ValueError(f"got {points.shape[0]} points but {labels.shape[0]} labels")
    k, h, w = instances.shape
    if k == 0 or points.shape[0] == 0:
        return np.zeros((h, w), dtype=bool)
    xy = _whole(points, rules)
    hits = instances[:, np.clip(xy[:, 1], 0, h - 1), np.clip(xy[:, 0], 0, w - 1)]  # K x N: instance k holds point n
    if rules == "ultralytics":
        keep = np.ones(k, dtype=bool) if labels.sum() == 0 else hits[:, labels == 1].any(axis=1)
        keep &= ~hits[:, labels == 0].any(axis=1)
        return instances[keep].any(axis=0)
    out = np.zeros((h, w), dtype=bool)
    decisive = hits & np.isin(labels, (0, 1))[None]
    areas = instances.reshape(k, -1).sum(axis=1)
    for index in np.argsort(-areas, kind="stable"):
        held = np.flatnonzero(decisive[index])
        if held.size:
            out[instances[index]] = labels[held[-1]] == 1
    return out


def box_ious(instances: np.ndarray, box: np.ndarray, rules: str = DEFAULT_FASTSAM_RULES) -> np.ndarray:
    """IoU of each KxHxW instance mask with an XYXY box taken as the pixel rectangle [x0, x1) x [y0, y1) after
    the rule set's rounding and clipping (NaN where box and instance are both empty, as in both peers)."""
    check_rules(rules)
    instances = _check_instances(instances)
    k, h, w = instances.shape
    x0, y0, x1, y1 = _whole(np.asarray(box, dtype=np.float64).reshape(4), rules)
    x0, x1 = np.clip([x0, x1], 0, w)
    y0, y1 = np.clip([y0, y1], 0, h)
    box_area = (y1 - y0) * (x1 - x0)
    inside = instances[:, y0:y1, x0:x1].reshape(k, -1).sum(axis=1)
    areas = instances.reshape(k, -1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inside / (box_area + areas - inside)


def select_by_box(instances: np.ndarray, box: np.ndarray, rules: str = DEFAULT_FASTSAM_RULES) -> np.ndarray:
    """The FastSAM box-prompt mask under `rules`: the instance with the highest IoU with the box (the first on
    ties, and the first when no instance overlaps it); an empty HxW mask when there are no instances."""
    instances = _check_instances(instances)
    k, h, w = instances.shape
    if k == 0:
        check_rules(rules)
        return np.zeros((h, w), dtype=bool)
    return instances[int(np.argmax(box_ious(instances, box, rules)))].copy()
