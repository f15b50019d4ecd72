"""Small image files for the app tests: valid photos in unusual formats and broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

EXIF_ORIENTATION = 0x0112


def photo(size: tuple[int, int] = (96, 64), seed: int = 0) -> np.ndarray:
    """A smooth random RGB image (height, width) = size, so every seed gives a different picture."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.array(Image.fromarray(coarse).resize((size[1], size[0]), Image.BILINEAR))


def write_bad_inputs(folder: Path) -> dict[str, Path]:
    """Every awkward upload the app must survive, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = photo((40, 60), seed=5)
    files = {}
    files["corrupt"] = folder / "corrupt.png"
    files["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is not really a png" * 10)
    files["truncated"] = folder / "truncated.jpg"
    Image.fromarray(rgb).save(files["truncated"], quality=90)
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:300])
    files["sixteen_bit"] = folder / "sixteen_bit.png"
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(files["sixteen_bit"])
    files["grayscale"] = folder / "grayscale.png"
    Image.fromarray(rgb[..., 1]).save(files["grayscale"])
    files["rgba"] = folder / "rgba.png"
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])).save(files["rgba"])
    files["cmyk"] = folder / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(files["cmyk"], quality=95)
    files["exif_rotated"] = folder / "exif_rotated.jpg"
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # stored 60 wide x 40 high, shown rotated: 40 wide x 60 high
    Image.fromarray(rgb).save(files["exif_rotated"], exif=exif, quality=95)
    files["huge"] = folder / "huge.png"
    Image.fromarray(photo((300, 1200), seed=6)).save(files["huge"])
    files["one_pixel"] = folder / "one_pixel.png"
    Image.fromarray(np.array([[[200, 30, 30]]], np.uint8)).save(files["one_pixel"])
    return files
