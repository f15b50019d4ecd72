"""Benchmark: segment everything with our generator against the official order of operations.

For each photo and decoder, every mode runs in its own subprocess (so peak RSS is per mode):
  exact      `everything.SamAutomaticMaskGenerator` (the official results; IoU filter before upsampling,
             reassociated point decoder, chunked full-resolution work)
  reference  `tests/support/reference_generator.ReferenceMaskGenerator`: the official order of operations (image
             embedding copied per prompt, every candidate upsampled to full size before filtering) on our modules
  official   with --official-code DIR: the official generator itself (the `mobile_sam` package in DIR)
Decoders:
  model      vit_t (MobileSAM) with random weights (or --weights FILE): the real encoder and decoder cost.
             Random weights give meaningless masks and predicted IoUs far from a trained model's, so the
             IoU filter may keep nothing; the mask stages are then barely exercised.
  synthetic  ../shared/conformance/synthetic_decoder.py in place of the prompt encoder and mask decoder:
             realistic numbers of surviving candidates, so the full-resolution mask stages are measured.
Prints wall time, CPU time, peak RSS and page faults per run, the reference/exact ratios, and how well
the exact mode's records agree with the reference's.

`--prompts objects` compares instead, per photo and each in its own subprocess, the grid generator (default
knobs, vit_t) with the object-aware pipelines (`everything.pipelines`): boxes with MobileSAM's decoder
(`everything.ObjectAwareMaskGenerator` on vit_t) on 300 and 100 box prompts, and MobileSAMv2 (its L2 encoder and
prompt-guided decoder, random weights, at its published settings) on 300, the boxes drawn from a seeded generator
(random detector weights detect nothing useful, so the boxes are fixed), with the time per stage (detector,
encoder, decoder, post-processing) and peak RSS; each detector's network pass (FastSAM-s, FastSAM-x and
MobileSAMv2's ObjectAwareModel with random weights, imgsz 1024, boxes only) is timed in its own subprocess.

    python benchmarks/bench_everything.py                      # retina.jpg (+ truck.jpg if present)
    python benchmarks/bench_everything.py --image PHOTO --decoders synthetic --modes exact
    python benchmarks/bench_everything.py --decoders model --set pred_iou_thresh=0 --set stability_score_thresh=0
    python benchmarks/bench_everything.py --prompts objects --image ../shared/images/truck.jpg
    python benchmarks/bench_everything.py --decoders model --image ../shared/images/truck.jpg --official-code DIR
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


def official_worker(args: argparse.Namespace) -> None:
    """One measured run of the official generator (the `mobile_sam` package found in --official-code), default
    knobs or --set, vit_t with random weights or --weights; prints and writes as `worker`."""
    sys.path.insert(0, str(args.official_code))  # its `mobile_sam` shadows ours in this process
    _stub_timm()
    import torch
    from PIL import Image

    from mobile_sam import SamAutomaticMaskGenerator, sam_model_registry

    if args.threads:
        torch.set_num_threads(args.threads)
    image = np.array(Image.open(args.image[0]).convert("RGB"))
    settings = {key: _setting(value) for key, value in (item.split("=", 1) for item in args.set)}
    for key in ("points_per_side", "points_per_batch", "crop_n_layers", "min_mask_region_area"):
        if key in settings:
            settings[key] = int(settings[key])
    model = sam_model_registry["vit_t"](checkpoint=args.weights)
    generator = SamAutomaticMaskGenerator(model, output_mode="coco_rle", **settings)
    _measure(generator, image, args.records, torch.get_num_threads())


def _stub_timm() -> None:
    """The four names the official TinyViT imports from timm (not installed here), none used to compute anything in
    inference: DropPath (the identity in eval mode), to_2tuple, trunc_normal_ (initial values, replaced by the
    weights) and register_model."""
    import types

    import torch

    class DropPath(torch.nn.Module):
        def __init__(self, drop_prob: float | None = None) -> None:
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath = DropPath
    layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
    layers.trunc_normal_ = torch.nn.init.trunc_normal_
    registry = types.ModuleType("timm.models.registry")
    registry.register_model = lambda function: function
    models = types.ModuleType("timm.models")
    models.layers, models.registry = layers, registry
    timm = types.ModuleType("timm")
    timm.models = models
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})
    sys.modules["timm.models.registry"] = registry


def worker(args: argparse.Namespace) -> None:
    """One measured run; prints a JSON line and writes the records (COCO RLE) to --records."""
    if args.mode == "official":
        official_worker(args)
        return
    sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]  # the reference lives in tests/support
    import torch

    from everything import SamAutomaticMaskGenerator
    from mobile_sam import sam_model_registry
    from samkit.images import load_image
    from tests.support.reference_generator import ReferenceMaskGenerator

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc == "keep" and args.mode == "exact":
        from samkit.allocator import keep_freed_memory

        keep_freed_memory()
    image = load_image(args.image[0])
    cls = SamAutomaticMaskGenerator if args.mode == "exact" else ReferenceMaskGenerator
    settings = {key: _setting(value) for key, value in (item.split("=", 1) for item in args.set)}
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
    _measure(generator, image, args.records, torch.get_num_threads())


def _measure(generator, image: np.ndarray, records_path: str, threads: int) -> None:
    """Time `generator.generate(image)`, write its records to records_path, print the figures as a JSON line."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    records = generator.generate(image)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    Path(records_path).write_text(json.dumps(records))
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
                "threads": threads,
            }
        )
    )


