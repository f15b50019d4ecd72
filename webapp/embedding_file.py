"""An image embedding as the web page reads it: one small binary file (`webapp/browser/embedding.js` parses it).

Layout, little-endian:

    bytes 0-7       MAGIC, b"SAMEMB01" (the format's version is its last two characters)
    bytes 8-11      uint32: length L of the header
    bytes 12-12+L   the header, UTF-8 JSON, padded with spaces so that the data starts at a multiple of 8
    then            the embedding (1, 256, 64, 64) float16, C order: 2 MiB

The header (`EmbeddingHeader` plus "dtype" and "shape") says what the page needs to prompt the decoder and
draw its masks: the image's original (H, W), its (h, w) after resizing the longest side to image_size (the
crop of `Sam.postprocess_masks`), the mask threshold, the model's name and the decoder file that goes with
this embedding. float16 moves masks by far less than the page's display rounding (tests/test_embedding_file.py
measures the agreement); a lossier format would need its own measured agreement.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mobile_sam.utils.atomic import atomic_write_bytes

MAGIC = b"SAMEMB01"
DTYPE = "float16"
ALIGNMENT = 8


@dataclass(frozen=True)
class EmbeddingHeader:
    """What goes with an embedding: sizes as (H, W) in pixels, the decoder file's name (its URL's last part)."""

    original_size: tuple[int, int]
    input_size: tuple[int, int]
    image_size: int
    mask_threshold: float
    model: str
    decoder: str


def embedding_bytes(embedding: np.ndarray, header: EmbeddingHeader) -> bytes:
    """The file's bytes for an embedding (1, C, h, w) float (numpy, or a CPU tensor's .numpy()).

    Raises:
        ValueError: the embedding is not 4-d with one image, holds NaN or infinite values, or exceeds float16's
            range; the sizes are not positive (H, W) pairs with input_size fitting image_size.
    """
    values = np.asarray(embedding, dtype=np.float32)
    if values.ndim != 4 or values.shape[0] != 1:
        raise ValueError(f"the embedding must have shape (1, C, h, w), got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("the embedding contains NaN or infinite values")
    if np.abs(values).max() > np.finfo(np.float16).max:
        raise ValueError("the embedding exceeds float16's range: it cannot be sent to the page")
    _check_sizes(header)
    fields = {
        "dtype": DTYPE,
        "shape": list(values.shape),
        **asdict(header),
        "original_size": [int(v) for v in header.original_size],
        "input_size": [int(v) for v in header.input_size],
        "image_size": int(header.image_size),
        "mask_threshold": float(header.mask_threshold),
    }
    text = json.dumps(fields, separators=(",", ":")).encode()
    padding = -(len(MAGIC) + 4 + len(text)) % ALIGNMENT
    text += b" " * padding
    data = values.astype("<f2").tobytes(order="C")
    return MAGIC + struct.pack("<I", len(text)) + text + data


def write_embedding(path: str | Path, embedding: np.ndarray, header: EmbeddingHeader) -> Path:
    """Write `embedding_bytes` to path atomically; return path."""
    return atomic_write_bytes(path, embedding_bytes(embedding, header))


def _check_sizes(header: EmbeddingHeader) -> None:
    for name in ("original_size", "input_size"):
        size = getattr(header, name)
        if len(size) != 2 or any(int(v) != v or v <= 0 for v in size):
            raise ValueError(f"{name} must be (H, W) in whole positive pixels, got {size}")
    if max(header.input_size) > header.image_size:
        raise ValueError(f"input_size {header.input_size} exceeds image_size {header.image_size}")
