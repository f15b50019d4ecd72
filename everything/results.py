"""The output folder of `python -m everything`, the same whichever engine ran it.

Layout of an output folder (NAME: the image's output name, its path relative to its input root, see
`everything.inputs`):
  DIR/run.json                   the settings the results were made with, and the file behind every NAME
                                 (`everything.run_record`); a rerun reuses results only when they match.
  DIR/results/NAME.json          {"file_name", "height", "width", "records": [...]} (records in COCO RLE), written
                                 atomically when the image is done, after its PNGs; its presence marks NAME done.
  DIR/masks/NAME/mask_NNNN.png   one PNG per mask (--format png or both); DIR/masks/NAME/overlay.png.
  DIR/annotations.json           COCO: one image entry per input of the last run that has a result, input order;
                                 its "info" names the pipeline that made them (`everything.pipelines`).
  DIR/failures.json              [{"file", "name", "error"}] of the last run's failures (retried on the next run).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mobile_sam.utils.atomic import atomic_write_bytes
from samkit.writers import ImageMasks, write_coco_json, write_mask_pngs, write_overlay_png

RESULTS_FOLDER = "results"
MASKS_FOLDER = "masks"
ANNOTATIONS_FILE = "annotations.json"
FAILURES_FILE = "failures.json"
OVERLAY_FILE = "overlay.png"


def result_path(out: Path, name: str) -> Path:
    """Where the result of the image called `name` is kept."""
    return Path(out) / RESULTS_FOLDER / f"{name}.json"


def mask_folder(out: Path, name: str) -> Path:
    """The folder of the image's mask PNGs and overlay."""
    return Path(out) / MASKS_FOLDER / name


def result_json(image: ImageMasks) -> str:
    """The per-image JSON text of `image` (records in COCO RLE, as the generators give with output_mode="coco_rle")."""
    return json.dumps(
        {"file_name": image.file_name, "height": image.height, "width": image.width, "records": image.records}
    )


def read_result_text(text: str) -> ImageMasks:
    """The `ImageMasks` of a per-image result JSON text (the inverse of `result_json`)."""
    data = json.loads(text)
    return ImageMasks(data["file_name"], int(data["height"]), int(data["width"]), data["records"])


def read_result(path: Path) -> ImageMasks:
    """The `ImageMasks` of a per-image result file."""
    return read_result_text(Path(path).read_text())


def write_image_outputs(
    out: Path, name: str, masks: ImageMasks, image: np.ndarray | None, pngs: bool, overlay: bool
) -> None:
    """Write one finished image: its mask PNGs and overlay (`image`, HxWx3 uint8, is needed for the overlay),
    then its result JSON, which marks it done. PNGs left by an interrupted attempt are removed first."""
    folder = mask_folder(out, name)
    for stale in [*folder.glob("mask_*.png"), folder / OVERLAY_FILE]:
        stale.unlink(missing_ok=True)
    if pngs:
        write_mask_pngs(folder, masks.records)
    if overlay:
        if image is None:
            raise ValueError("the overlay needs the image")
        write_overlay_png(folder / OVERLAY_FILE, image, masks.records)
    atomic_write_bytes(result_path(out, name), result_json(masks).encode("utf-8"))


def merge_results(out: Path, names: Sequence[str], info: Mapping[str, Any] | None = None) -> tuple[Path, int]:
    """Write `DIR/annotations.json` from the results of `names` that exist (input order), with `info` (e.g. the
    pipeline) in its "info"; returns its path and the number of images in it."""
    images = [read_result(result_path(out, name)) for name in names if result_path(out, name).is_file()]
    return write_coco_json(Path(out) / ANNOTATIONS_FILE, images, info), len(images)


def write_failures(out: Path, failures: list[dict[str, Any]]) -> Path:
    """Write `DIR/failures.json` (an empty list when nothing failed) atomically."""
    return atomic_write_bytes(Path(out) / FAILURES_FILE, json.dumps(failures, indent=1).encode("utf-8"))