def seeded_boxes(height: int, width: int, count: int, seed: int = 0) -> np.ndarray:
    """`count` XYXY boxes inside an image, sides 4% to 60% of the image's, from `default_rng(seed)`."""
    rng = np.random.default_rng(seed)
    sizes = rng.uniform(0.04, 0.6, (count, 2)) * [width, height]
    corners = rng.uniform(0, 1, (count, 2)) * ([width, height] - sizes)
    return np.concatenate([corners, corners + sizes], axis=1)


def prompts_worker(args: argparse.Namespace) -> None:
    """One measured run of --prompts objects: `grid` (default knobs), `grid-all` (pred_iou_thresh=0: every prompt's
    masks are made, the cost a trained model approaches), `objects` or `mobilesamv2` (with --boxes N), or
    `detector-s` / `detector-x` / `detector-objectaware`."""
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    from everything import ObjectAwareMaskGenerator, SamAutomaticMaskGenerator
    from mobile_sam import sam_model_registry
    from samkit.allocator import keep_freed_memory
    from samkit.images import load_image

    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()
    image = load_image(args.image[0])
    stages: dict[str, float] = {}
    if args.mode == "detector-objectaware":
        from everything.box_sources import ObjectAwareBoxSource
        from samkit.loading import ultralytics_architecture

        source = ObjectAwareBoxSource(ultralytics_architecture("objectaware"), device="cpu")
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        count = len(source.detect(image).boxes)
        stages["detector"] = time.perf_counter() - start
    elif args.mode.startswith("detector-"):
        from everything.box_sources import UltralyticsBoxSource
        from samkit.loading import ultralytics_architecture

        source = UltralyticsBoxSource(ultralytics_architecture(f"fastsam-{args.mode[-1]}"), device="cpu")
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        count = len(source.detect(image).boxes)
        stages["detector"] = time.perf_counter() - start
    elif args.mode == "mobilesamv2":
        from everything.pipelines import mobilesamv2_generator
        from samkit.loading import load_model

        generator = mobilesamv2_generator(
            load_model("mobilesamv2", random_weights=True, seed=0), output_mode="coco_rle"
        )
        boxes = seeded_boxes(image.shape[0], image.shape[1], args.boxes)
        before = resource.getrusage(resource.RUSAGE_SELF)
        count = len(generator.generate(image, boxes=boxes, timings=stages))
    else:
        model = sam_model_registry["vit_t"](args.weights)
        if args.mode in ("grid", "grid-all"):
            settings = {"pred_iou_thresh": 0.0} if args.mode == "grid-all" else {}
            generator = SamAutomaticMaskGenerator(model, output_mode="coco_rle", **settings)
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            generator.predictor.set_image(image)  # the encoder alone, timed once more inside generate
            stages["encoder"] = time.perf_counter() - start
            generator.predictor.reset_image()
            start = time.perf_counter()
            count = len(generator.generate(image))
            stages["decoder+postprocess"] = time.perf_counter() - start - stages["encoder"]
        else:
            boxes = seeded_boxes(image.shape[0], image.shape[1], args.boxes)
            generator = ObjectAwareMaskGenerator(model, output_mode="coco_rle")
            before = resource.getrusage(resource.RUSAGE_SELF)
            count = len(generator.generate(image, boxes=boxes, timings=stages))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(
        json.dumps(
            {
                "stages": stages,
                "total_s": sum(stages.values()),
                "cpu_s": cpu,
                "peak_rss_mb": _peak_rss_mb(),
                "masks": count,
                "threads": torch.get_num_threads(),
            }
        )
    )


