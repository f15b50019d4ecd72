"""Benchmark: the full-resolution work per mask, of segment everything (`CandidateMasks.keep`) and of the predictor.

Every kept candidate's low-res logits are upsampled to the image, counted for the stability score, thresholded,
run-length encoded and boxed; the predictor (and MobileSAMv2's box masks) resize and threshold them
(`MaskResize.masks_into`). Two kinds of low-res planes, alternating in one process:
  objects     what a trained decoder gives for an object: a cone of logits (slope 2 per low-res sample, radius
              3 to 50 samples, so 0.1% to 20% of the image) around a random centre, strongly negative far from it;
  image-wide  smoothed noise whose masks cover about half the image, as random weights give: the window of pixels
              that can be set is the whole image (the cost of every candidate before the windows).
Segment everything both with OpenCV upsampling (the object-aware generator's default) and with torch's
(`Sam.postprocess_masks`, the grid generator's default); then the predictor's resize. Prints the median time per
mask, the OpenCV path's mean window (share of the image examined) and the ratio image-wide / objects measured in
the same run.

    python -m benchmarks.bench_masks [--image PHOTO] [--masks 64] [--runs 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mobile_sam.utils.mask_candidates import CandidateMasks
from mobile_sam.utils.mask_resize import MaskResize
from mobile_sam.utils.transforms import ResizeLongestSide

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = REPO.parent / "shared" / "images" / "truck.jpg"
LOW_RES, FRAME = 256, 1024


def object_planes(count: int, input_size: tuple[int, int], rng: np.random.Generator) -> torch.Tensor:
    """(count, 256, 256) cones of logits centred inside the input frame."""
    rows, cols = np.mgrid[0:LOW_RES, 0:LOW_RES].astype(np.float32)
    height, width = (side / (FRAME // LOW_RES) for side in input_size)
    planes = [
        2.0 * (rng.uniform(3, 50) - np.hypot(rows - rng.uniform(0, height), cols - rng.uniform(0, width)))
        for _ in range(count)
    ]
    return torch.from_numpy(np.stack(planes).astype(np.float32))


def image_wide_planes(count: int, rng: np.random.Generator) -> torch.Tensor:
    """(count, 256, 256) smoothed noise: masks over about half the image."""
    noise = rng.normal(0, 30, (count, LOW_RES, LOW_RES)).astype(np.float32)
    return torch.from_numpy(np.stack([cv2.GaussianBlur(plane, (0, 0), 8) for plane in noise]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="a photo (only its size is used)")
    parser.add_argument("--masks", type=int, default=64)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.image.is_file():
        height, width = cv2.imread(str(args.image)).shape[:2]
    else:
        height, width = 1200, 1800
        print(f"{args.image} not found: a {width}x{height} image")
    input_size = ResizeLongestSide(FRAME).get_preprocess_shape(height, width, FRAME)
    rng = np.random.default_rng(0)
    planes = {"objects": object_planes(args.masks, input_size, rng), "image-wide": image_wide_planes(args.masks, rng)}
    iou = torch.ones(args.masks)
    generators = {
        upsampling: CandidateMasks(
            FRAME, LOW_RES, input_size, [0, 0, width, height], (height, width), 0.0, 1.0, 0.0, upsampling, 24 << 20
        )
        for upsampling in ("opencv", "torch")
    }
    resize = MaskResize(LOW_RES, FRAME // LOW_RES, input_size, (height, width))
    masks = torch.empty((args.masks, 1, height, width), dtype=torch.bool)
    paths = {
        name: (lambda low_res, g=generator: g.keep(low_res, iou[: len(low_res)]))
        for name, generator in generators.items()
    }
    paths["predictor"] = lambda low_res: resize.masks_into(low_res[:, None], 0.0, masks[: len(low_res)])
    cases = [(path, kind) for path in paths for kind in planes]
    times: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    for path, kind in cases:  # warm-up
        paths[path](planes[kind][:4])
    for _ in range(args.runs):
        for path, kind in cases:
            start = time.perf_counter()
            paths[path](planes[kind])
            times[path, kind].append((time.perf_counter() - start) / args.masks * 1e3)
    print(f"{width}x{height} image, {args.masks} masks per run, {args.runs} runs, {args.threads} threads")
    opencv = generators["opencv"].planes
    for path, kind in cases:
        line = f"{path:>9} {kind:>11}: {statistics.median(times[path, kind]):6.2f} ms per mask"
        if path == "opencv":
            examined = [opencv.logits_t[opencv.window(plane.numpy())].size for plane in planes[kind]]
            line += f"  (window: {np.mean(examined) / opencv.logits_t.size:.1%} of the image on average)"
        print(line)
    for path in paths:
        ratio = statistics.median(times[path, "image-wide"]) / statistics.median(times[path, "objects"])
        print(f"{path:>9}: image-wide / objects x{ratio:.2f}")


if __name__ == "__main__":
    main()
