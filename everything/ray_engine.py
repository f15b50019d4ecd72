"""Dataset-scale segment everything on Ray Data (imported only for `python -m everything --engine ray`).

Image paths go through `Dataset.map_batches` with a fixed pool of actors, each holding one model replica
(one GPU each when the cluster has GPUs, else CPUs). The driver writes each image's COCO-RLE JSON as its
row arrives (atomically, `everything.results`), records failures instead of stopping, and merges the
results into `annotations.json` at the end. Images whose result file exists are skipped (resume).
Workers read the images from their paths, so on a multi-machine cluster the paths must be readable there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samkit.ray_map import ray_map

from .results import result_json, result_path, write_result
from .spec import GeneratorSpec


@dataclass
class RunSummary:
    """What a run did: images done now, skipped (already done) and failed ({"file", "name", "error"})."""

    done: list[str]
    skipped: list[str]
    failures: list[dict[str, Any]]


class ImageSegmenter:
    """A Ray Data actor: builds its generator once, then segments one row ({"path", "name"}) per call."""

    def __init__(self, spec: GeneratorSpec) -> None:
        self.generator = spec.build()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from samkit.images import load_image
        from samkit.writers import ImageMasks

        results, errors = [], []
        for path in batch["path"]:
            try:
                image = load_image(str(path))
                records = self.generator.generate(image)
                results.append(result_json(ImageMasks(str(path), int(image.shape[0]), int(image.shape[1]), records)))
                errors.append("")
            except Exception as error:  # one bad image must not stop the dataset; the driver records it
                results.append("")
                errors.append(f"{type(error).__name__}: {error}")
        return {
            "path": batch["path"],
            "name": batch["name"],
            "result": np.array(results, dtype=object),
            "error": np.array(errors, dtype=object),
        }


def run_ray(
    files: Sequence[Path],
    names: Sequence[str],
    out: Path,
    spec: GeneratorSpec,
    *,
    address: str | None = None,
    num_workers: int | None = None,
    on_image: Callable[[str, str], None] | None = None,
) -> RunSummary:
    """Segment `files` (output names `names`) into `out` with a Ray actor pool.

    address: None starts a local Ray on this machine (unless Ray is already initialised in this process);
    otherwise the address of an existing cluster ("auto", "ray://host:10001", ...). num_workers: actors
    (model replicas); default: one per GPU, else half the CPUs. on_image(name, status) is called as each
    image finishes ("done" or "failed").
    """
    pending = [(str(f), n) for f, n in zip(files, names) if not result_path(out, n).is_file()]
    skipped = [n for f, n in zip(files, names) if result_path(out, n).is_file()]
    summary = RunSummary(done=[], skipped=skipped, failures=[])
    if not pending:
        return summary
    spec = spec.resolved()  # find (or download) the weights once, here, not in every worker
    use_gpus = spec.device in ("auto", "cuda") or spec.device.startswith("cuda")
    remaining = {name: path for path, name in pending}
    items = [{"path": path, "name": name} for path, name in pending]
    with ray_map(
        items, ImageSegmenter, {"spec": spec}, workers=num_workers, use_gpus=use_gpus, address=address
    ) as rows:
        try:
            for row in rows:
                name = str(row["name"])
                remaining.pop(name, None)
                if row["error"]:
                    summary.failures.append({"file": str(row["path"]), "name": name, "error": str(row["error"])})
                    status = "failed"
                else:
                    write_result(out, name, str(row["result"]))
                    summary.done.append(name)
                    status = "done"
                if on_image is not None:
                    on_image(name, status)
        except Exception as error:  # a failed task or actor: what is unfinished is recorded, the rest is kept
            for name, path in remaining.items():
                summary.failures.append(
                    {"file": path, "name": name, "error": f"Ray task failed: {type(error).__name__}: {error}"}
                )
    return summary
