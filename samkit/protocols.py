"""Prompt protocols: seeded, reproducible prompts for each image.

- ``points2``: the MobileSAM paper's Table 7 — one foreground and one background point a given distance apart.
- ``point``: one random foreground point.
- ``box``: a box jittered around the reference model's mask for one random point (the runner asks the reference
  model for that mask; `jittered_box` does the jitter).
- ``user``: prompts read from a JSON file (`load_user_prompts`).

Coordinates are (x, y) in original-image pixels; a point lies inside the image when 0 <= x <= W-1 and
0 <= y <= H-1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .prompts import Prompts

PROTOCOLS = ("points2", "point", "box", "user")
PAPER_DISTANCES = (100.0, 200.0, 300.0, 400.0, 500.0)


@dataclass(frozen=True)
class PromptCase:
    """One prompt of a protocol: `condition` names its group in reports ("d=100" for points2, else "all")."""

    protocol: str
    condition: str
    prompt: Prompts
    distance: float | None = None


def protocol_rng(seed: int, image_index: int) -> np.random.Generator:
    """The random generator for one image: depends only on (seed, image index), not on the other images."""
    if seed < 0 or image_index < 0:
        raise ValueError(f"seed and image index must be non-negative, got {seed} and {image_index}")
    return np.random.default_rng((seed, image_index))


def _check_image_size(image_size: tuple[int, int]) -> tuple[int, int]:
    h, w = (int(v) for v in image_size)
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive (H, W), got {image_size}")
    return h, w


def _inside(xy: np.ndarray, h: int, w: int) -> bool:
    return bool(0.0 <= xy[0] <= w - 1 and 0.0 <= xy[1] <= h - 1)


class PairDoesNotFit(ValueError):
    """No two points the requested distance apart fit inside the image (or none were found)."""


def pair_fits(image_size: tuple[int, int], distance: float) -> bool:
    """Whether two points `distance` px apart can lie inside an (H, W) image: at most its diagonal."""
    h, w = _check_image_size(image_size)
    return distance <= math.hypot(w - 1, h - 1)


def sample_point_pair(
    image_size: tuple[int, int], distance: float, rng: np.random.Generator, max_tries: int = 10_000
) -> Prompts:
    """One foreground and one background point exactly `distance` pixels apart, both inside the image.

    Rule: the foreground point is uniform over the image; the background point lies on the circle of radius
    `distance` around it at a uniform angle; a pair whose background point falls outside the image is redrawn
    (both points), so pairs are uniform over the valid (foreground, angle) combinations.

    Arguments:
        image_size: (H, W) of the original image.
        distance: the distance between the two points, in pixels (> 0).
    Returns:
        Prompts with points 2x2 (foreground first) and labels [1, 0].
    """
    h, w = _check_image_size(image_size)
    if not 0 < distance < math.inf:
        raise ValueError(f"distance must be a positive finite number, got {distance}")
    if not pair_fits(image_size, distance):
        raise PairDoesNotFit(f"two points {distance:g} px apart do not fit inside a {w}x{h} image")
    for _ in range(max_tries):
        fg = rng.uniform((0.0, 0.0), (w - 1, h - 1))
        angle = rng.uniform(0.0, 2.0 * math.pi)
        bg = fg + distance * np.array([math.cos(angle), math.sin(angle)])
        if _inside(bg, h, w):
            return Prompts.from_lists(np.stack([fg, bg]), [1, 0])
    raise PairDoesNotFit(f"found no pair of points {distance:g} px apart inside a {w}x{h} image in {max_tries} tries")


def point_pair_cases(
    image_size: tuple[int, int], distances: Sequence[float], per_distance: int, rng: np.random.Generator
) -> list[PromptCase]:
    """The Table 7 protocol: `per_distance` point pairs for each distance, in the order given."""
    if per_distance < 1:
        raise ValueError(f"prompts per image must be at least 1, got {per_distance}")
    if len(distances) == 0:
        raise ValueError("the points2 protocol needs at least one distance")
    return [
        PromptCase("points2", f"d={d:g}", sample_point_pair(image_size, d, rng), distance=float(d))
        for d in distances
        for _ in range(per_distance)
    ]


def random_point(image_size: tuple[int, int], rng: np.random.Generator) -> Prompts:
    """One foreground point, uniform over the image."""
    h, w = _check_image_size(image_size)
    xy = rng.uniform((0.0, 0.0), (w - 1, h - 1))
    return Prompts.from_lists(xy[None, :], [1])


def random_point_cases(image_size: tuple[int, int], count: int, rng: np.random.Generator) -> list[PromptCase]:
    """The one-point protocol: `count` random foreground points."""
    if count < 1:
        raise ValueError(f"prompts per image must be at least 1, got {count}")
    return [PromptCase("point", "all", random_point(image_size, rng)) for _ in range(count)]


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """The tight XYXY box of an HxW boolean mask (x1, y1 are the last covered pixel), or None when empty."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be HxW, got shape {mask.shape}")
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return None
    return np.array([xs[0], ys[0], xs[-1], ys[-1]], dtype=np.float64)


def jittered_box(
    mask: np.ndarray, rng: np.random.Generator, noise_fraction: float = 0.1, max_noise: float = 20.0
) -> np.ndarray | None:
    """The mask's tight box with each side moved by Gaussian noise, clipped to the image.

    As in the SAM paper's box evaluation: the noise of each coordinate has standard deviation `noise_fraction`
    times the box side (width for x, height for y), capped at `max_noise` pixels. Returns None for an empty mask.
    """
    box = mask_box(mask)
    if box is None:
        return None
    h, w = mask.shape
    sides = np.array([box[2] - box[0] + 1, box[3] - box[1] + 1] * 2)
    noise = np.clip(rng.normal(0.0, 1.0, 4) * noise_fraction * sides, -max_noise, max_noise)
    jittered = box + noise
    jittered[[0, 2]] = np.clip(np.sort(jittered[[0, 2]]), 0, w - 1)
    jittered[[1, 3]] = np.clip(np.sort(jittered[[1, 3]]), 0, h - 1)
    return jittered


def load_user_prompts(path: str | Path) -> dict[str, list[Prompts]]:
    """Prompts from a JSON file mapping image file names to lists of prompts, one mask each.

    Format: ``{"truck.jpg": [{"points": [[500, 375]], "labels": [1]}, {"boxes": [[75, 275, 1725, 850]]}]}``, each
    prompt in the `samkit.prompts` schema with at most one box. Images are matched by file name (not the full path).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read prompts file {path}: {err}") from err
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object mapping image file names to lists of prompts")
    try:
        loaded = {name: [Prompts.from_json(p) for p in prompts] for name, prompts in data.items()}
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    for name, prompts in loaded.items():
        if any(len(p.boxes) > 1 for p in prompts):
            raise ValueError(f"{path}: a prompt for {name!r} has several boxes; give one prompt per box")
    return loaded


def user_cases(prompts: Sequence[Prompts]) -> list[PromptCase]:
    """The user protocol: the given prompts, in order."""
    return [PromptCase("user", "all", p) for p in prompts]
