"""Writing generator records: COCO JSON, one PNG per mask, and an overlay PNG; every file written atomically.

Records are the generator's output in any output mode (`segmentation` as an (H, W) bool array, an
uncompressed RLE, or a COCO RLE). COCO annotations use compressed RLE with `counts` as str and a single
category, "object" (segment-everything masks carry no class). RLE coding, PNG encoding, atomic writes and
drawing come from `mobile_sam.export` and `mobile_sam.visualize`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobile_sam.export import atomic_write_bytes, mask_to_rle, png_bytes, rle_to_mask
from mobile_sam.utils.amg import coco_encode_rle
from mobile_sam.visualize import mask_colors, paint_masks

CATEGORY = {"id": 1, "name": "object", "supercategory": "object"}


@dataclass
class ImageMasks:
    """The masks generated for one image, as they go into a COCO file."""

    file_name: str
    height: int
    width: int
    records: list[dict[str, Any]]


def record_mask(record: dict[str, Any]) -> np.ndarray:
    """The (H, W) bool mask of a record, whatever its output mode."""
    segmentation = record["segmentation"]
    return segmentation.astype(bool, copy=False) if isinstance(segmentation, np.ndarray) else rle_to_mask(segmentation)


def _coco_rle(segmentation: np.ndarray | dict[str, Any]) -> dict[str, Any]:
    """COCO RLE (counts as str) of a record's segmentation: a bool mask, an uncompressed RLE or a COCO RLE."""
    return mask_to_rle(segmentation) if isinstance(segmentation, np.ndarray) else coco_encode_rle(segmentation)


def coco_dict(images: Sequence[ImageMasks]) -> dict[str, Any]:
    """A complete COCO dataset dict: `images`, `annotations` (RLE, bbox XYWH, area, score) and `categories`.

    Image and annotation ids start at 1. Besides the COCO fields, each annotation keeps the generator's
    `predicted_iou`, `stability_score`, `point_coords` and `crop_box`; `score` is the predicted IoU.
    """
    coco_images, annotations = [], []
    for image_id, image in enumerate(images, start=1):
        coco_images.append({"id": image_id, "file_name": image.file_name, "height": image.height, "width": image.width})
        for record in image.records:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY["id"],
                    "segmentation": _coco_rle(record["segmentation"]),
                    "area": int(record["area"]),
                    "bbox": [int(v) for v in record["bbox"]],
                    "iscrowd": 0,
                    "score": float(record["predicted_iou"]),
                    "predicted_iou": float(record["predicted_iou"]),
                    "stability_score": float(record["stability_score"]),
                    "point_coords": [[float(v) for v in point] for point in record["point_coords"]],
                    "crop_box": [int(v) for v in record["crop_box"]],
                }
            )
    return {
        "info": {"description": "MobileSAM segment-everything masks"},
        "images": coco_images,
        "annotations": annotations,
        "categories": [dict(CATEGORY)],
    }


def write_coco_json(path: str | Path, images: Sequence[ImageMasks]) -> Path:
    """Write `coco_dict(images)` to `path` atomically."""
    return atomic_write_bytes(path, json.dumps(coco_dict(images)).encode("utf-8"))


def write_mask_pngs(directory: str | Path, records: Sequence[dict[str, Any]], prefix: str = "mask") -> list[Path]:
    """One 8-bit PNG per record (255 inside the mask, 0 outside): `{prefix}_{index:04d}.png` in `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [
        atomic_write_bytes(directory / f"{prefix}_{i:04d}.png", png_bytes(record_mask(record).astype(np.uint8) * 255))
        for i, record in enumerate(records)
    ]


def overlay_masks(
    image: np.ndarray,
    records: Sequence[dict[str, Any]],
    alpha: float = 0.5,
    seed: int = 0,
    contours: bool = True,
) -> np.ndarray:
    """The image with every mask blended in its own colour: (H, W, 3) uint8 -> (H, W, 3) uint8.

    Colours are `mobile_sam.visualize.mask_colors(len(records), seed)`; the largest masks (by `area`) are
    drawn first so that small masks stay visible on top. With `contours`, each mask's outline is drawn in
    white, one pixel wide. Masks are decoded one at a time.
    """
    order = np.array(sorted(range(len(records)), key=lambda i: -int(records[i]["area"])), dtype=np.int64)
    colors = mask_colors(len(records), seed)[order]
    masks = (record_mask(records[i]) for i in order)
    return paint_masks(image, masks, colors, alpha, contour_thickness=1 if contours else 0, antialiased=False)


def write_overlay_png(path: str | Path, image: np.ndarray, records: Sequence[dict[str, Any]], **kwargs: Any) -> Path:
    """Write `overlay_masks(image, records, **kwargs)` as a PNG atomically."""
    return atomic_write_bytes(path, png_bytes(overlay_masks(image, records, **kwargs)))
