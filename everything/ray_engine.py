"""Dataset-scale segment everything on Ray Data (imported only for `python -m everything --engine ray`).

Image paths go through `Dataset.map_batches` with a fixed pool of actors, each holding one model replica
(one GPU each when the cluster has GPUs, else CPUs). Each actor segments its images with the function the local
engine uses (`everything.dataset.segment_image`); the driver writes each image's outputs as its row arrives
(`everything.results.write_image_outputs`: the PNGs from the records, the overlay from the image read again,
then the result JSON), so both engines leave the same output folder. Failures are recorded instead of stopping.
Workers read the images from their paths, so on a multi-machine cluster the paths must be readable there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from samkit.ray_map import ray_map

from .dataset import Job, OnImage, RunSummary, segment_image
from .inputs import ImageInput
from .results import read_result_text, result_json, write_image_outputs
from .spec import GeneratorSpec


class ImageSegmenter:
    """A Ray Data actor: builds its generator once, then segments one row ({"path", "name", "boxes"}) per call."""

    def __init__(self, spec: GeneratorSpec) -> None:
        self.generator = spec.build()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results, errors = [], []
        for path, name, boxes in zip(batch["path"], batch["name"], batch["boxes"]):  # boxes: JSON text or ""
            job = Job(ImageInput(Path(str(path)), str(name)), np.array(json.loads(boxes)) if boxes else None)
            try:
                masks, _ = segment_image(self.generator, job)
                results.append(result_json(masks))
                errors.append("")
            except Exception as error:  # one bad image must not stop the dataset; the driver records it
                results.append("")
                errors.append(f"{type(error).__name__}: {error}")
        return {
            "name": batch["name"],
            "result": np.array(results, dtype=object),
            "error": np.array(errors, dtype=object),
        }


def run_ray(
    spec: GeneratorSpec,
    jobs: Sequence[Job],
    out: Path,
    *,
    pngs: bool,
    overlay: bool,
    address: str | None = None,
    num_workers: int | None = None,
    on_image: OnImage | None = None,
) -> RunSummary:
    """Segment `jobs` with a Ray actor pool (each actor builds `spec`, a resolved spec) into `out`.

    address: None starts a local Ray on this machine (unless Ray is already initialised in this process);
    otherwise the address of an existing cluster ("auto", "ray://host:10001", ...). num_workers: actors
    (model replicas); default: one per GPU, else half the CPUs. on_image(name, status) is called as each
    image finishes ("done" or "failed").
    """
    summary = RunSummary()
    if not jobs:
        return summary
    use_gpus = spec.device in ("auto", "cuda") or spec.device.startswith("cuda")
    remaining = {job.item.name: job for job in jobs}
    items = [
        {
            "path": str(job.item.path),
            "name": job.item.name,
            "boxes": "" if job.boxes is None else json.dumps(job.boxes.tolist()),
        }
        for job in jobs
    ]
    with ray_map(
        items, ImageSegmenter, {"spec": spec}, workers=num_workers, use_gpus=use_gpus, address=address
    ) as rows:
        try:
            for row in rows:
                job = remaining.pop(str(row["name"]))
                status = _write_row(row, job, out, pngs, overlay, summary)
                if on_image is not None:
                    on_image(job.item.name, status)
        except Exception as error:  # a failed task or actor: what is unfinished is recorded, the rest is kept
            for job in remaining.values():
                summary.fail(job, f"Ray task failed: {type(error).__name__}: {error}")
    return summary


def _write_row(row: dict, job: Job, out: Path, pngs: bool, overlay: bool, summary: RunSummary) -> str:
    """Write the outputs of a finished row (the overlay reads the image again); "done" or "failed"."""
    from samkit.images import load_image

    if row["error"]:
        summary.fail(job, str(row["error"]))
        return "failed"
    try:
        image = load_image(job.item.path) if overlay else None
        write_image_outputs(out, job.item.name, read_result_text(str(row["result"])), image, pngs, overlay)
    except (ValueError, OSError) as error:
        summary.fail(job, error)
        return "failed"
    summary.done.append(job.item.name)
    return "done"
