"""
COCO run-length encoding of masks: the one codec every output of this project uses.

Masks are HxW bool arrays. COCO RLE follows pycocotools: ``{"size": [H, W], "counts": str}`` in column-major
order; pycocotools' own compressed RLE holds the same runs with ``counts`` as bytes, and an uncompressed RLE
as a list of ints. pycocotools is imported by the functions that need it (as the official package does).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def mask_to_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode an HxW bool mask as COCO RLE with counts as a str (JSON-ready)."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape[0] == 0 or mask.shape[1] == 0:
        raise ValueError(f"Expected a non-empty HxW mask, got shape {mask.shape}.")
    return rle_to_json(encode_rle(mask.astype(bool, copy=False)))


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """An HxW bool mask -> pycocotools' compressed RLE (counts as bytes)."""
    from pycocotools import mask as mask_utils

    return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))


def window_rle(window_t: np.ndarray, top: int, left: int, size: tuple[int, int]) -> dict[str, Any]:
    """pycocotools' compressed RLE of an (H, W) mask that is empty outside one window, from the window alone.

    window_t: the window's pixels transposed, (w, h) bool (its rows are image columns); its top-left pixel sits at
    image row `top`, column `left`; size: (H, W). The work is proportional to the window, not to the image.
    """
    from pycocotools import mask as mask_utils

    height, width = size
    columns, rows = window_t.shape
    if rows == height:  # whole columns: consecutive in the column-major order, one segment
        segments = window_t.reshape(1, -1)
        starts = np.array([left * height])
    else:  # every column's segment has a background pixel before and after it
        segments = window_t
        starts = (left + np.arange(columns)) * height + top
    length = segments.shape[1]
    padded = np.zeros((segments.shape[0], length + 2), dtype=bool)
    padded[:, 1:-1] = segments
    # A run starts at element `offset` of a segment where it differs from the element before.
    segment, offset = np.divmod(np.flatnonzero(padded[:, 1:] != padded[:, :-1]), length + 1)
    starts = starts[segment] + offset
    total = height * width
    counts = np.diff(np.concatenate([[0], starts[starts < total], [total]]))
    return mask_utils.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)


def compressed_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """Any RLE dict (counts as str, bytes or an uncompressed list of runs) -> pycocotools' compressed RLE."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError("Expected a COCO RLE dict with 'size' and 'counts'.")
    height, width = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, list):
        from pycocotools import mask as mask_utils

        return mask_utils.frPyObjects(rle, height, width)
    return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def rle_to_json(rle: dict[str, Any]) -> dict[str, Any]:
    """A compressed RLE with counts as bytes -> COCO RLE with counts as a str (JSON-ready)."""
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode an RLE dict (counts as str, bytes or an uncompressed list of runs) to an HxW bool mask."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode(compressed_rle(rle)).astype(bool)


def rle_area(rle: dict[str, Any]) -> int:
    """Pixels inside an RLE mask of any form."""
    from pycocotools import mask as mask_utils

    return int(mask_utils.area(compressed_rle(rle)))