def _setting(value: str) -> float | str:
    """A --set value: a number, or a word (upsampling=opencv)."""
    try:
        return float(value)
    except ValueError:
        return value


def _peak_rss_mb() -> float:
    """VmHWM of this process (ru_maxrss would include the parent's peak, which Linux carries across fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compare_prompts(images: list[Path], args: argparse.Namespace) -> None:
    """--prompts objects: grid against 300 and 100 box prompts, per stage, plus the detector's network pass."""
    runs = [
        ("grid", 0),
        ("grid-all", 0),
        ("objects", 300),
        ("objects", 100),
        ("mobilesamv2", 300),
        ("detector-s", 0),
        ("detector-x", 0),
        ("detector-objectaware", 0),
    ]
    print(
        "vit_t, MobileSAMv2, FastSAM and ObjectAwareModel with RANDOM weights: masks meaningless. With random weights "
        "the grid's IoU filter keeps no candidate, so `grid` skips all mask work (a lower bound of a trained model's "
        "cost); `grid-all` sets pred_iou_thresh=0 (every prompt's masks made: an upper bound). The object-aware "
        "pipelines have no filter. `objects N`: boxes with MobileSAM's decoder; `mobilesamv2 N`: MobileSAMv2."
    )
    for image in images:
        results = {}
        for mode, boxes in runs:
            command = [
                sys.executable,
                __file__,
                "--prompts-worker",
                "--mode",
                mode,
                "--boxes",
                str(boxes),
                "--image",
                str(image),
                "--threads",
                str(args.threads),
            ]
            if args.weights:
                command += ["--weights", args.weights]
            completed = subprocess.run(command, capture_output=True, text=True)
            if completed.returncode != 0:
                print(f"{image.name} {mode}: FAILED\n{completed.stderr[-2000:]}")
                continue
            label = f"{mode} {boxes}" if mode in ("objects", "mobilesamv2") else mode
            r = results[label] = json.loads(completed.stdout.strip().splitlines()[-1])
            stages = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in r["stages"].items())
            print(
                f"{image.name:>10} {label:>12}: {r['total_s']:7.2f} s wall ({stages}), {r['cpu_s']:7.2f} s CPU, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB, "
                f"{r['masks']} masks/boxes, {r['threads']} threads",
                flush=True,
            )
        for baseline in ("grid", "grid-all"):
            if baseline not in results:
                continue
            grid = results[baseline]
            grid_decoder = grid["stages"]["decoder+postprocess"] / 1024
            for label in ("objects 300", "objects 100", "mobilesamv2 300"):
                if label not in results:
                    continue
                r, n = results[label], int(label.split()[1])
                line = (
                    f"{baseline:>10} {label:>12}: {baseline}/objects wall x{grid['total_s'] / r['total_s']:.1f}, CPU "
                    f"x{grid['cpu_s'] / r['cpu_s']:.1f} without the detector; "
                    f"decoder {1000 * r['stages']['decoder'] / n:.1f}"
                    f" ms per box vs {baseline} decoder+postprocess {1000 * grid_decoder:.1f} ms per point"
                )
                detectors = (
                    ("detector-objectaware",) if label.startswith("mobilesamv2") else ("detector-s", "detector-x")
                )
                for detector in detectors:
                    if detector in results:
                        wall = r["total_s"] + results[detector]["total_s"]
                        cpu = r["cpu_s"] + results[detector]["cpu_s"]
                        name = "ObjectAwareModel" if detector.endswith("objectaware") else f"FastSAM-{detector[-1]}"
                        line += f"; with {name} wall x{grid['total_s'] / wall:.1f}, CPU x{grid['cpu_s'] / cpu:.1f}"
                print(line)
        if "grid" in results and "grid-all" in results:
            print(break_even(results))
        print(objects_targets(results))


