"""
Turning image arrays into the HxWx3 uint8 RGB arrays the predictor and the generators expect.

Conventions (applied everywhere an image enters the project):
  - grayscale is replicated to three channels;
  - transparency is composited onto a white background, so the model sees what an image
    viewer on a white page shows (dropping alpha would reveal arbitrary hidden colours);
  - 16-bit data maps to 8 bits as round(v * 255 / 65535);
  - float data must lie in [0, 1] and maps as round(v * 255); NaN/inf are rejected;
  - bool data maps False/True to 0/255.
PIL images are accepted without importing PIL here: an object can only be a PIL image once PIL is imported.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_UINT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def to_rgb_uint8(image: Any) -> np.ndarray:
    """
    Convert a PIL image or numpy array to an RGB uint8 array (see the module conventions).

    Arguments:
      image: a PIL image of any common mode (1, L, LA, P, PA, RGB, RGBA, CMYK, YCbCr, I;16, I, F),
        or a numpy array HxW, HxWx1 (gray), HxWx2 (gray + alpha), HxWx3 (RGB) or HxWx4 (RGBA)
        of dtype uint8, uint16, bool, float (values in [0, 1]) or another integer type holding
        values in [0, 255].

    Returns:
      (np.ndarray): HxWx3 uint8, C-contiguous. An input that already is HxWx3 uint8 and
        contiguous is returned as is (not copied).

    Raises:
      TypeError: unsupported input type or dtype.
      ValueError: unsupported shape, empty image, NaN/inf or out-of-range values.
    """
    if _is_pil_image(image):
        array = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise TypeError(
            f"Expected a PIL image or a numpy array, got {type(image).__name__}. "
            "Convert tensors with tensor.cpu().numpy() (HxWxC) first."
        )
    return _array_to_rgb_uint8(array)


def _is_pil_image(image: object) -> bool:
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(image, pil.Image)


def _pil_to_array(image: Any) -> np.ndarray:
    """PIL image -> numpy array in one of the layouts _array_to_rgb_uint8 accepts."""
    mode = image.mode
    if mode in ("RGB", "L"):
        return np.array(image)
    if mode == "1":
        return np.array(image.convert("L"))
    if mode in _UINT16_MODES:
        return np.asarray(image).astype(np.uint16)
    if mode == "I":
        # 32-bit integer images are how Pillow decodes 16-bit PNG/TIFF data.
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(
                f"PIL mode 'I' image has values in [{values.min()}, {values.max()}]; "
                "only 16-bit data in [0, 65535] is supported."
            )
        return values.astype(np.uint16)
    if mode == "F":
        return np.array(image)
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        return np.array(image.convert("RGBA"))
    try:
        return np.array(image.convert("RGB"))
    except ValueError as error:
        raise ValueError(f"Cannot convert a PIL image of mode {mode!r} to RGB: {error}") from error


def _array_to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        hint = ""
        if array.ndim == 3 and array.shape[0] in (1, 3, 4):
            hint = " It looks channel-first (CxHxW); transpose it to HxWxC."
        raise ValueError(f"Expected an image of shape HxW, HxWx1, HxWx2, HxWx3 or HxWx4, got {array.shape}.{hint}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"The image is empty (shape {array.shape}).")

    values = _to_uint8(array)
    if values.ndim == 2:
        return np.ascontiguousarray(np.repeat(values[:, :, None], 3, axis=2))
    if values.shape[2] == 2:
        return _composite_on_white(np.repeat(values[:, :, :1], 3, axis=2), values[:, :, 1])
    if values.shape[2] == 4:
        return _composite_on_white(values[:, :, :3], values[:, :, 3])
    return np.ascontiguousarray(values)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Map any supported dtype to uint8, keeping the shape."""
    dtype = array.dtype
    if dtype == np.uint8:
        return array
    if dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if dtype == np.uint16:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("The image contains NaN or infinite values.")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"Float images must have values in [0, 1], got [{low:g}, {high:g}]. "
                "For 0-255 data, convert to uint8 first (np.clip(x, 0, 255).astype(np.uint8))."
            )
        return np.rint(array.astype(np.float64) * 255.0).astype(np.uint8)
    if np.issubdtype(dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"Integer images of dtype {dtype} must have values in [0, 255], got [{low}, {high}]. "
                "Use uint16 for 16-bit data."
            )
        return array.astype(np.uint8)
    raise TypeError(
        f"Unsupported image dtype {dtype}: expected uint8, uint16, bool, float in [0, 1] or integers in [0, 255]."
    )


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 colour over a white background with HxW uint8 alpha -> HxWx3 uint8."""
    weight = alpha.astype(np.float32)[:, :, None] / 255.0
    blended = rgb.astype(np.float32) * weight + 255.0 * (1.0 - weight)
    return np.ascontiguousarray(np.rint(blended).astype(np.uint8))
