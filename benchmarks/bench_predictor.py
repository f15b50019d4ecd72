"""Predictor latency: our MobileSAM vs ultralytics' copy, same random weights, same process, alternating runs.

Rows: image encoder on one preprocessed image; decoding one point (multimask), one box, and 64 boxes batched
(each through the full predictor path, postprocessing to the original size included). Prints medians,
the ratio peer/ours (> 1 means ours is faster), a check that outputs agree, and each side's peak RSS
(measured in a child process per side).

With --efficientvit-code (an extracted mit-han-lab/efficientvit) and --segment-anything-code (an extracted
facebookresearch/segment-anything, which it imports), a second table puts each EfficientViT-SAM model against the
official EfficientViT code (same random weights, `EfficientViTSamPredictor`) and against our TinyViT (vit_t):
image encoder, set_image (resize + normalise + encode) and the same decoding rows.

    python -m benchmarks.bench_predictor [--image PATH] [--runs 7] [--threads 2] [--malloc default|keep]
        [--efficientvit-code DIR --segment-anything-code DIR [--efficientvit-models l0,xl0]]
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

from mobile_sam.utils.transforms import ResizeLongestSide
from samkit.allocator import keep_freed_memory

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
    from mobile_sam import SamPredictor
    from tests.support.ultralytics_peer import PeerPredictor, build_peer_model

    model = _random_model("vit_t", seed)
    return SamPredictor(model), PeerPredictor(build_peer_model("vit_t", model.state_dict()))


def _random_model(model_type: str, seed: int):
    from mobile_sam import sam_model_registry

    torch.manual_seed(seed)
    model = sam_model_registry[model_type]()
    with torch.no_grad():  # non-empty masks, as in the conformance weights
        for mlp in model.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(20)
    return model


def _workloads(image: np.ndarray, ours, peer, rng: np.random.Generator) -> dict[str, tuple[Callable, Callable]]:
    preprocessed = _preprocessed(image, ours.model)

    def encoder(side):
        return lambda: side.model.image_encoder(preprocessed)

    return {"image encoder": (torch.no_grad()(encoder(ours)), torch.no_grad()(encoder(peer)))} | _decode_workloads(
        image, ours, peer, rng
    )


def _preprocessed(image: np.ndarray, model) -> torch.Tensor:
    """The encoder's input for `image`: resized to the encoder's frame, normalised, padded: (1, 3, S, S)."""
    resized = ResizeLongestSide(model.encoder_image_size).apply_image(image)
    return model.preprocess(torch.as_tensor(resized).permute(2, 0, 1)[None].float())


def _decode_workloads(image: np.ndarray, ours, peer, rng: np.random.Generator) -> dict[str, tuple[Callable, Callable]]:
    height, width = image.shape[:2]
    point = np.array([[width * 0.45, height * 0.55]])
    label = np.array([1])
    box = np.array([width * 0.2, height * 0.25, width * 0.7, height * 0.8])
    corners = rng.uniform(0, 1, (64, 2, 2)) * np.array([width, height])
    boxes = torch.as_tensor(np.concatenate([corners.min(1), corners.max(1)], axis=1), dtype=torch.float)
    boxes = ours.transform.apply_boxes_torch(boxes, image.shape[:2])
    return {
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


def _efficientvit_workloads(image, ours, official, tiny, rng) -> dict[str, tuple[Callable, ...]]:
    """Rows for one EfficientViT-SAM model: (ours, official[, TinyViT]) callables per row."""
    x, x_tiny = _preprocessed(image, ours.model), _preprocessed(image, tiny.model)
    return {
        "image encoder": (
            torch.no_grad()(lambda: ours.model.image_encoder(x)),
            torch.no_grad()(lambda: official.model.image_encoder(x)),
            torch.no_grad()(lambda: tiny.model.image_encoder(x_tiny)),
        ),
        "set_image (resize + encode)": (
            lambda: ours.set_image(image),
            lambda: official.set_image(image),
            lambda: tiny.set_image(image),
        ),
    } | _decode_workloads(image, ours, official, rng)


def run_efficientvit_timing(
    image: np.ndarray, runs: int, seed: int, variants: list[str], efficientvit_code: Path, segment_anything_code: Path
) -> list[dict]:
    """Ours against the official EfficientViT code and against TinyViT, per variant, alternating runs."""
    from mobile_sam import SamPredictor
    from tests.support.efficientvit_peer import official_efficientvit

    sam_module, zoo = official_efficientvit(efficientvit_code, segment_anything_code)
    tiny = SamPredictor(_random_model("vit_t", seed))
    rows = []
    for variant in variants:
        model = _random_model(f"efficientvit_sam_{variant}", seed)
        official_model = zoo.create_efficientvit_sam_model(f"efficientvit-sam-{variant}", pretrained=False)
        official_model.load_state_dict(model.state_dict(), strict=True)
        ours, official = SamPredictor(model), sam_module.EfficientViTSamPredictor(official_model.eval())
        ours.set_image(image)
        official.set_image(image)
        official.features = ours.features.clone()  # decoders see the same embedding
        workloads = _efficientvit_workloads(image, ours, official, tiny, np.random.default_rng(seed))
        for name, fns in workloads.items():
            first = [fn() for fn in fns[:2]]  # also the warm-up
            if name == "set_image (resize + encode)":
                agreement = _agreement("image encoder", ours.features, official.features)
            else:
                agreement = _agreement(name, *first)
            times = [[] for _ in fns]
            for _ in range(runs):
                for fn, measured in zip(fns, times):
                    measured.append(_time(fn))
            medians = [statistics.median(t) for t in times]
            rows.append(
                {
                    "model": f"efficientvit_sam_{variant}",
                    "row": name,
                    "ours_s": medians[0],
                    "official_s": medians[1],
                    "ratio": medians[1] / medians[0],
                    "tinyvit_s": medians[2] if len(medians) > 2 else None,
                    "agreement": agreement,
                }
            )
    return rows


def _print_efficientvit(rows: list[dict]) -> None:
    print("| model | row | ours (ms) | official (ms) | official / ours | TinyViT (ms) | ours / TinyViT | outputs |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        tiny = row["tinyvit_s"]
        tiny_cells = f"{tiny * 1e3:.1f} | {row['ours_s'] / tiny:.2f}x" if tiny else "— | —"
        print(
            f"| {row['model']} | {row['row']} | {row['ours_s'] * 1e3:.1f} | {row['official_s'] * 1e3:.1f} | "
            f"{row['ratio']:.2f}x | {tiny_cells} | {row['agreement']} |"
        )


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
    command += ["--malloc", args.malloc]
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
    parser.add_argument(
        "--malloc",
        choices=["default", "keep"],
        default="default",
        help="glibc malloc for this process, both sides alike: its defaults, or keeping freed memory "
        "(samkit.allocator.keep_freed_memory, as the CLIs run)",
    )
    parser.add_argument(
        "--efficientvit-code", type=Path, help="extracted mit-han-lab/efficientvit: adds the EfficientViT-SAM table"
    )
    parser.add_argument(
        "--segment-anything-code", type=Path, help="extracted facebookresearch/segment-anything (efficientvit uses it)"
    )
    parser.add_argument(
        "--efficientvit-models",
        type=lambda text: [v.strip() for v in text.split(",") if v.strip()],
        default=["l0", "l1", "l2", "xl0", "xl1"],
        help="comma-separated EfficientViT-SAM variants (default: l0,l1,l2,xl0,xl1)",
    )
    args = parser.parse_args()
    if (args.efficientvit_code is None) != (args.segment_anything_code is None):
        parser.error("--efficientvit-code and --segment-anything-code go together")
    torch.set_num_threads(args.threads)
    if args.malloc == "keep":
        keep_freed_memory()
    if args.rss_side:
        run_side_for_rss(args.rss_side, str(args.image) if args.image else None, args.seed)
        return

    image = _load_image(args.image)
    rows = run_timing(image, args.runs, args.seed)
    torch.set_num_threads(args.threads)
    print(
        f"image {image.shape[1]}x{image.shape[0]}, vit_t random weights, {args.threads} threads, "
        f"median of {args.runs} alternating runs, malloc {args.malloc} (both sides), torch {torch.__version__}"
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
    if args.efficientvit_code is not None:
        rows = run_efficientvit_timing(
            image, args.runs, args.seed, args.efficientvit_models, args.efficientvit_code, args.segment_anything_code
        )
        torch.set_num_threads(args.threads)
        print()
        print(
            "EfficientViT-SAM, random weights: ours vs the official code (EfficientViTSamPredictor) and our TinyViT "
            "(vit_t), same run"
        )
        _print_efficientvit(rows)


if __name__ == "__main__":
    main()
