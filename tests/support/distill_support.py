"""Shared fixtures for the distill tests: tiny photos, a saved random test teacher and its embedding store."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from distill.embed import embed_folder
from distill.models import TEST_TEACHER, build_model


def write_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` small non-square RGB PNGs with smooth structure (blobs), so embeddings differ between images."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        h, w = 48 + 4 * (i % 3), 60 - 3 * (i % 4)
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        image = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        path = folder / f"img_{i:02d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def save_teacher(path: Path, seed: int = 0) -> Path:
    """A random test teacher saved as a full Sam state dict (decoder outputs scaled so masks are not empty)."""
    torch.manual_seed(seed)
    teacher = build_model(TEST_TEACHER)
    with torch.no_grad():
        for mlp in teacher.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(20)
    torch.save(teacher.state_dict(), path)
    return path


def make_store(tmp: Path, count: int = 8) -> tuple[Path, Path, Path]:
    """(image folder, teacher checkpoint, store folder) with `count` embedded images."""
    images = tmp / "images"
    write_images(images, count)
    teacher = save_teacher(tmp / "teacher.pt")
    store = tmp / "store"
    embed_folder(images, store, TEST_TEACHER, teacher, "cpu", shard_size=3, show_progress=False)
    return images, teacher, store
