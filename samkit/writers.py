"""
Writing results: mask PNGs, RGBA cut-outs, COCO JSON and overlays, every file written atomically.

Masks are HxW bool arrays in the pixel frame of the image they were predicted for. Records are the
generators' (or `mask_records`') dicts with `segmentation` as an (H, W) bool array, an uncompressed RLE or a
COCO RLE (the codec is `mobile_sam.utils.rle`). COCO files use compressed RLE with `counts` as str and a single
category, "object" (these masks carry no class). Files are written by `mobile_sam.utils.atomic`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mobile_sam.utils.amg import coco_encode_rle
from mobile_sam.utils.atomic import atomic_write_bytes
from mobile_sam.utils.rle import mask_to_rle, rle_to_mask

from .drawing import cutout_rgba, overlay_records

CATEGORY = {"id": 1, "name": "object", "supercategory": "object"}
# The generators' fields that go into COCO annotations beside the standard ones, with their types.
_EXTRA_FIELDS = {"stability_score": float, "point_coords": None, "crop_box": None, "box": None}


@dataclass
class ImageMasks:
    """The masks of one image, as they go into a COCO file."""

    file_name: str
    height: int
    width: int
    records: list[dict[str, Any]]


def png_bytes(array: np.ndarray) -> bytes:
    """PNG file contents of an HxW (grayscale), HxWx3 (RGB) or HxWx4 (RGBA) uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def mask_bbox(mask: np.ndarray) -> list[int]:
    """The tight box around an HxW bool mask as XYWH pixels ([0, 0, 0, 0] for an empty mask)."""
    mask = _check_mask(mask)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return [0, 0, 0, 0]
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def mask_records(masks: np.ndarray | Sequence[np.ndarray], scores: Sequence[float]) -> list[dict[str, Any]]:
    """
    Records of interactive masks, one per mask: "segmentation" (COCO RLE), "area" (pixels), "bbox" (XYWH)
    and "predicted_iou". masks: N HxW bool masks; scores: N predicted IoU values.
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


def record_mask(record: dict[str, Any]) -> np.ndarray:
    """The (H, W) bool mask of a record, whatever its output mode."""
    segmentation = record["segmentation"]
    return segmentation.astype(bool, copy=False) if isinstance(segmentation, np.ndarray) else rle_to_mask(segmentation)


def coco_dict(images: Sequence[ImageMasks], info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A complete COCO dataset dict: `info` (a description, and `info`'s entries: what made the masks), `images`,
    `annotations` (RLE, bbox XYWH, area, score) and `categories`.

    Image and annotation ids start at 1. `score` is the record's predicted IoU; the generators' other fields
    (`stability_score`, `point_coords`, `crop_box`, `box`) are kept where the records have them.
    """
    coco_images, annotations = [], []
    for image_id, image in enumerate(images, start=1):
        coco_images.append({"id": image_id, "file_name": image.file_name, "height": image.height, "width": image.width})
        for record in image.records:
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": CATEGORY["id"],
                "segmentation": _coco_rle(record["segmentation"]),
                "area": int(record["area"]),
                "bbox": [int(v) for v in record["bbox"]],
                "iscrowd": 0,
                "score": float(record["predicted_iou"]),
                "predicted_iou": float(record["predicted_iou"]),
            }
            for name in _EXTRA_FIELDS:
                if name in record:
                    annotation[name] = _json_ready(record[name])
            annotations.append(annotation)
    return {
        "info": {"description": "MobileSAM masks", **(info or {})},
        "images": coco_images,
        "annotations": annotations,
        "categories": [dict(CATEGORY)],
    }


def write_coco_json(path: str | Path, images: Sequence[ImageMasks], info: Mapping[str, Any] | None = None) -> Path:
    """Write `coco_dict(images, info)` to `path` atomically."""
    return atomic_write_bytes(path, json.dumps(coco_dict(images, info)).encode("utf-8"))


def save_mask_png(mask: np.ndarray, path: str | Path) -> Path:
    """Write an HxW bool mask as an 8-bit grayscale PNG (255 inside, 0 outside)."""
    return atomic_write_bytes(path, png_bytes(_check_mask(mask).astype(np.uint8) * np.uint8(255)))


def write_mask_pngs(directory: str | Path, records: Sequence[dict[str, Any]], prefix: str = "mask") -> list[Path]:
    """One mask PNG (`save_mask_png`) per record: `{prefix}_{index:04d}.png` in `directory`."""
    return [
        save_mask_png(record_mask(record), Path(directory) / f"{prefix}_{i:04d}.png")
        for i, record in enumerate(records)
    ]


def save_cutout_png(image: np.ndarray, mask: np.ndarray, path: str | Path) -> Path:
    """Write the masked part of an HxWx3 uint8 RGB image as an RGBA PNG, transparent outside the mask."""
    return atomic_write_bytes(path, png_bytes(cutout_rgba(image, mask)))


def write_overlay_png(path: str | Path, image: np.ndarray, records: Sequence[dict[str, Any]], **kwargs: Any) -> Path:
    """Write `samkit.drawing.overlay_records(image, records, **kwargs)` as a PNG atomically."""
    return atomic_write_bytes(path, png_bytes(overlay_records(image, records, **kwargs)))


def _coco_rle(segmentation: np.ndarray | dict[str, Any]) -> dict[str, Any]:
    """COCO RLE (counts as str) of a record's segmentation: a bool mask, an uncompressed RLE or a COCO RLE."""
    return mask_to_rle(segmentation) if isinstance(segmentation, np.ndarray) else coco_encode_rle(segmentation)


def _json_ready(value: Any) -> Any:
    """Nested lists of Python floats and ints from numpy scalars, arrays and lists of them."""
    return np.asarray(value).tolist() if isinstance(value, (np.ndarray, np.generic, list, tuple)) else value


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape[0] == 0 or mask.shape[1] == 0:
        raise ValueError(f"Expected a non-empty HxW mask, got shape {mask.shape}.")
    return mask.astype(bool, copy=False)
