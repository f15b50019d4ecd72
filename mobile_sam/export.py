"""
Saving segmentation results: COCO RLE, mask PNG, RGBA cut-out PNG and COCO JSON, every file written atomically.

Masks are HxW bool arrays in the pixel frame of the image they were predicted for.
COCO RLE follows pycocotools: ``{"size": [H, W], "counts": str}`` in column-major order; pycocotools'
own compressed RLE holds the same runs with ``counts`` as bytes, and an uncompressed RLE as a list of ints.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .visualize import cutout_rgba


def mask_to_rle(mask: np.ndarray) -> dict:
    """Encode an HxW bool mask as COCO RLE with counts as a str (JSON-ready)."""
    return rle_to_json(encode_rle(_check_mask(mask)))


def encode_rle(mask: np.ndarray) -> dict:
    """An HxW bool mask -> pycocotools' compressed RLE (counts as bytes)."""
    return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))


def compressed_rle(rle: dict) -> dict:
    """Any RLE dict (counts as str, bytes or an uncompressed list of runs) -> pycocotools' compressed RLE."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError("Expected a COCO RLE dict with 'size' and 'counts'.")
    height, width = rle["size"]
    counts = rle["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects(rle, height, width)
    return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def rle_to_json(rle: dict) -> dict:
    """A compressed RLE with counts as bytes -> COCO RLE with counts as a str (JSON-ready)."""
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict) -> np.ndarray:
    """Decode an RLE dict (counts as str, bytes or an uncompressed list of runs) to an HxW bool mask."""
    return mask_utils.decode(compressed_rle(rle)).astype(bool)


def mask_bbox(mask: np.ndarray) -> list[int]:
    """The tight box around an HxW bool mask as XYWH pixels ([0, 0, 0, 0] for an empty mask)."""
    mask = _check_mask(mask)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return [0, 0, 0, 0]
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def mask_records(masks: np.ndarray | Sequence[np.ndarray], scores: Sequence[float]) -> list[dict]:
    """
    COCO-style annotation records, one per mask.

    Arguments:
      masks: N HxW bool masks.
      scores: N predicted IoU values.

    Returns:
      (list[dict]): each with "segmentation" (COCO RLE), "area" (pixels), "bbox" (XYWH) and
        "predicted_iou".
    """
    masks = list(masks)
    if len(masks) != len(scores):
        raise ValueError(f"Got {len(masks)} masks but {len(scores)} scores.")
    return [
        {
            "segmentation": mask_to_rle(mask),
            "area": int(np.count_nonzero(mask)),
            "bbox": mask_bbox(mask),
            "predicted_iou": float(score),
        }
        for mask, score in zip(masks, scores)
    ]


def save_mask_png(mask: np.ndarray, path: str | Path) -> Path:
    """Write an HxW bool mask as an 8-bit grayscale PNG (255 inside, 0 outside)."""
    return atomic_write_bytes(path, png_bytes(_check_mask(mask).astype(np.uint8) * np.uint8(255)))


def save_cutout_png(image: np.ndarray, mask: np.ndarray, path: str | Path) -> Path:
    """Write the masked part of an HxWx3 uint8 RGB image as an RGBA PNG, transparent outside the mask."""
    return atomic_write_bytes(path, png_bytes(cutout_rgba(image, mask)))


def save_coco_json(
    records: list[dict], image_size: tuple[int, int], path: str | Path, file_name: str = "image.png"
) -> Path:
    """
    Write annotation records (from mask_records) as a minimal COCO results file.

    The file holds one "images" entry (id 1, the given size (H, W) and file name) and the
    records as "annotations" with ids 1..N on image 1.
    """
    height, width = image_size
    annotations = [{"id": index + 1, "image_id": 1, **record} for index, record in enumerate(records)]
    document = {
        "images": [{"id": 1, "file_name": file_name, "height": int(height), "width": int(width)}],
        "annotations": annotations,
    }
    return atomic_write_bytes(path, json.dumps(document).encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it into place (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def png_bytes(array: np.ndarray) -> bytes:
    """PNG file contents of an HxW (grayscale), HxWx3 (RGB) or HxWx4 (RGBA) uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape[0] == 0 or mask.shape[1] == 0:
        raise ValueError(f"Expected a non-empty HxW mask, got shape {mask.shape}.")
    return mask.astype(bool, copy=False)
