"""The `embed --engine ray` engine: teacher replicas as Ray Data actors; the driver writes the store.

Imported only when that engine is chosen (`import distill` never imports ray). Each actor loads the teacher
once and embeds batches of paths; unreadable images come back as errors, not exceptions, so one bad file
does not fail the run. Results arrive in any order; the store keys them by path, so resuming works as with
the local engine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from samkit.ray_map import ray_map

from .encoding import encode_images, load_or_reason
from .models import build_model, freeze
from .store import StoreWriter


class TeacherActor:
    """One teacher replica: a batch {"path": (n,)} -> {"path", "error", "height", "width", "embedding"}."""

    def __init__(self, teacher: str, checkpoint: str | None, device: str, root: str) -> None:
        self.model = freeze(build_model(teacher, checkpoint).to(device))
        self.root = Path(root)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["path"]]
        loaded = [load_or_reason(self.root / p) for p in paths]
        good = [image for image, _ in loaded if image is not None]
        encoded = iter(encode_images(self.model, good).astype(np.float16)) if good else iter(())
        size = (self.model.prompt_encoder.embed_dim, *self.model.prompt_encoder.image_embedding_size)
        embeddings = [next(encoded) if image is not None else np.zeros(size, np.float16) for image, _ in loaded]
        return {
            "path": np.array(paths),
            "error": np.array([reason or "" for _, reason in loaded]),
            "height": np.array([0 if image is None else image.shape[0] for image, _ in loaded]),
            "width": np.array([0 if image is None else image.shape[1] for image, _ in loaded]),
            "embedding": np.stack(embeddings),
        }


def run_ray(
    teacher: str,
    checkpoint: str | Path | None,
    device: str | torch.device,
    root: Path,
    paths: list[str],
    writer: StoreWriter,
    batch_size: int,
    workers: int,
    progress: Callable[[int], None],
) -> tuple[int, int]:
    """Embed `paths` with `workers` Ray actors (a local Ray unless one is running); returns (embedded, failed)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if not paths:
        return 0, 0
    embedded = failed = 0
    kwargs = {
        "teacher": teacher,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "device": str(device),
        "root": str(root),
    }
    gpu = torch.device(device).type == "cuda"
    items = [{"path": p} for p in paths]
    with ray_map(items, TeacherActor, kwargs, workers=workers, batch_size=batch_size, use_gpus=gpu) as rows:
        for row in rows:
            if row["error"]:
                writer.add_failure(str(row["path"]), str(row["error"]))
                failed += 1
            else:
                writer.add(str(row["path"]), (int(row["height"]), int(row["width"])), row["embedding"])
                embedded += 1
            progress(1)
    return embedded, failed
