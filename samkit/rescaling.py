"""
Masks moved from the image a generator worked on to a larger (or smaller) copy of the same image.

A server segments a downscaled working copy (e.g. 1024x683) and gives the masks in the pixels of the image the
visitor uploaded (e.g. 1800x1200). Masks are resized by **nearest neighbour at pixel centres**: each target pixel
takes the value of the working pixel its centre falls in (as PIL's NEAREST and OpenCV's INTER_NEAREST_EXACT do,
but for centres exactly on an edge, `nearest_indices`), so a mask covers the same part of the picture in both
frames and nothing is invented: edges keep the working copy's resolution (steps of W/w target pixels).

The records' coordinates (`point_coords`, `box`, `crop_box`) scale by (W/w, H/h). `area` and `bbox` are those of
the resized masks, `bbox` in the generators' convention (the official `SamAutomaticMaskGenerator`'s XYWH:
[x0, y0, x1 - x0, y1 - y0] with (x1, y1) the last pixel inside, one less than COCO's width and height;
[0, 0, 0, 0] when empty). Scores (`predicted_iou`, `stability_score`) and the order of the records are the
working copy's. The work is one gather and one RLE encoding per mask at the target size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mobile_sam.utils.cancel import CancelFlag, raise_if_cancelled
from mobile_sam.utils.rle import compressed_rle, rle_to_json

# Coordinates of a record in pixels of its image: XY points, XYXY boxes, XYWH crop boxes (integers).
_POINTS, _BOXES, _CROP_BOX = "point_coords", "box", "crop_box"


def nearest_indices(source: int, target: int) -> np.ndarray:
    """(target,) int: along one axis, the source pixel whose extent [j, j + 1) holds the centre of each target
    pixel, (i + 0.5) * source / target, in exact integer arithmetic (a centre on the edge of two pixels belongs to
    the second; Pillow and OpenCV decide those ties by floating-point rounding, either way)."""
    if source < 1 or target < 1:
        raise ValueError(f"sizes must be positive, got {source} -> {target}")
    return (2 * np.arange(target, dtype=np.int64) + 1) * source // (2 * target)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An HxW mask resized to size (H', W') by nearest neighbour at pixel centres."""
    return mask[nearest_indices(mask.shape[0], size[0])][:, nearest_indices(mask.shape[1], size[1])]


def generator_bbox(coco_bbox: Sequence[float]) -> list[int]:
    """A COCO XYWH box of a mask (pycocotools' `toBbox`: width and height in pixels) in the generators' convention."""
    x, y, width, height = (int(v) for v in coco_bbox)
    return [x, y, width - 1, height - 1] if width > 0 and height > 0 else [0, 0, 0, 0]


def rescale_records(
    records: Sequence[dict[str, Any]],
    source_size: tuple[int, int],
    target_size: tuple[int, int],
    cancel: CancelFlag | None = None,
) -> list[dict[str, Any]]:
    """The records (segmentation as COCO RLE of source_size (H, W)) in the pixels of target_size (H', W'):
    segmentation (COCO RLE, str counts), area and bbox (XYWH) of the resized masks, coordinates scaled.

    Raises:
      ValueError: a segmentation is not of source_size.
      Cancelled: cancel was set (checked between masks).
    """
    from pycocotools import mask as mask_utils

    source_size, target_size = tuple(map(int, source_size)), tuple(map(int, target_size))
    rows = nearest_indices(source_size[0], target_size[0])
    columns = nearest_indices(source_size[1], target_size[1])
    scale = np.array([target_size[1] / source_size[1], target_size[0] / source_size[0]])
    rescaled = []
    for record in records:
        raise_if_cancelled(cancel)
        rle = compressed_rle(record["segmentation"])
        if tuple(int(v) for v in rle["size"]) != source_size:
            raise ValueError(f"a mask is {rle['size']} (H, W), expected {list(source_size)}")
        # Decoded column-major: its transpose is row-major (W, H), gathered to (W', H'), whose transpose is the
        # column-major (H', W') mask the encoder takes without a copy.
        transposed = mask_utils.decode(rle).T
        target = np.ascontiguousarray(transposed[columns][:, rows]).T
        encoded = mask_utils.encode(target)
        out = dict(record)
        out["segmentation"] = rle_to_json(encoded)
        out["area"] = int(mask_utils.area(encoded))
        out["bbox"] = generator_bbox(mask_utils.toBbox(encoded))
        if _POINTS in record:
            out[_POINTS] = (np.asarray(record[_POINTS], dtype=np.float64) * scale).tolist()
        if _BOXES in record:
            out[_BOXES] = (np.asarray(record[_BOXES], dtype=np.float64) * np.tile(scale, 2)).tolist()
        if _CROP_BOX in record:
            x0, y0, w, h = (float(v) for v in record[_CROP_BOX])
            corners = np.rint(np.array([x0, y0, x0 + w, y0 + h]) * np.tile(scale, 2)).astype(int)
            out[_CROP_BOX] = [
                int(corners[0]),
                int(corners[1]),
                int(corners[2] - corners[0]),
                int(corners[3] - corners[1]),
            ]
        rescaled.append(out)
    return rescaled
