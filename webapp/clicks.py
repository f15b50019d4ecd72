"""
Prompts built up click by click: points, boxes from two corners or a drag, undo and clear.

`ClickPrompts` is immutable; every edit returns a new value that remembers the previous prompts
for undo. Coordinates are pixels of the image being segmented (points XY, boxes XYXY).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from samkit.prompts import Prompts

FOREGROUND, BACKGROUND, BOX = "foreground", "background", "box"
UNDO_DEPTH = 100


@dataclass(frozen=True)
class ClickPrompts:
    """The prompts of one image and the half-drawn box corner, with undo history."""

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    pending_corner: tuple[float, float] | None = None
    history: tuple[tuple[Any, ...], ...] = ()

    def prompts(self) -> Prompts:
        return Prompts.from_lists(self.points, self.labels, self.boxes)

    def click(self, mode: str, x: float, y: float) -> tuple[ClickPrompts, str]:
        """
        A click in mode FOREGROUND, BACKGROUND or BOX (first click: a corner, second: the box).

        Returns:
          (ClickPrompts): the new prompts.
          (str): a message for the user ("" when the click was simply added).
        """
        if mode == BOX:
            if self.pending_corner is None:
                return self._edit(pending_corner=(x, y)), "Now click the opposite corner of the box."
            return self.add_box((*self.pending_corner, x, y))
        if mode not in (FOREGROUND, BACKGROUND):
            raise ValueError(f"Unknown click mode {mode!r}; expected {FOREGROUND}, {BACKGROUND} or {BOX}.")
        label = 1 if mode == FOREGROUND else 0
        return self._edit(points=self.points + ((x, y),), labels=self.labels + (label,), pending_corner=None), ""

    def add_box(self, box: tuple[float, float, float, float]) -> tuple[ClickPrompts, str]:
        """A box from two corners in any order; a zero-area box is refused with a message."""
        x0, y0, x1, y1 = box
        if abs(x1 - x0) < 1 or abs(y1 - y0) < 1:
            return self._edit(
                pending_corner=None
            ), "That box has zero area: its corners must differ in both x and y. Try again."
        normalised = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        return self._edit(boxes=self.boxes + (normalised,), pending_corner=None), ""

    def undo(self) -> tuple[ClickPrompts, str]:
        if not self.history:
            return self, "Nothing to undo."
        points, labels, boxes, pending = self.history[-1]
        return ClickPrompts(points, labels, boxes, pending, self.history[:-1]), ""

    def clear(self) -> ClickPrompts:
        return self._edit(points=(), labels=(), boxes=(), pending_corner=None)

    def without_pending_corner(self) -> ClickPrompts:
        return replace(self, pending_corner=None)

    def _edit(self, **changes: Any) -> ClickPrompts:
        snapshot = (self.points, self.labels, self.boxes, self.pending_corner)
        return replace(self, history=(self.history + (snapshot,))[-UNDO_DEPTH:], **changes)
