"""
Prompts: points and boxes as a user gives them, checked and grouped for the predictor (the one prompt type of
the app, its API, the compare protocols and the CLIs).

Coordinates are pixels of the image being segmented: points XY, boxes XYXY, labels 1 for
foreground and 0 for background. The JSON form (the one schema: web API, prompt files, result files) is
``{"points": [[x, y], ...], "labels": [1, 0, ...], "boxes": [[x0, y0, x1, y1], ...]}``,
every key optional; a label is required for every point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Prompts:
    """Points and boxes on one image; build with from_lists or from_json to get checked arrays."""

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # Nx2 float XY
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))  # N in {0, 1}
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # Mx4 float XYXY, x0<x1, y0<y1

    @classmethod
    def from_lists(cls, points: Any = (), labels: Any = (), boxes: Any = ()) -> Prompts:
        """Check and normalise nested lists or arrays; box corners may come in any order."""
        points_array = _float_array(points, 2, "points", "[[x, y], ...]")
        labels_array = np.asarray(labels if labels is not None else [], dtype=np.float64).reshape(-1)
        if len(labels_array) != len(points_array):
            raise ValueError(
                f"Got {len(points_array)} points but {len(labels_array)} labels; give one label per point."
            )
        if not np.isin(labels_array, (0, 1)).all():
            raise ValueError(f"Point labels must be 1 (foreground) or 0 (background), got {labels_array.tolist()}.")
        boxes_array = _float_array(boxes, 4, "boxes", "[[x0, y0, x1, y1], ...]")
        corners = boxes_array.reshape(-1, 2, 2)
        boxes_array = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
        return cls(points_array, labels_array.astype(np.int64), boxes_array)

    @classmethod
    def from_json(cls, text: str | dict | None) -> Prompts:
        """Parse the JSON form described in the module docstring (a str or an already decoded dict)."""
        if text is None or (isinstance(text, str) and not text.strip()):
            return cls.from_lists()
        if isinstance(text, str):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"Prompts are not valid JSON ({error.msg} at position {error.pos}).") from error
        else:
            data = text
        if not isinstance(data, dict):
            raise ValueError('Prompts must be a JSON object like {"points": [[x, y]], "labels": [1], "boxes": []}.')
        unknown = set(data) - {"points", "labels", "boxes"}
        if unknown:
            raise ValueError(f"Unknown prompt keys {sorted(unknown)}; expected 'points', 'labels' and 'boxes'.")
        return cls.from_lists(data.get("points") or [], data.get("labels") or [], data.get("boxes") or [])

    def to_dict(self) -> dict[str, list]:
        """The JSON-ready form (inverse of from_json)."""
        return {"points": self.points.tolist(), "labels": self.labels.tolist(), "boxes": self.boxes.tolist()}

    def is_empty(self) -> bool:
        return len(self.points) == 0 and len(self.boxes) == 0

    @property
    def num_points(self) -> int:
        return len(self.points)

    @property
    def point_coords(self) -> np.ndarray | None:
        """The Nx2 points for `SamPredictor.predict`, None when there are none."""
        return self.points if len(self.points) else None

    @property
    def point_labels(self) -> np.ndarray | None:
        """The N labels for `SamPredictor.predict`, None when there are no points."""
        return self.labels if len(self.points) else None

    @property
    def box(self) -> np.ndarray | None:
        """The one box of a one-mask prompt (see `groups`) for `SamPredictor.predict`, None when there is none.

        Raises:
          ValueError: there are several boxes (one mask each: split them with `groups`).
        """
        if len(self.boxes) > 1:
            raise ValueError(f"{len(self.boxes)} boxes give {len(self.boxes)} masks; split them with groups().")
        return self.boxes[0] if len(self.boxes) else None

    def validate(self, image_size: tuple[int, int]) -> None:
        """
        Check the prompts against an image of size (H, W).

        Raises:
          ValueError: no prompt at all, a point outside the image, only background points,
            or a box with zero area or lying outside the image.
        """
        height, width = image_size
        if self.is_empty():
            raise ValueError("Add at least one point or box first.")
        for x, y in self.points:
            if not (0 <= x < width and 0 <= y < height):
                raise ValueError(f"Point ({x:g}, {y:g}) lies outside the {width}x{height} image.")
        for x0, y0, x1, y1 in self.boxes:
            if x1 - x0 < 1 or y1 - y0 < 1:
                raise ValueError(
                    f"The box ({x0:g}, {y0:g})-({x1:g}, {y1:g}) has zero area: its corners must differ in both x and y."
                )
            if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
                raise ValueError(f"The box ({x0:g}, {y0:g})-({x1:g}, {y1:g}) lies outside the {width}x{height} image.")
        if len(self.boxes) == 0 and not (self.labels == 1).any():
            raise ValueError("Only background points: add a foreground point or a box to say what to segment.")

    def checked(self, image_size: tuple[int, int]) -> Prompts:
        """
        The prompts ready for the predictor on an image of size (H, W): validated (see `validate`), with
        every box clipped to the image.

        `SamPredictor` takes prompts as given, like the official one (points and boxes may lie outside
        the image); this is the one place where user clicks are checked and clipped.
        """
        self.validate(image_size)
        height, width = image_size
        boxes = np.clip(self.boxes, 0.0, [width, height, width, height])
        return Prompts(self.points, self.labels, boxes)

    def groups(self) -> tuple[list[Prompts], np.ndarray]:
        """
        Split the prompts into the predictor calls they need, one mask (or one set of multimask candidates) each.

        With at most one box, all points and the box form one group. With several boxes, each
        box forms its own group (one mask per box) together with the points inside it.

        Returns:
          (list[Prompts]): one group per mask request, each with at most one box.
          (np.ndarray): indices of points that belong to no group (outside every box when
            there are several boxes).
        """
        if len(self.boxes) <= 1:
            return [self], np.zeros((0,), np.int64)
        groups = []
        used = np.zeros(len(self.points), dtype=bool)
        for box in self.boxes:
            inside = (
                (self.points[:, 0] >= box[0])
                & (self.points[:, 0] <= box[2])
                & (self.points[:, 1] >= box[1])
                & (self.points[:, 1] <= box[3])
            )
            used |= inside
            groups.append(Prompts(self.points[inside], self.labels[inside], box[None]))
        return groups, np.flatnonzero(~used)


def _float_array(values: Any, width: int, name: str, form: str) -> np.ndarray:
    try:
        array = np.asarray(values if values is not None else [], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a list of numbers like {form}.") from error
    if array.size == 0:
        return np.zeros((0, width))
    if array.ndim == 1 and array.shape[0] == width:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != width:
        raise ValueError(f"{name} must have the form {form}, got an array of shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinite values.")
    return array
