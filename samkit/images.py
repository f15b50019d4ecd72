"""
Reading image files into the HxWx3 uint8 RGB arrays the predictor expects, and downscaling them.

Decoded images are converted by `mobile_sam.utils.rgb.to_rgb_uint8` (re-exported here for callers of this
module), whose conventions apply everywhere an image enters the project.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps

from mobile_sam.utils.rgb import to_rgb_uint8

__all__ = ["DEFAULT_MAX_PIXELS", "ImageLoadError", "limit_image_side", "load_image", "to_rgb_uint8"]

# Same limit as Pillow's default decompression-bomb threshold (about 89 megapixels).
DEFAULT_MAX_PIXELS = 89_478_485


class ImageLoadError(ValueError):
    """An image file could not be read (missing, not an image, corrupt, truncated or too large)."""


def load_image(source: str | Path | bytes | BinaryIO, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """
    Read an image file and return it upright (EXIF orientation applied) as HxWx3 uint8 RGB.

    Arguments:
      source: a path, the encoded file's bytes, or a binary file object. For animated or
        multi-page files the first frame is used.
      max_pixels (int or None): refuse images with more pixels than this (decompression bombs);
        None disables the check (Pillow's own hard limit still applies).

    Returns:
      (np.ndarray): HxWx3 uint8 RGB, see to_rgb_uint8 for the conversion rules.

    Raises:
      ImageLoadError: the file is missing, not an image, corrupt, truncated or too large.
    """
    name = _describe_source(source)
    if isinstance(source, (str, Path)):
        if not Path(source).is_file():
            raise ImageLoadError(f"Cannot read image {name}: no such file.")
        stream: str | Path | BinaryIO = source
    elif isinstance(source, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(source))
    else:
        stream = source
    try:
        with _pillow_open()(stream) as opened:
            width, height = opened.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageLoadError(
                    f"Image {name} is too large: {width}x{height} = {width * height:,} pixels, "
                    f"the limit is {max_pixels:,}. Downscale it before loading."
                )
            opened.load()
            upright = ImageOps.exif_transpose(opened)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageLoadError(f"Image {name} is too large to load safely: {error}") from error
    except Image.UnidentifiedImageError as error:
        raise ImageLoadError(f"Cannot read image {name}: not a recognised image format.") from error
    except ImportError as error:
        # Third-party code may patch Image.open to try optional decoders (ultralytics tries pi_heif).
        raise ImageLoadError(
            f"Cannot read image {name}: not a recognised image format (optional decoder unavailable: {error})."
        ) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageLoadError(f"Cannot read image {name}: the file is corrupt or truncated ({error}).") from error
    try:
        return to_rgb_uint8(upright)
    except (TypeError, ValueError) as error:
        raise ImageLoadError(f"Cannot convert image {name} to RGB: {error}") from error


def _pillow_open() -> Callable[..., Image.Image]:
    """Pillow's own `Image.open`. Once imported, ultralytics replaces it with a wrapper that, for a file Pillow
    cannot identify, checks for a HEIF plugin and may try to pip-install it: a file that is not an image must be
    refused at once instead."""
    patches = sys.modules.get("ultralytics.utils.patches")
    if patches is not None and Image.open is getattr(patches, "image_open", None):
        return getattr(patches, "_image_open", Image.open)
    return Image.open


def limit_image_side(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """
    Downscale an image so its longest side is at most max_side (area interpolation).

    Arguments:
      image (np.ndarray): HxW or HxWxC.
      max_side (int or None): the largest allowed side in pixels; None means no limit.

    Returns:
      (np.ndarray): the image, unchanged (same object) when already small enough.
      (float): the scale applied, new longest side / old longest side (1.0 when unchanged).
        Map coordinates of the original to the result by multiplying with it.
    """
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1):
        raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}.")
    if image.ndim < 2 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"Expected a non-empty HxW or HxWxC image, got shape {image.shape}.")
    height, width = image.shape[:2]
    longest = max(height, width)
    if max_side is None or longest <= max_side:
        return image, 1.0
    scale = max_side / longest
    new_width = max(1, int(round(width * scale)))
    new_height = max(1, int(round(height * scale)))
    resized = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_AREA)
    if image.ndim == 3 and resized.ndim == 2:  # OpenCV drops a single channel axis
        resized = resized[:, :, None]
    return resized, scale


def _describe_source(source: object) -> str:
    if isinstance(source, (str, Path)):
        return f"'{source}'"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"({len(source)} bytes)"
    return f"'{getattr(source, 'name', type(source).__name__)}'"