# The end-to-end targets: objects mode this many times faster than the default grid.
TARGET_RATIOS = {"objects 300": 3.0, "objects 100": 6.0}
GRID_CANDIDATES = 3 * 32 * 32  # three masks per point of the default 32x32 grid
# Issue 24: objects mode (with the detector's network pass) within these wall times; exact grid mode at least this
# many times faster than the reference; peak RSS of any run.
OBJECTS_SECONDS = {"objects 300": 3.0, "objects 100": 1.5}
GRID_SPEEDUP = 12.0
PEAK_RSS_MB = 1200


def objects_targets(results: dict[str, dict]) -> str:
    """Issue 24's targets: objects mode with FastSAM-s's network pass within a wall time, and peak RSS."""
    lines = []
    for label, limit in OBJECTS_SECONDS.items():
        if label in results and "detector-s" in results:
            total = results[label]["total_s"] + results["detector-s"]["total_s"]
            lines.append(
                f"target (issue 24): {label} boxes + FastSAM-s at most {limit:.1f} s: {total:.2f} s "
                f"({'met' if total <= limit else 'not met'})"
            )
    peak = max((r["peak_rss_mb"] for r in results.values()), default=0.0)
    lines.append(
        f"target (issue 24): peak RSS at most {PEAK_RSS_MB} MB: {peak:.0f} MB "
        f"({'met' if peak <= PEAK_RSS_MB else 'not met'}); load average {os.getloadavg()[0]:.1f}"
    )
    return "\n".join(lines)


def break_even(results: dict[str, dict]) -> str:
    """How many of the grid's 3,072 candidates a trained model must let through its IoU filter for objects mode to
    meet each target: the grid's time taken as linear between `grid` (none through) and `grid-all` (all through)."""
    low, high = results["grid"]["total_s"], results["grid-all"]["total_s"]
    per_candidate = (high - low) / GRID_CANDIDATES
    lines = [f"per grid candidate whose mask is made: {1000 * per_candidate:.1f} ms"]
    for label, ratio in TARGET_RATIOS.items():
        if label in results:
            needed = (ratio * results[label]["total_s"] - low) / per_candidate
            lines.append(
                f"{label} is {ratio:.0f}x faster than a grid that lets {max(needed, 0):.0f} or more of its "
                f"{GRID_CANDIDATES} candidates ({max(needed, 0) / GRID_CANDIDATES:.0%}) through the IoU filter"
            )
    return "\n".join(lines)


