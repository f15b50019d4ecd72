"""A prompt for one mask: points with labels, a box, or both, in original-image pixel coordinates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mobile_sam.prompts import Prompts


@dataclass(frozen=True)
class Prompt:
    """Points and/or a box for one mask.

    Attributes:
        point_coords: Nx2 float array of (x, y) pixel coordinates in the original image, or None.
        point_labels: N int array, 1 = foreground, 0 = background; None exactly when point_coords is None.
        box: length-4 float array (x0, y0, x1, y1) in original-image pixels (XYXY), or None.
    """

    point_coords: np.ndarray | None = None
    point_labels: np.ndarray | None = None
    box: np.ndarray | None = None

    def __post_init__(self) -> None:
        coords, labels, box = self.point_coords, self.point_labels, self.box
        if coords is None and box is None:
            raise ValueError("a prompt needs points, a box, or both")
        if (coords is None) != (labels is None):
            raise ValueError("point_coords and point_labels must be given together")
        if coords is not None:
            coords = np.asarray(coords, dtype=np.float64)
            labels = np.asarray(labels, dtype=np.int64)
            if coords.ndim != 2 or coords.shape[1] != 2 or coords.shape[0] == 0:
                raise ValueError(f"point_coords must have shape Nx2 with N >= 1, got {coords.shape}")
            if labels.shape != (coords.shape[0],):
                raise ValueError(f"point_labels must have shape ({coords.shape[0]},), got {labels.shape}")
            if not np.isin(labels, (0, 1)).all():
                raise ValueError(f"point_labels must be 0 (background) or 1 (foreground), got {labels.tolist()}")
        if box is not None:
            box = np.asarray(box, dtype=np.float64)
            if box.shape != (4,):
                raise ValueError(f"box must have 4 values (x0, y0, x1, y1), got shape {box.shape}")
            if box[2] < box[0] or box[3] < box[1]:
                raise ValueError(f"box must satisfy x0 <= x1 and y0 <= y1, got {box.tolist()}")
        object.__setattr__(self, "point_coords", coords)
        object.__setattr__(self, "point_labels", labels)
        object.__setattr__(self, "box", box)

    @property
    def num_points(self) -> int:
        """The number of points (0 for a box-only prompt)."""
        return 0 if self.point_coords is None else int(self.point_coords.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict: `points` [[x, y], ...], `labels` [...], `box` [x0, y0, x1, y1] (absent keys
        omitted)."""
        out: dict[str, Any] = {}
        if self.point_coords is not None and self.point_labels is not None:
            out["points"] = self.point_coords.tolist()
            out["labels"] = self.point_labels.tolist()
        if self.box is not None:
            out["box"] = self.box.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prompt:
        """Inverse of `to_dict`; `labels` default to all foreground when `points` come without them."""
        if not isinstance(data, dict):
            raise TypeError(f"a prompt must be a dict with 'points'/'labels'/'box', got {type(data).__name__}")
        unknown = set(data) - {"points", "labels", "box"}
        if unknown:
            raise ValueError(f"unknown prompt keys {sorted(unknown)}; expected 'points', 'labels', 'box'")
        points = data.get("points")
        labels = data.get("labels")
        if points is not None and labels is None:
            labels = [1] * len(points)
        return cls(point_coords=points, point_labels=labels, box=data.get("box"))


def checked_prompt(prompt: Prompt, image_size: tuple[int, int]) -> Prompt:
    """`prompt` checked against an (H, W) image by the one click validator (`mobile_sam.prompts.Prompts.checked`):
    points inside the image, boxes with area, clipped to it. Raises ValueError with the reason otherwise."""
    boxes = [] if prompt.box is None else [prompt.box]
    points = [] if prompt.point_coords is None else prompt.point_coords
    labels = [] if prompt.point_labels is None else prompt.point_labels
    checked = Prompts.from_lists(points, labels, boxes).checked(image_size)
    has_points = len(checked.points) > 0
    return Prompt(
        checked.points if has_points else None,
        checked.labels if has_points else None,
        checked.boxes[0] if len(checked.boxes) else None,
    )
