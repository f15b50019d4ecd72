"""Segment everything over a list of images, in this process; `everything.ray_engine` does the same on Ray.

Both engines segment each image with `segment_image` and hand it to `write_image_outputs` (PNGs, overlay, then
the result JSON that marks it done, `everything.results`), so that their output folders are the same. A failing
image is recorded and never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samkit.writers import ImageMasks

from .inputs import ImageInput
from .results import write_image_outputs

# Called as on_image(name, status) when an image is finished: "done" or "failed".
OnImage = Callable[[str, str], None]


@dataclass(frozen=True)
class Job:
    """One image to segment: the input and, with caller boxes, its (N, 4) XYXY boxes."""

    item: ImageInput
    boxes: np.ndarray | None = None


@dataclass
class RunSummary:
    """What a run did: names done now, skipped (done by an earlier run) and failed ({"file", "name", "error"})."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, job: Job, error: BaseException | str) -> None:
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.failures.append({"file": str(job.item.path), "name": job.item.name, "error": reason})


def segment_image(generator: Any, job: Job) -> tuple[ImageMasks, np.ndarray]:
    """The records (COCO RLE) of one image and the HxWx3 uint8 image; raises whatever loading or segmenting
    raises (`samkit.images.ImageLoadError` for a file that is not a readable image)."""
    from samkit.images import load_image

    image = load_image(job.item.path)
    if job.boxes is None:
        records = generator.generate(image)
    else:
        records = generator.generate(image, boxes=job.boxes)
    return ImageMasks(job.item.name, int(image.shape[0]), int(image.shape[1]), records), image


def run_local(
    generator: Any,
    jobs: Sequence[Job],
    out: Path,
    *,
    pngs: bool,
    overlay: bool,
    on_image: OnImage | None = None,
) -> RunSummary:
    """Segment `jobs` one after the other with `generator` and write their outputs into `out`."""
    summary = RunSummary()
    for job in jobs:
        try:
            masks, image = segment_image(generator, job)
            write_image_outputs(out, job.item.name, masks, image, pngs, overlay)
        except (ValueError, OSError, RuntimeError) as error:  # an unreadable image, bad boxes, a full disk
            summary.fail(job, error)
            status = "failed"
        else:
            summary.done.append(job.item.name)
            status = "done"
        if on_image is not None:
            on_image(job.item.name, status)
    return summary
