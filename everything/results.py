"""Per-image results of a dataset run: one COCO-RLE JSON file per image, merged into `annotations.json`.

Layout of an output folder:
  DIR/results/NAME.json   {"file_name", "height", "width", "records": [...]} (records in COCO RLE),
                          written atomically when the image is done; its presence marks the image done.
  DIR/annotations.json    every finished image of the input list, in input order (`samkit.writers`).
  DIR/failures.json       [{"file", "name", "error"}] of the last run's failures (retried on the next run).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mobile_sam.utils.atomic import atomic_write_bytes
from samkit.writers import ImageMasks, write_coco_json

RESULTS_FOLDER = "results"


def result_path(out: Path, name: str) -> Path:
    """Where the result of the image called `name` (see `unique_names`) is kept."""
    return Path(out) / RESULTS_FOLDER / f"{name}.json"


def result_json(image: ImageMasks) -> str:
    """The per-image JSON text of `image` (records in COCO RLE, as the generators give with output_mode="coco_rle")."""
    return json.dumps(
        {"file_name": image.file_name, "height": image.height, "width": image.width, "records": image.records}
    )


def write_result(out: Path, name: str, text: str) -> Path:
    """Write one image's `result_json` atomically."""
    return atomic_write_bytes(result_path(out, name), text.encode("utf-8"))


def read_result(path: Path) -> ImageMasks:
    """The `ImageMasks` of a per-image result file."""
    data = json.loads(Path(path).read_text())
    return ImageMasks(data["file_name"], int(data["height"]), int(data["width"]), data["records"])


def merge_results(out: Path, names: Sequence[str]) -> tuple[Path, int]:
    """Write `DIR/annotations.json` from the results of `names` that exist (input order); returns its path
    and the number of images in it."""
    images = [read_result(result_path(out, name)) for name in names if result_path(out, name).is_file()]
    return write_coco_json(Path(out) / "annotations.json", images), len(images)


def write_failures(out: Path, failures: list[dict[str, Any]]) -> Path:
    """Write `DIR/failures.json` (an empty list when nothing failed) atomically."""
    return atomic_write_bytes(Path(out) / "failures.json", json.dumps(failures, indent=1).encode("utf-8"))
