"""Writing generator records: COCO JSON, one PNG per mask, and an overlay PNG; every file written atomically.

Records are the generator's output in any output mode (`segmentation` as an (H, W) bool array, an
uncompressed RLE, or a COCO RLE). COCO annotations use compressed RLE with `counts` as str and a single
category, "object" (segment-everything masks carry no class).
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

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
    return mask_utils.decode(_compressed_rle(record["segmentation"])).astype(bool)


def _compressed_rle(segmentation: np.ndarray | dict[str, Any]) -> dict[str, Any]:
    """pycocotools' compressed RLE (counts as bytes) of a bool mask, an uncompressed RLE or a COCO RLE."""
    if isinstance(segmentation, np.ndarray):
        return mask_utils.encode(np.asfortranarray(segmentation, dtype=np.uint8))
    height, width = segmentation["size"]
    counts = segmentation["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return {"size": [height, width], "counts": counts.encode("utf-8") if isinstance(counts, str) else counts}


def coco_dict(images: Sequence[ImageMasks]) -> dict[str, Any]:
    """A complete COCO dataset dict: `images`, `annotations` (RLE, bbox XYWH, area, score) and `categories`.

    Image and annotation ids start at 1. Besides the COCO fields, each annotation keeps the generator's
    `predicted_iou`, `stability_score`, `point_coords` and `crop_box`; `score` is the predicted IoU.
    """
    coco_images, annotations = [], []
    for image_id, image in enumerate(images, start=1):
        coco_images.append({"id": image_id, "file_name": image.file_name, "height": image.height, "width": image.width})
        for record in image.records:
            rle = _compressed_rle(record["segmentation"])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY["id"],
                    "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("utf-8")},
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
        atomic_write_bytes(directory / f"{prefix}_{i:04d}.png", _png_bytes(record_mask(record).astype(np.uint8) * 255))
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

    Colours are random but fixed by `seed`; the largest masks are drawn first so that small masks stay
    visible on top. With `contours`, each mask's outline is drawn in white.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    canvas = image.astype(np.float32)
    colours = np.random.default_rng(seed).integers(0, 256, (len(records), 3)).astype(np.float32)
    order = sorted(range(len(records)), key=lambda i: -int(records[i]["area"]))
    outlines = []
    for i in order:
        mask = record_mask(records[i])
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask of shape {mask.shape} does not fit an image of shape {image.shape[:2]}")
        canvas[mask] = canvas[mask] * (1.0 - alpha) + colours[i] * alpha
        if contours:
            found, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            outlines.extend(found)
    result = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    if outlines:
        cv2.drawContours(result, outlines, -1, (255, 255, 255), 1)
    return result


def write_overlay_png(path: str | Path, image: np.ndarray, records: Sequence[dict[str, Any]], **kwargs: Any) -> Path:
    """Write `overlay_masks(image, records, **kwargs)` as a PNG atomically."""
    return atomic_write_bytes(path, _png_bytes(overlay_masks(image, records, **kwargs)))


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


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
