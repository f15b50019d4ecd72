"""Benchmark: segment everything with our generator against the official order of operations.

For each photo and decoder, every mode runs in its own subprocess (so peak RSS is per mode):
  exact      `everything.SamAutomaticMaskGenerator` (the official results; IoU filter before upsampling,
             reassociated point decoder, chunked full-resolution work)
  reference  `everything.reference.ReferenceMaskGenerator`: the official order of operations (image
             embedding copied per prompt, every candidate upsampled to full size before filtering)
Decoders:
  model      vit_t (MobileSAM) with random weights (or --weights FILE): the real encoder and decoder cost.
             Random weights give meaningless masks and predicted IoUs far from a trained model's, so the
             IoU filter may keep nothing; the mask stages are then barely exercised.
  synthetic  ../shared/conformance/synthetic_decoder.py in place of the prompt encoder and mask decoder:
             realistic numbers of surviving candidates, so the full-resolution mask stages are measured.
Prints wall time, CPU time, peak RSS and page faults per run, the reference/exact ratios, and how well
the exact mode's records agree with the reference's.

    python benchmarks/bench_everything.py                      # retina.jpg (+ truck.jpg if present)
    python benchmarks/bench_everything.py --image PHOTO --decoders synthetic --modes exact
    python benchmarks/bench_everything.py --decoders model --set pred_iou_thresh=0 --set stability_score_thresh=0
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE_DIR = REPO_ROOT.parent / "shared" / "conformance"
DEFAULT_IMAGES = [REPO_ROOT / "assets" / "retina.jpg", REPO_ROOT.parent / "shared" / "images" / "truck.jpg"]


def worker(args: argparse.Namespace) -> None:
    """One measured run; prints a JSON line and writes the records (COCO RLE) to --records."""
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    from everything import SamAutomaticMaskGenerator
    from everything.reference import ReferenceMaskGenerator
    from mobile_sam import sam_model_registry
    from mobile_sam.image import load_image

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc == "keep" and args.mode == "exact":
        from everything.allocator import keep_freed_memory

        keep_freed_memory()
    image = load_image(args.image[0])
    cls = SamAutomaticMaskGenerator if args.mode == "exact" else ReferenceMaskGenerator
    settings = {key: float(value) for key, value in (item.split("=", 1) for item in args.set)}
    for key in ("points_per_side", "points_per_batch", "crop_n_layers", "min_mask_region_area"):
        if key in settings:
            settings[key] = int(settings[key])
    if args.decoder == "synthetic":
        spec = importlib.util.spec_from_file_location("synthetic_decoder", CONFORMANCE_DIR / "synthetic_decoder.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        generator = cls(None, output_mode="coco_rle", decode_points=module.synthetic_low_res_masks, **settings)
    else:
        model = sam_model_registry["vit_t"](args.weights)
        generator = cls(model, output_mode="coco_rle", **settings)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    records = generator.generate(image)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    Path(args.records).write_text(json.dumps(records))
    print(
        json.dumps(
            {
                "wall_s": wall,
                "user_s": after.ru_utime - before.ru_utime,
                "sys_s": after.ru_stime - before.ru_stime,
                "peak_rss_mb": after.ru_maxrss / 1024,
                "rss_before_mb": before.ru_maxrss / 1024,
                "page_faults": after.ru_minflt - before.ru_minflt,
                "records": len(records),
                "threads": torch.get_num_threads(),
            }
        )
    )


def agreement(exact: list[dict], reference: list[dict]) -> str:
    """How many reference records the exact mode matches (mask IoU >= 0.99, bbox within 1 px, scores 1e-3)."""
    from pycocotools import mask as mask_utils

    if not reference:
        return f"both empty" if not exact else f"reference empty, exact has {len(exact)}"
    if not exact:
        return f"exact empty, reference has {len(reference)}"
    ious = np.asarray(
        mask_utils.iou([r["segmentation"] for r in reference], [r["segmentation"] for r in exact], [0] * len(exact))
    ).reshape(len(reference), len(exact))
    matched, worst = 0, 1.0
    for i, record in enumerate(reference):
        j = int(ious[i].argmax())
        worst = min(worst, float(ious[i, j]))
        ok = (
            ious[i, j] >= 0.99
            and np.abs(np.subtract(record["bbox"], exact[j]["bbox"])).max() <= 1
            and abs(record["predicted_iou"] - exact[j]["predicted_iou"]) <= 1e-3
            and abs(record["stability_score"] - exact[j]["stability_score"]) <= 1e-3
        )
        matched += bool(ok)
    return f"{matched}/{len(reference)} reference records matched, worst mask IoU {worst:.4f}, counts {len(exact)} vs {len(reference)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, action="append", help="photo(s) to run on (default: retina.jpg, truck.jpg)")
    parser.add_argument("--modes", default="exact,reference", help="comma-separated: exact, reference")
    parser.add_argument("--decoders", default="model,synthetic", help="comma-separated: model, synthetic")
    parser.add_argument("--weights", help="vit_t checkpoint for the model decoder (default: random init)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--malloc", choices=("keep", "default"), default="keep",
                        help="keep: everything.allocator.keep_freed_memory() in the exact runs, as the CLI does "
                             "(default); the reference always runs with glibc's defaults, as the official code does")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a generator setting, e.g. --set pred_iou_thresh=0 (default: official defaults)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--decoder", help=argparse.SUPPRESS)
    parser.add_argument("--records", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    images = args.image or [path for path in DEFAULT_IMAGES if path.is_file()]
    decoders = args.decoders.split(",")
    if "synthetic" in decoders and not (CONFORMANCE_DIR / "synthetic_decoder.py").is_file():
        print(f"skipping the synthetic decoder: {CONFORMANCE_DIR} not found")
        decoders.remove("synthetic")
    modes = args.modes.split(",")
    print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f} (timings on a shared machine are noisy)")
    print(f"malloc for exact: {args.malloc} (reference: glibc defaults); settings: {' '.join(args.set) or 'official defaults'}")
    if "model" in decoders and not args.weights:
        print("model decoder: vit_t with RANDOM weights -- the masks are meaningless; only the cost is measured")
    with tempfile.TemporaryDirectory() as scratch:
        for image in images:
            for decoder in decoders:
                results, records = {}, {}
                for mode in modes:
                    out = Path(scratch) / f"{image.stem}_{decoder}_{mode}.json"
                    command = [sys.executable, __file__, "--worker", "--mode", mode, "--decoder", decoder,
                               "--image", str(image), "--records", str(out), "--threads", str(args.threads),
                               "--malloc", args.malloc]
                    if args.weights:
                        command += ["--weights", args.weights]
                    for item in args.set:
                        command += ["--set", item]
                    completed = subprocess.run(command, capture_output=True, text=True)
                    if completed.returncode != 0:
                        print(f"{image.name} {decoder} {mode}: FAILED\n{completed.stderr[-2000:]}")
                        continue
                    results[mode] = json.loads(completed.stdout.strip().splitlines()[-1])
                    records[mode] = json.loads(out.read_text())
                    r = results[mode]
                    print(
                        f"{image.name:>10} {decoder:>9} {mode:>9}: {r['wall_s']:7.1f} s wall, "
                        f"{r['user_s']:7.1f} s user, {r['sys_s']:6.1f} s sys, peak RSS {r['peak_rss_mb']:6.0f} MB "
                        f"(before generate {r['rss_before_mb']:.0f} MB), {r['page_faults']:>9} page faults, "
                        f"{r['records']} masks, {r['threads']} threads"
                    )
                if "exact" in results and "reference" in results:
                    e, ref = results["exact"], results["reference"]
                    print(
                        f"{'':>10} {decoder:>9} reference/exact: wall x{ref['wall_s'] / e['wall_s']:.1f}, "
                        f"CPU x{(ref['user_s'] + ref['sys_s']) / (e['user_s'] + e['sys_s']):.1f}, "
                        f"peak RSS x{ref['peak_rss_mb'] / e['peak_rss_mb']:.1f}; agreement: "
                        f"{agreement(records['exact'], records['reference'])}"
                    )


if __name__ == "__main__":
    main()
