"""
Drawing masks and prompts for display.

Every function returns a new array and never modifies its input: markers and overlays go on a
display copy, while the image the model sees stays untouched. Images are HxWx3 uint8 RGB,
masks HxW bool, points XY in pixels, boxes XYXY in pixels.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import cv2
import numpy as np

FOREGROUND_COLOR = (40, 200, 70)
BACKGROUND_COLOR = (230, 40, 40)
BOX_COLOR = (255, 200, 0)
CONTOUR_COLOR = (255, 255, 255)


def mask_colors(count: int, seed: int = 0) -> np.ndarray:
    """
    Distinct, reproducible bright colours for count masks.

    Returns:
      (np.ndarray): count x 3 uint8 RGB; the same seed always gives the same colours.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}.")
    rng = np.random.default_rng(seed)
    hues = (rng.permutation(max(count, 1))[:count] / max(count, 1) * 180 + rng.uniform(0, 180)) % 180
    hsv = np.stack([hues, rng.uniform(160, 255, count), rng.uniform(190, 255, count)], axis=-1).astype(np.uint8)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0] if count else np.zeros((0, 3), np.uint8)


def overlay_masks(
    image: np.ndarray,
    masks: np.ndarray | Sequence[np.ndarray],
    colors: np.ndarray | None = None,
    alpha: float = 0.5,
    contour_thickness: int | None = None,
    antialiased: bool = True,
) -> np.ndarray:
    """
    Blend coloured masks over an image and outline each mask.

    Arguments:
      image (np.ndarray): HxWx3 uint8 RGB.
      masks: N masks, each HxW bool (an NxHxW array or a sequence). Larger masks are drawn first
        so small ones stay visible on top.
      colors (np.ndarray or None): Nx3 uint8; None uses mask_colors(N).
      alpha (float): mask opacity in [0, 1].
      contour_thickness (int or None): outline width in pixels; None scales with the image,
        0 draws no outline.
      antialiased (bool): antialiased outlines; False draws crisp ones, much faster for ragged masks.

    Returns:
      (np.ndarray): a new HxWx3 uint8 image.
    """
    _check_image(image)
    masks = [_check_mask(mask, image.shape[:2]) for mask in masks]
    colors = mask_colors(len(masks)) if colors is None else np.asarray(colors, dtype=np.uint8)
    if colors.shape != (len(masks), 3):
        raise ValueError(f"Expected colors of shape ({len(masks)}, 3), got {colors.shape}.")
    order = np.argsort([-int(mask.sum()) for mask in masks], kind="stable")
    return paint_masks(image, (masks[index] for index in order), colors[order], alpha, contour_thickness, antialiased)


def paint_masks(
    image: np.ndarray,
    masks: Iterable[np.ndarray],
    colors: np.ndarray,
    alpha: float = 0.5,
    contour_thickness: int | None = None,
    antialiased: bool = True,
) -> np.ndarray:
    """
    Blend masks over an image in the given order (later masks on top), then outline each one.

    Masks are read one at a time, so they may be decoded lazily. Arguments as in overlay_masks,
    except that masks are drawn in order and colors (Nx3 uint8) are required; antialiased=False
    draws crisp outlines (pure CONTOUR_COLOR pixels).

    Returns:
      (np.ndarray): a new HxWx3 uint8 image.
    """
    _check_image(image)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    colors = np.asarray(colors, dtype=np.uint8)
    if colors.ndim != 2 or colors.shape[1] != 3:
        raise ValueError(f"Expected colors of shape (N, 3), got {colors.shape}.")
    if contour_thickness is None:
        contour_thickness = _line_width(image.shape[:2])
    pairs = iter(zip(masks, colors, strict=True))
    first = next(pairs, None)
    second = None if first is None else next(pairs, None)
    outlines = []
    if first is not None and second is None:  # one mask: the same float32 blend, as a table of the 256 values
        mask = _check_mask(first[0], image.shape[:2])
        table = np.rint(_blend(np.arange(256, dtype=np.float32)[:, None], first[1], alpha)).astype(np.uint8)
        out = image.copy()
        np.copyto(out, cv2.LUT(image, table[None]), where=mask[..., None])
        if contour_thickness > 0:
            outlines.append(mask_contours(mask))
    else:
        out = image.astype(np.float32)
        for mask, color in itertools.chain([pair for pair in (first, second) if pair is not None], pairs):
            mask = _check_mask(mask, image.shape[:2])
            out[mask] = _blend(out[mask], color, alpha)
            if contour_thickness > 0:
                outlines.append(mask_contours(mask))
        out = np.rint(out).astype(np.uint8)
    line_type = cv2.LINE_AA if antialiased else cv2.LINE_8
    for contours in outlines:
        cv2.drawContours(out, contours, -1, CONTOUR_COLOR, contour_thickness, line_type)
    return out


