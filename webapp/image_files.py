"""Images handed to Gradio's image components as PNG files written here.

Given an array, Gradio encodes it with PIL's PNG encoder at zlib level 6 (tens of milliseconds for a 1024-px canvas,
on every click); OpenCV's encoder at PNG_LEVEL writes the same pixels several times faster, for a file a few
percent larger. Gradio copies each file into its own cache when the event answers, so a folder keeps only its
newest `keep` files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

PNG_LEVEL = 1


def png_file(image: np.ndarray, folder: str | Path, keep: int = 12) -> str:
    """image (H, W, 3) uint8 RGB as a new PNG file in folder (created when missing); returns its path. The folder's
    older files beyond the newest `keep` are deleted.

    Raises:
        ValueError: image is not an HxWx3 uint8 array, or keep is below 1.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {getattr(image, 'shape', type(image).__name__)}")
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
    if not ok:
        raise ValueError("OpenCV could not encode the image as PNG")
    handle, name = tempfile.mkstemp(suffix=".png", dir=folder)
    with os.fdopen(handle, "wb") as file:
        file.write(data.tobytes())
    older = sorted((p for p in folder.glob("*.png") if p.name != Path(name).name), key=_mtime, reverse=True)
    for stale in older[keep - 1 :]:
        stale.unlink(missing_ok=True)
    return name


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0.0