def agreement(exact: list[dict], reference: list[dict]) -> str:
    """How many reference records the exact mode matches (mask IoU >= 0.99, bbox within 1 px, scores 1e-3)."""
    from pycocotools import mask as mask_utils

    if not reference:
        return "both empty" if not exact else f"reference empty, exact has {len(exact)}"
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
    return (
        f"{matched}/{len(reference)} reference records matched, worst mask IoU {worst:.4f}, "
        f"counts {len(exact)} vs {len(reference)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--image", type=Path, action="append", help="photo(s) to run on (default: retina.jpg, truck.jpg)"
    )
    parser.add_argument("--modes", default="exact,reference", help="comma-separated: exact, reference")
    parser.add_argument("--decoders", default="model,synthetic", help="comma-separated: model, synthetic")
    parser.add_argument("--weights", help="vit_t checkpoint for the model decoder (default: random init)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--malloc",
        choices=("keep", "default"),
        default="keep",
        help="keep: mobile_sam.allocator.keep_freed_memory() in the exact runs, as the CLI does "
        "(default); the reference always runs with glibc's defaults, as the official code does",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a generator setting, e.g. --set pred_iou_thresh=0 (default: official defaults)",
    )
    parser.add_argument(
        "--prompts",
        choices=("grid", "objects"),
        default="grid",
        help="grid: exact vs reference (default); objects: grid vs object-aware box prompts, per stage",
    )
    parser.add_argument(
        "--official-code",
        type=Path,
        help="a folder holding the official `mobile_sam` package (e.g. extracted from ChaoningZhang/MobileSAM with "
        "`git archive HEAD mobile_sam | tar -x -C DIR`): its generator runs too (model decoder only), as the "
        "baseline of the speed target",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prompts-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--boxes", type=int, default=300, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--decoder", help=argparse.SUPPRESS)
    parser.add_argument("--records", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.prompts_worker:
        prompts_worker(args)
        return

    images = args.image or [path for path in DEFAULT_IMAGES if path.is_file()]
    if args.prompts == "objects":
        print(
            f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f} "
            "(timings on a shared machine are noisy)"
        )
        compare_prompts(images, args)
        return
    decoders = args.decoders.split(",")
    if "synthetic" in decoders and not (CONFORMANCE_DIR / "synthetic_decoder.py").is_file():
        print(f"skipping the synthetic decoder: {CONFORMANCE_DIR} not found")
        decoders.remove("synthetic")
    modes = args.modes.split(",")
    print(
        f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f} (timings on a shared machine are noisy)"
    )
    print(
        f"malloc for exact: {args.malloc} (reference: glibc defaults); "
        f"settings: {' '.join(args.set) or 'official defaults'}"
    )
    if "model" in decoders and not args.weights:
        print("model decoder: vit_t with RANDOM weights -- the masks are meaningless; only the cost is measured")
    with tempfile.TemporaryDirectory() as scratch:
        for image in images:
            for decoder in decoders:
                results, records = {}, {}
                for mode in modes + (["official"] if args.official_code and decoder == "model" else []):
                    out = Path(scratch) / f"{image.stem}_{decoder}_{mode}.json"
                    command = [
                        sys.executable,
                        __file__,
                        "--worker",
                        "--mode",
                        mode,
                        "--decoder",
                        decoder,
                        "--image",
                        str(image),
                        "--records",
                        str(out),
                        "--threads",
                        str(args.threads),
                        "--malloc",
                        args.malloc,
                    ]
                    if args.weights:
                        command += ["--weights", args.weights]
                    if args.official_code:
                        command += ["--official-code", str(args.official_code)]
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
                baselines = [mode for mode in ("official", "reference") if mode in results]
                for baseline in baselines if "exact" in results else []:
                    e, ref = results["exact"], results[baseline]
                    print(
                        f"{'':>10} {decoder:>9} {baseline}/exact: wall x{ref['wall_s'] / e['wall_s']:.1f}, "
                        f"CPU x{(ref['user_s'] + ref['sys_s']) / (e['user_s'] + e['sys_s']):.1f}, "
                        f"peak RSS x{ref['peak_rss_mb'] / e['peak_rss_mb']:.1f}; agreement: "
                        f"{agreement(records['exact'], records[baseline])}"
                    )
                if baselines and "exact" in results:
                    e, speedup = results["exact"], results[baselines[0]]["wall_s"] / results["exact"]["wall_s"]
                    print(
                        f"{'':>10} {decoder:>9} target (issue 24): exact at least {GRID_SPEEDUP:.0f}x the "
                        f"{baselines[0]} and peak RSS at most {PEAK_RSS_MB} MB: x{speedup:.1f}, "
                        f"{e['peak_rss_mb']:.0f} MB "
                        f"({'met' if speedup >= GRID_SPEEDUP and e['peak_rss_mb'] <= PEAK_RSS_MB else 'not met'}); "
                        f"load average {os.getloadavg()[0]:.1f}"
                    )


if __name__ == "__main__":
    main()