def _blend(values: np.ndarray, color: np.ndarray, alpha: float) -> np.ndarray:
    """float32 values (..., 3) blended towards an RGB colour with opacity alpha."""
    return values * (1.0 - alpha) + color.astype(np.float32) * alpha


def overlay_records(
    image: np.ndarray,
    records: Sequence[dict[str, Any]],
    alpha: float = 0.5,
    seed: int = 0,
    contours: bool = True,
) -> np.ndarray:
    """The image with every generator record's mask blended in its own colour: (H, W, 3) uint8 -> a new one.

    Colours are `mask_colors(len(records), seed)`; the largest masks (by `area`) are drawn first so that small
    masks stay visible on top. With `contours`, each mask's outline is drawn in white, one pixel wide, without
    antialiasing. Masks are decoded one at a time (any output mode: bool arrays or RLEs).
    """
    from mobile_sam.utils.rle import rle_to_mask

    def mask_of(record: dict[str, Any]) -> np.ndarray:
        segmentation = record["segmentation"]
        return segmentation if isinstance(segmentation, np.ndarray) else rle_to_mask(segmentation)

    order = np.array(sorted(range(len(records)), key=lambda i: -int(records[i]["area"])), dtype=np.int64)
    colors = mask_colors(len(records), seed)[order]
    masks = (mask_of(records[i]).astype(bool, copy=False) for i in order)
    return paint_masks(image, masks, colors, alpha, contour_thickness=1 if contours else 0, antialiased=False)


def mask_contours(mask: np.ndarray) -> list[np.ndarray]:
    """Outer and hole boundaries of an HxW bool mask, as OpenCV contours (each Kx1x2 int32, XY)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return list(contours)


def draw_prompts(
    image: np.ndarray,
    points: np.ndarray | Sequence[Sequence[float]] = (),
    labels: np.ndarray | Sequence[int] = (),
    boxes: np.ndarray | Sequence[Sequence[float]] = (),
    pending_corner: Sequence[float] | None = None,
) -> np.ndarray:
    """
    Draw point markers and boxes on a copy of an image.

    Arguments:
      image (np.ndarray): HxWx3 uint8 RGB.
      points: Nx2 XY pixel coordinates.
      labels: N labels, 1 = foreground (green), 0 = background (red).
      boxes: Mx4 XYXY pixel boxes.
      pending_corner: XY of the first corner of a box still being drawn, or None.

    Returns:
      (np.ndarray): a new HxWx3 uint8 image; the input is not modified.
    """
    _check_image(image)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(points) != len(labels):
        raise ValueError(f"Got {len(points)} points but {len(labels)} labels.")
    out = image.copy()
    width = _line_width(image.shape[:2])
    radius = max(3, 3 * width)
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(out, _xy(x0, y0), _xy(x1, y1), (0, 0, 0), width + 2, cv2.LINE_AA)
        cv2.rectangle(out, _xy(x0, y0), _xy(x1, y1), BOX_COLOR, width, cv2.LINE_AA)
    for (x, y), label in zip(points, labels):
        color = FOREGROUND_COLOR if label == 1 else BACKGROUND_COLOR
        cv2.circle(out, _xy(x, y), radius + width, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(out, _xy(x, y), radius, color, -1, cv2.LINE_AA)
    if pending_corner is not None:
        x, y = pending_corner
        size = 2 * radius
        cv2.drawMarker(out, _xy(x, y), (0, 0, 0), cv2.MARKER_CROSS, size + 2, width + 2)
        cv2.drawMarker(out, _xy(x, y), BOX_COLOR, cv2.MARKER_CROSS, size, width)
    return out


def cutout_rgba(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The masked part of an image on a transparent background: HxWx4 uint8 RGBA (alpha 255 inside)."""
    _check_image(image)
    mask = _check_mask(mask, image.shape[:2])
    alpha = mask.astype(np.uint8) * np.uint8(255)
    return np.dstack([image, alpha])


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        description = (
            f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        )
        raise TypeError(f"Expected an HxWx3 uint8 RGB image, got {description}.")


def _check_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != tuple(size):
        raise ValueError(f"Mask of shape {mask.shape} does not match the image size {tuple(size)}.")
    return mask.astype(bool, copy=False)


def _line_width(size: tuple[int, int]) -> int:
    """A line width readable at any image size: about 0.3% of the longest side, at least 1 px."""
    return max(1, int(round(max(size) / 320)))


def _xy(x: float, y: float) -> tuple[int, int]:
    return int(round(x)), int(round(y))
