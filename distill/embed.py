"""Teacher embeddings for a folder of images, stored once for training (the paper's "save the image embeddings
beforehand"), in one process; `distill.ray_engine` runs the same work on Ray Data actors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from mobile_sam.modeling import Sam
from samkit.devices import resolve_device
from samkit.knobs import Rule, check_all
from samkit.models import PAPER_REFERENCE

from .encoding import encode_images, load_or_reason
from .models import build_model, checkpoint_sha256, embedding_shape, freeze, teacher_checkpoint
from .sources import list_images
from .store import StoreIndex, StoreWriter

COUNT = Rule(integer=True, low=1)
# The rule of every numeric option of `embed_folder` (the command line parses with the same rules).
RULES: dict[str, Rule] = {
    "batch_size": COUNT,
    "shard_size": COUNT,
    "limit": Rule(integer=True, low=1, none_ok=True),
    "workers": COUNT,
}


@dataclass(frozen=True)
class EmbedSummary:
    """What one `embed` run did: images embedded now, skipped (already stored), failed (listed in the index)."""

    embedded: int
    skipped: int
    failed: int
    total: int


def new_index(teacher: str, checkpoint: str | Path | None, model: Sam, image_root: str | Path) -> StoreIndex:
    return StoreIndex(
        teacher=teacher,
        checkpoint_sha256=checkpoint_sha256(checkpoint),
        image_size=model.image_size,
        embedding_shape=embedding_shape(model),
        image_root=str(Path(image_root).resolve()),
    )


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_local(
    model: Sam, root: Path, paths: list[str], writer: StoreWriter, batch_size: int, progress: Callable[[int], None]
) -> tuple[int, int]:
    """Embed `paths` (relative to `root`) in this process; returns (embedded, failed)."""
    embedded = failed = 0
    for chunk in _batches(paths, batch_size):
        loaded = [(path, *load_or_reason(root / path)) for path in chunk]
        good = [(path, image) for path, image, _ in loaded if image is not None]
        for path, _, reason in loaded:
            if reason is not None:
                writer.add_failure(path, reason)
                failed += 1
        if good:
            embeddings = encode_images(model, [image for _, image in good])
            for (path, image), embedding in zip(good, embeddings):
                writer.add(path, image.shape[:2], embedding)
            embedded += len(good)
        progress(len(chunk))
    return embedded, failed


def embed_folder(
    images: str | Path,
    output: str | Path,
    teacher: str = PAPER_REFERENCE,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    shard_size: int = 64,
    limit: int | None = None,
    engine: str = "local",
    workers: int = 1,
    show_progress: bool = True,
) -> EmbedSummary:
    """Store the teacher's embedding of every image under `images` in the store folder `output`.

    `checkpoint` defaults to the official file of `teacher` from the mobile_sam cache (downloaded if missing).
    Resumes an existing store (images already stored are skipped); unreadable images are listed in the index's
    `failures` and skipped. `engine` is "local" (this process) or "ray" (Ray Data actors, `workers` of them).
    """
    check_all(RULES, {"batch_size": batch_size, "shard_size": shard_size, "limit": limit, "workers": workers})
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}; choose 'local' or 'ray'")
    if engine == "ray":
        from samkit.ray_map import import_ray

        import_ray()  # a missing Ray is named before any work
    root = Path(images)
    paths = list_images(root, limit)
    device = resolve_device(device)
    checkpoint = teacher_checkpoint(teacher, checkpoint)
    if engine == "local":
        model = freeze(build_model(teacher, checkpoint).to(device))
    else:  # the actors load the weights; the driver only needs the shapes
        with torch.device("meta"):
            model = build_model(teacher)
    writer = StoreWriter(output, new_index(teacher, checkpoint, model, root), shard_size)
    todo = [p for p in paths if p not in writer.done]
    with tqdm(total=len(todo), desc=f"embed ({teacher})", unit="img", disable=not show_progress) as bar:
        if engine == "local":
            embedded, failed = run_local(model, root, todo, writer, batch_size, bar.update)
        else:
            from .ray_engine import run_ray

            embedded, failed = run_ray(teacher, checkpoint, device, root, todo, writer, batch_size, workers, bar.update)
    writer.flush()
    return EmbedSummary(embedded, len(paths) - len(todo), failed, len(paths))
