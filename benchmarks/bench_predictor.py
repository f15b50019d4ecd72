"""Predictor latency: our MobileSAM vs ultralytics' copy, same random weights, same process, alternating runs.

Rows: image encoder on one preprocessed image; decoding one point (multimask), one box, and 64 boxes batched
(each through the full predictor path, postprocessing to the original size included). Prints medians,
the ratio peer/ours (> 1 means ours is faster), a check that outputs agree, and each side's peak RSS
(measured in a child process per side).

    python -m benchmarks.bench_predictor [--image PATH] [--runs 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = [REPO.parent / "shared" / "images" / "truck.jpg", REPO / "assets" / "bench_photo.jpg"]
TARGET_POINT_RATIO = 2.5  # issue 24: the one-point decode at least this many times faster than the peer


def _load_image(path: Path | None) -> np.ndarray:
    from samkit.images import load_image

    candidates = [path] if path else DEFAULT_IMAGES
    for candidate in candidates:
        if candidate and candidate.is_file():
            return load_image(candidate)
    raise SystemExit(f"no benchmark image found (tried {', '.join(map(str, candidates))}); pass --image")


def _build(seed: int):
    sys.path.insert(0, str(REPO / "tests"))  # the peer lives in tests/support
    from support.ultralytics_peer import PeerPredictor, build_peer_model

    from mobile_sam import SamPredictor, sam_model_registry

    torch.manual_seed(seed)
    model = sam_model_registry["vit_t"]()
    with torch.no_grad():  # non-empty masks, as in the conformance weights
        for mlp in model.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(20)
    return SamPredictor(model), PeerPredictor(build_peer_model("vit_t", model.state_dict()))


def _workloads(image: np.ndarray, ours, peer, rng: np.random.Generator) -> dict[str, tuple[Callable, Callable]]:
    height, width = image.shape[:2]
    point = np.array([[width * 0.45, height * 0.55]])
    label = np.array([1])
    box = np.array([width * 0.2, height * 0.25, width * 0.7, height * 0.8])
    corners = rng.uniform(0, 1, (64, 2, 2)) * np.array([width, height])
    boxes = torch.as_tensor(np.concatenate([corners.min(1), corners.max(1)], axis=1), dtype=torch.float)
    boxes = ours.transform.apply_boxes_torch(boxes, image.shape[:2])
    preprocessed = ours.model.preprocess(
        torch.as_tensor(ours.transform.apply_image(image)).permute(2, 0, 1)[None].float()
    )

    def encoder(side):
        return lambda: side.model.image_encoder(preprocessed)

    return {
        "image encoder": (torch.no_grad()(encoder(ours)), torch.no_grad()(encoder(peer))),
        "decode 1 point (multimask)": (
            lambda: ours.predict(point_coords=point, point_labels=label, multimask_output=True),
            lambda: peer.predict(point_coords=point, point_labels=label, multimask_output=True),
        ),
        "decode 1 box": (
            lambda: ours.predict(box=box, multimask_output=False),
            lambda: peer.predict(box=box, multimask_output=False),
        ),
        "decode 64 boxes batched": (
            lambda: ours.predict_torch(None, None, boxes=boxes, multimask_output=False),
            lambda: peer.predict_torch(None, None, boxes=boxes, multimask_output=False),
        ),
    }


def _agreement(name: str, a, b) -> str:
    a0 = a[0] if name != "image encoder" else a
    b0 = b[0] if name != "image encoder" else b
    if name == "image encoder":
        return f"max|diff| {float((a0 - b0).abs().max()):.1e}"
    a0, b0 = np.asarray(a0), np.asarray(b0)
    return f"mask pixels differing {float((a0 != b0).mean()):.1e}"


def _time(fn: Callable) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_timing(image: np.ndarray, runs: int, seed: int) -> list[dict]:
    ours, peer = _build(seed)
    ours.set_image(image)
    peer.set_image(image)
    peer.features = ours.features.clone()  # decoders see the same embedding
    rows = []
    for name, (ours_fn, peer_fn) in _workloads(image, ours, peer, np.random.default_rng(seed)).items():
        agreement = _agreement(name, ours_fn(), peer_fn())  # also the warm-up
        ours_times, peer_times = [], []
        for _ in range(runs):
            ours_times.append(_time(ours_fn))
            peer_times.append(_time(peer_fn))
        ours_median, peer_median = statistics.median(ours_times), statistics.median(peer_times)
        rows.append(
            {
                "row": name,
                "ours_s": ours_median,
                "peer_s": peer_median,
                "ratio": peer_median / ours_median,
                "agreement": agreement,
            }
        )
    return rows


def run_side_for_rss(side: str, image_path: str | None, seed: int) -> None:
    """Child process: encode and run every workload on one side only, print its peak RSS in MB."""
    image = _load_image(Path(image_path) if image_path else None)
    ours, peer = _build(seed)
    measured = ours if side == "ours" else peer
    measured.set_image(image)
    index = 0 if side == "ours" else 1
    for pair in _workloads(image, ours, peer, np.random.default_rng(seed)).values():
        pair[index]()
    print(json.dumps({"peak_rss_mb": _peak_rss_of_this_process_mb()}))


def _peak_rss_of_this_process_mb() -> float:
    """VmHWM of this process (ru_maxrss would include the parent's peak, which Linux carries across fork)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss(side: str, args: argparse.Namespace) -> float:
    command = [sys.executable, "-m", "benchmarks.bench_predictor", "--rss-side", side, "--threads", str(args.threads)]
    if args.image:
        command += ["--image", str(args.image)]
    output = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_rss_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, help="photo to use (default: ../shared/images/truck.jpg, else assets/)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per side and row (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rss-side", choices=["ours", "peer"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.rss_side:
        run_side_for_rss(args.rss_side, str(args.image) if args.image else None, args.seed)
        return

    image = _load_image(args.image)
    rows = run_timing(image, args.runs, args.seed)
    torch.set_num_threads(args.threads)
    print(
        f"image {image.shape[1]}x{image.shape[0]}, vit_t random weights, {args.threads} threads, "
        f"median of {args.runs} alternating runs, torch {torch.__version__}"
    )
    print("| row | ours (ms) | ultralytics (ms) | ultralytics / ours | outputs |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['row']} | {row['ours_s'] * 1e3:.1f} | {row['peer_s'] * 1e3:.1f} | {row['ratio']:.2f}x "
            f"| {row['agreement']} |"
        )
    point = next(row for row in rows if row["row"] == "decode 1 point (multimask)")["ratio"]
    print(
        f"target (issue 24): one-point decode at least {TARGET_POINT_RATIO}x ultralytics' copy: {point:.2f}x "
        f"({'met' if point >= TARGET_POINT_RATIO else 'not met'}); load average {os.getloadavg()[0]:.1f}"
    )
    ours_rss, peer_rss = _peak_rss("ours", args), _peak_rss("peer", args)
    print(f"peak RSS (all rows once, separate processes): ours {ours_rss:.0f} MB, ultralytics {peer_rss:.0f} MB")


if __name__ == "__main__":
    main()
