"""Write fastsam_rules.npz: FastSAM's two prompt rule sets run on fixed instance masks and prompts.

Usage (from the repository root, with an extracted CASIA-IVA-Lab/FastSAM snapshot):
    python tests/conformance_data/fastsam_rules/make_fastsam_rules.py /tmp/FastSAM

"original" is that repository's `FastSAMPrompt.point_prompt` / `box_prompt` (fastsam/prompt.py, imported alone:
the package's __init__ needs an old ultralytics); "ultralytics" is the installed ultralytics'
`FastSAMPredictor.prompt`. Both read the same `ultralytics.engine.results.Results` built from the instances.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
H, W = 24, 32

# (row0, row1, col0, col1) rectangles, in FastSAM's (confidence) order, which is not the order of their areas.
RECTANGLES = [
    (3, 13, 4, 14),  # 0: area 100, inside 1, holds 2
    (2, 20, 2, 22),  # 1: area 360, the largest
    (6, 10, 6, 10),  # 2: area 16, inside 0 and 1
    (16, 24, 18, 32),  # 3: area 112, on the bottom and right edges, overlaps 1
    (0, 10, 22, 32),  # 4: area 100 (ties with 0), on the top and right edges
    (8, 18, 9, 19),  # 5: area 100 (ties with 0 and 4), overlaps 0 and 1
]

# name: (points, labels) with integer pixel coordinates (the original point rule indexes with them).
POINT_CASES = {
    "fg_nested": ([[7, 7]], [1]),
    "fg_then_bg": ([[7, 7], [15, 5]], [1, 0]),
    "bg_then_fg": ([[15, 5], [7, 7]], [0, 1]),
    "fg_and_bg_in_one_instance": ([[3, 3], [20, 15]], [1, 0]),
    "corners": ([[0, 0], [31, 23], [31, 0]], [1, 1, 1]),
    "instance_edges": ([[2, 19], [21, 2], [22, 19]], [1, 1, 0]),
    "bg_only": ([[7, 7]], [0]),
    "on_no_instance": ([[0, 23]], [1]),
    "overlap_of_equal_areas": ([[11, 10], [16, 16]], [1, 0]),
    "separate_instances": ([[7, 7], [25, 20], [27, 5]], [1, 1, 1]),
    "fg_bg_fg": ([[7, 7], [8, 8], [12, 12]], [1, 0, 1]),
}

# name: XYXY box in pixels (end exclusive in both rule sets).
BOX_CASES = {
    "tight": [4, 3, 14, 13],
    "partly_outside": [-5, 14, 40, 30],
    "fractional": [2.5, 1.6, 22.5, 20.4],
    "fractional_small": [5.5, 5.5, 10.5, 10.5],
    "no_overlap": [0, 21, 10, 24],
    "whole_image": [0, 0, 32, 24],
    "two_instances": [4, 3, 19, 18],
}


def instances() -> np.ndarray:
    masks = np.zeros((len(RECTANGLES), H, W), dtype=bool)
    for index, (r0, r1, c0, c1) in enumerate(RECTANGLES):
        masks[index, r0:r1, c0:c1] = True
    return masks


def results(masks: np.ndarray):
    """An ultralytics Results holding the instances as FastSAM returns them (float masks, boxes, confidences)."""
    from ultralytics.engine.results import Results

    k = masks.shape[0]
    boxes = torch.zeros(k, 6)
    for index, (r0, r1, c0, c1) in enumerate(RECTANGLES):
        boxes[index] = torch.tensor([c0, r0, c1, r1, 0.9 - 0.1 * index, 0])
    image = np.zeros((H, W, 3), dtype=np.uint8)
    return Results(image, path="", names={0: "object"}, boxes=boxes, masks=torch.from_numpy(masks).float())


def ultralytics_mask(result, **prompt) -> np.ndarray:
    """The union of the instances ultralytics' FastSAMPredictor.prompt keeps (its `self` only gives the device)."""
    from ultralytics.models.fastsam import FastSAMPredictor

    kept = FastSAMPredictor.prompt(SimpleNamespace(device=torch.device("cpu")), [result], **prompt)[0]
    if len(kept) == 0:
        return np.zeros((H, W), dtype=bool)
    return kept.masks.data.bool().any(dim=0).numpy()


def original_prompt_class(repo: Path):
    """FastSAMPrompt from repo/fastsam/prompt.py, without running the package's __init__."""
    package = types.ModuleType("fastsam")
    package.__path__ = [str(repo / "fastsam")]
    sys.modules["fastsam"] = package
    return importlib.import_module("fastsam.prompt").FastSAMPrompt


def revision(repo: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fastsam", type=Path, help="extracted CASIA-IVA-Lab/FastSAM snapshot (holds fastsam/)")
    parser.add_argument("--revision", help="the snapshot's commit, recorded in the file (default: git rev-parse)")
    args = parser.parse_args()
    import ultralytics

    FastSAMPrompt = original_prompt_class(args.fastsam)
    masks = instances()
    result = results(masks)
    original = FastSAMPrompt(np.zeros((H, W, 3), dtype=np.uint8), [result], device="cpu")
    out = {
        "instances": masks,
        "fastsam_revision": np.array(args.revision or revision(args.fastsam)),
        "ultralytics_version": np.array(ultralytics.__version__),
    }
    for name, (points, labels) in POINT_CASES.items():
        out[f"points/{name}/points"] = np.array(points, dtype=np.float64)
        out[f"points/{name}/labels"] = np.array(labels, dtype=np.int64)
        out[f"points/{name}/original"] = original.point_prompt(points, labels)[0].astype(bool)
        out[f"points/{name}/ultralytics"] = ultralytics_mask(result, points=points, labels=labels)
    for name, box in BOX_CASES.items():
        selected = original.box_prompt(bbox=list(box))  # it rounds and clips the list in place
        out[f"box/{name}/box"] = np.array(box, dtype=np.float64)
        out[f"box/{name}/original"] = selected.astype(bool).any(axis=0)
        out[f"box/{name}/ultralytics"] = ultralytics_mask(result, bboxes=np.array(box, dtype=np.float64))
    np.savez_compressed(HERE / "fastsam_rules.npz", **out)
    differ = [
        key.rsplit("/", 1)[0]
        for key in out
        if key.endswith("/original") and not np.array_equal(out[key], out[key.replace("/original", "/ultralytics")])
    ]
    print(f"wrote {HERE / 'fastsam_rules.npz'}; the rule sets differ on: {', '.join(differ)}")


if __name__ == "__main__":
    main()
