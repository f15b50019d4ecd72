"""The images of a run and their output names, which cannot collide.

Each command-line path is an input root:
  - a folder: its images, recursively (sorted; hidden files and folders and the output folder left out);
  - a list file (.txt, .lst): one image path per line (blank lines and # comments skipped), relative to the
    list's folder;
  - an image file: itself, its folder being its root.
An image's output name is its path relative to its root, extension included ("x.jpg", "x.png", "a/x.jpg"); a
list line outside the list's folder is named by its absolute path without the leading "/". Two different files
with the same name, or names that differ only in case, would overwrite each other's outputs (on a
case-insensitive disk): `list_inputs` refuses them, naming both. The same file given twice is kept once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from samkit.prompts import Prompts

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
LIST_SUFFIXES = (".txt", ".lst")


class InputError(ValueError):
    """The inputs cannot be run as given (a missing path, colliding names, a bad boxes file); nothing was done."""


@dataclass(frozen=True)
class ImageInput:
    """One image of a run: `path` as given (joined to its list's folder) and its output `name` (POSIX, relative)."""

    path: Path
    name: str

    @property
    def source(self) -> str:
        """The absolute path of the file: what a recorded result belongs to."""
        return str(self.path.resolve())


def list_inputs(paths: Sequence[str | Path], out: str | Path | None = None) -> list[ImageInput]:
    """The images under `paths` (see the module doc) with their output names, in order.

    Raises:
      InputError: a path that does not exist, an empty list of images, or names that collide.
    """
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise InputError(f"no such file or folder: {', '.join(missing)}")
    skip = Path(out).resolve() if out is not None else None
    found: list[ImageInput] = []
    for given in map(Path, paths):
        if given.is_dir():
            found.extend(ImageInput(given / name, name) for name in _folder_images(given, skip))
        elif given.suffix.lower() in LIST_SUFFIXES:
            found.extend(_list_file_images(given))
        else:
            found.append(ImageInput(given, given.name))
    inputs = _without_repeats(found)
    if not inputs:
        raise InputError(
            f"no images found in {', '.join(map(str, paths))} (image files end in {', '.join(IMAGE_SUFFIXES)})"
        )
    _check_names(inputs)
    return inputs


def read_boxes_file(path: str | Path, inputs: Sequence[ImageInput]) -> dict[str, np.ndarray]:
    """Caller boxes per image from a JSON file: {"NAME": {"boxes": [[x0, y0, x1, y1], ...]}, ...}, each value in
    the `samkit.prompts` schema with boxes only, NAME an output name ("x.jpg", "a/x.jpg"). Every input needs an
    entry (an empty list gives no masks); a NAME that is not an input is refused too (a typo would lose it).

    Returns {name: (N, 4) float64 XYXY boxes}.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read the boxes file {path}: {error}") from error
    if not isinstance(data, dict):
        raise InputError(f'{path}: expected a JSON object {{"NAME": {{"boxes": [[x0, y0, x1, y1], ...]}}, ...}}')
    boxes = {}
    for name, prompt in data.items():
        try:
            prompts = Prompts.from_json(prompt)
        except ValueError as error:
            raise InputError(f"{path}: {name}: {error}") from error
        if prompts.num_points:
            raise InputError(f"{path}: {name}: a boxes file holds boxes only, got points")
        boxes[name] = prompts.boxes
    names = [item.name for item in inputs]
    unknown = sorted(set(boxes) - set(names))
    if unknown:
        raise InputError(
            f"{path} names images that are not inputs: {', '.join(unknown[:10])} (names: {_examples(names)})"
        )
    without = [name for name in names if name not in boxes]
    if without:
        raise InputError(f"{path} has no boxes for {len(without)} input(s): {', '.join(without[:10])}")
    return boxes


def _folder_images(folder: Path, skip: Path | None) -> list[str]:
    """Image paths under `folder` relative to it (POSIX, sorted); hidden entries and `skip` left out."""
    names = []
    for directory, folders, files in os.walk(folder):
        here = Path(directory)
        folders[:] = [f for f in folders if not f.startswith(".") and (here / f).resolve() != skip]
        names.extend(
            (here / f).relative_to(folder).as_posix()
            for f in files
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES
        )
    return sorted(names)


def _list_file_images(listing: Path) -> list[ImageInput]:
    root = listing.parent.resolve()
    images = []
    for line in (line.strip() for line in listing.read_text().splitlines()):
        if not line or line.startswith("#"):
            continue
        path = listing.parent / line
        resolved = path.resolve()
        inside = resolved.is_relative_to(root)
        name = resolved.relative_to(root).as_posix() if inside else PurePosixPath(*resolved.parts[1:]).as_posix()
        images.append(ImageInput(path, name))
    return images


def _without_repeats(found: list[ImageInput]) -> list[ImageInput]:
    """The inputs with a file given again under the same name dropped (the first one kept)."""
    seen: set[tuple[str, str]] = set()
    inputs = []
    for item in found:
        key = (item.source, item.name)
        if key not in seen:
            seen.add(key)
            inputs.append(item)
    return inputs


def _check_names(inputs: Sequence[ImageInput]) -> None:
    by_name: dict[str, list[ImageInput]] = {}
    for item in inputs:
        by_name.setdefault(item.name.casefold(), []).append(item)
    clashes = [items for items in by_name.values() if len(items) > 1]
    for item in inputs:  # an image named like the folder of another ("a.png" and "a.png/b.png") shares its PNG folder
        for parent in PurePosixPath(item.name).parents:
            if str(parent).casefold() in by_name:
                clashes.append([*by_name[str(parent).casefold()], item])
    if clashes:
        described = "; ".join(" and ".join(f"{i.path} (as {i.name})" for i in items) for items in clashes[:10])
        raise InputError(
            f"{len(clashes)} output name(s) would be shared by different files, whose outputs would overwrite each "
            f"other: {described}. Names are paths relative to each given folder, list file or file's folder: give "
            "their common folder instead, or rename them."
        )


def _examples(names: Sequence[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
