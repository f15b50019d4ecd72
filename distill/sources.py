"""Listing the images of a dataset folder: plain images, or the SA-1B layout (sa_*.jpg beside sa_*.json)."""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: str | Path, limit: int | None = None) -> list[str]:
    """Image paths under `folder` (recursive), relative to it, sorted; the first `limit` when given.

    Files are chosen by suffix (case-insensitive); the SA-1B annotation files (sa_*.json) are not images and are
    ignored, so an extracted SA-1B tar works as is. Unreadable files are found later, when they are loaded.
    """
    root = Path(folder)
    if root.is_file():
        raise ValueError(f"{root} is a file, not a folder: give the folder of images to embed")
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    paths = sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    return paths[:limit] if limit is not None else paths
