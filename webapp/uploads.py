"""Reading a visitor's upload: upright RGB, size-limited, errors naming the file as the visitor knows it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from samkit.images import ImageLoadError, limit_image_side, load_image

NO_IMAGE = "Upload an image or pick an example first."


@dataclass(frozen=True)
class Upload:
    """An uploaded image as the models see it."""

    image: np.ndarray  # HxWx3 uint8, upright, longest side at most the server's limit
    name: str  # the file's stem
    original_size: tuple[int, int]  # (H, W) of the file, upright
    scale: float  # image pixels per original pixel (1.0 when not downscaled)
    notice: str  # "" or a sentence saying the image was downscaled
    file_name: str  # the file's name as uploaded (e.g. truck.jpg), no folder

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """Original-pixel coordinates (any shape, last axis XY or XYXY) -> image pixels."""
        return np.asarray(xy, dtype=np.float64) * self.scale


def read_upload(path: str | None, max_side: int) -> Upload:
    """
    Load an uploaded file upright as RGB, downscaled so its longest side is at most max_side.

    Raises:
      ValueError: no file.
      ImageLoadError: not a readable image (the message names the file, never a server path).
    """
    if path is None:
        raise ValueError(NO_IMAGE)
    name = Path(path).name
    try:
        image = load_image(path)
    except ImageLoadError as error:
        raise ImageLoadError(str(error).replace(str(path), name)) from error
    except ImportError as error:
        # Once ultralytics is imported, PIL tries an optional HEIF plugin for unknown files.
        raise ImageLoadError(f"Cannot read image '{name}': not a recognised image format.") from error
    height, width = image.shape[:2]
    image, scale = limit_image_side(image, max_side)
    notice = ""
    if scale != 1.0:
        notice = (
            f"The image ({width}x{height}) was downscaled to {image.shape[1]}x{image.shape[0]} "
            f"(longest side {max_side} px, set with --max-image-side)."
        )
    return Upload(image, Path(path).stem, (height, width), scale, notice, name)
