"""Command line: segment everything in images and write COCO JSON, mask PNGs and overlays.

    python -m everything PATH... --out DIR [--model vit_t] [--prompts grid|objects] [--engine local|ray]

PATH may be image files, folders (their images, not recursing) or list files (.txt: one image path per
line, relative to the list's folder). An unreadable image is reported and skipped; the exit status is 1
at the end if any image failed. `--engine ray` runs the images on Ray Data (imported only then): one
COCO-RLE JSON per image in DIR/results/ as it finishes, merged into DIR/annotations.json, failures in
DIR/failures.json, and a rerun skips the images already done.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
LIST_SUFFIXES = (".txt", ".lst")
MODEL_TYPES = ("vit_t", "vit_b", "vit_l", "vit_h")
# The filters' defaults per prompt mode: the official grid generator's, and MobileSAMv2's (no filter).
FILTER_DEFAULTS = {
    "grid": {"pred_iou_thresh": 0.88, "stability_score_thresh": 0.95, "box_nms_thresh": 0.7},
    "objects": {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": None},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m everything",
        description=(
            "Segment everything in images with MobileSAM / SAM. --prompts grid (default) gives the official automatic "
            "mask generator's results; --prompts objects is MobileSAMv2's object-aware mode (one box prompt per "
            "detected object), a DIFFERENT algorithm whose masks are not the official grid results."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="image files, folders of images, or list files (.txt, one image path per line)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument(
        "--format",
        choices=("coco", "png", "both"),
        default="both",
        help="coco: DIR/annotations.json; png: DIR/NAME/mask_NNNN.png per mask; both (default). "
        "--engine ray writes COCO JSON only",
    )
    parser.add_argument("--no-overlay", action="store_true", help="do not write DIR/NAME/overlay.png (local engine)")

    model = parser.add_argument_group("model")
    model.add_argument(
        "--model", choices=MODEL_TYPES, default="vit_t", help="vit_t = MobileSAM (default); vit_b/l/h = SAM"
    )
    model.add_argument("--checkpoint", type=Path, help="checkpoint file (default: the official file from the cache)")
    model.add_argument("--checkpoint-dir", type=Path, help="folder holding official checkpoint files (the cache)")
    model.add_argument("--no-download", action="store_true", help="never download a missing checkpoint")
    model.add_argument(
        "--random-weights",
        action="store_true",
        help="use randomly initialised SAM weights (for testing only: the masks are meaningless; "
        "the detector of --prompts objects still needs its file)",
    )
    model.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")

    prompts = parser.add_argument_group("prompts")
    prompts.add_argument(
        "--prompts",
        choices=("grid", "objects"),
        default="grid",
        help="grid: a grid of point prompts, the official generator's results (default); objects: "
        "MobileSAMv2's object-aware prompting, one box prompt per detected object, one mask each "
        "(a different algorithm: not the official results; much less decoder work)",
    )
    prompts.add_argument(
        "--detector",
        default="objectaware",
        help="box detector for --prompts objects: objectaware (MobileSAMv2's ObjectAwareModel.pt, "
        "default), fastsam-s, fastsam-x, or the path of an ultralytics checkpoint you trust",
    )
    prompts.add_argument("--max-boxes", type=int, default=300, help="objects: at most this many boxes (default 300)")
    prompts.add_argument(
        "--border-snap",
        type=float,
        default=20.0,
        help="objects: box sides within this many pixels of the image border move onto it (default 20)",
    )
    prompts.add_argument(
        "--boxes-per-batch", type=int, default=64, help="objects: boxes decoded per batch (default 64)"
    )

    knobs = parser.add_argument_group(
        "generator (the official SamAutomaticMaskGenerator settings; filters default to no filter with "
        "--prompts objects)"
    )
    knobs.add_argument(
        "--points-per-side", type=int, default=32, help="grid points along one side (default 32 = 1024 prompts)"
    )
    knobs.add_argument(
        "--points-per-batch", type=int, default=64, help="prompts decoded together (memory vs speed; default 64)"
    )
    knobs.add_argument(
        "--pred-iou-thresh", type=float, help="keep masks with predicted IoU above this (default 0.88; objects: 0)"
    )
    knobs.add_argument(
        "--stability-score-thresh",
        type=float,
        help="keep masks with stability score at least this (default 0.95; objects: 0)",
    )
    knobs.add_argument(
        "--stability-score-offset",
        type=float,
        default=1.0,
        help="logit offset of the stability score's two thresholds (default 1.0)",
    )
    knobs.add_argument(
        "--box-nms-thresh", type=float, help="box IoU for removing duplicate masks (default 0.7; objects: no NMS)"
    )
    knobs.add_argument(
        "--crop-n-layers", type=int, default=0, help="extra layers of image crops (default 0: whole image only)"
    )
    knobs.add_argument(
        "--crop-nms-thresh", type=float, default=0.7, help="box IoU for removing duplicates across crops (default 0.7)"
    )
    knobs.add_argument(
        "--crop-overlap-ratio",
        type=float,
        default=512 / 1500,
        help="overlap of neighbouring crops, fraction of the short side (default 512/1500)",
    )
    knobs.add_argument(
        "--crop-n-points-downscale-factor",
        type=int,
        default=1,
        help="points per side in crop layer i are divided by this**i (default 1)",
    )
    knobs.add_argument(
        "--min-mask-region-area",
        type=int,
        default=0,
        help="fill holes and remove islands smaller than this many pixels (default 0: off)",
    )
    knobs.add_argument(
        "--upsampling",
        choices=("torch", "opencv"),
        help="how masks reach the image size: torch (the official values; the grid's default) or opencv "
        "(the same geometry, logits within about 2e-5, about 2.5x cheaper per mask; the default with "
        "--prompts objects)",
    )

    engine = parser.add_argument_group("engine")
    engine.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: Ray Data actors, one model replica each, with "
        "per-image results, resume and DIR/failures.json (needs ray[data])",
    )
    engine.add_argument(
        "--ray-address",
        help="Ray cluster to join (e.g. auto or ray://HOST:10001); unset: start a local Ray on this machine",
    )
    engine.add_argument(
        "--num-workers", type=int, help="Ray actors (model replicas); default one per GPU, else half the CPUs"
    )
    return parser


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given, folders replaced by their image files (sorted, not recursing), list files by their lines."""
    files = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            lines = (line.strip() for line in path.read_text().splitlines())
            files.extend(path.parent / line for line in lines if line and not line.startswith("#"))
        else:
            files.append(path)
    return files


def unique_names(files: Sequence[Path]) -> list[str]:
    """Output names from file stems, with _2, _3, ... appended to repeats."""
    seen: dict[str, int] = {}
    names = []
    for file in files:
        count = seen.get(file.stem, 0) + 1
        seen[file.stem] = count
        names.append(file.stem if count == 1 else f"{file.stem}_{count}")
    return names


def generator_spec(args: argparse.Namespace):
    """The `GeneratorSpec` that the command line describes."""
    from .spec import GeneratorSpec

    filters = {
        key: getattr(args, key) if getattr(args, key) is not None else default
        for key, default in FILTER_DEFAULTS[args.prompts].items()
    }
    if args.prompts == "grid":
        settings = dict(
            points_per_side=args.points_per_side,
            points_per_batch=args.points_per_batch,
            stability_score_offset=args.stability_score_offset,
            crop_n_layers=args.crop_n_layers,
            crop_nms_thresh=args.crop_nms_thresh,
            crop_overlap_ratio=args.crop_overlap_ratio,
            crop_n_points_downscale_factor=args.crop_n_points_downscale_factor,
        )
    else:
        settings = dict(
            max_boxes=args.max_boxes,
            border_snap=args.border_snap,
            boxes_per_batch=args.boxes_per_batch,
            stability_score_offset=args.stability_score_offset,
        )
    if args.upsampling is not None:
        settings["upsampling"] = args.upsampling
    return GeneratorSpec(
        model=args.model,
        checkpoint=str(args.checkpoint) if args.checkpoint else None,
        checkpoint_dir=str(args.checkpoint_dir) if args.checkpoint_dir else None,
        download=not args.no_download,
        random_weights=args.random_weights,
        device=args.device,
        prompts=args.prompts,
        detector=args.detector,
        settings={**settings, **filters, "min_mask_region_area": args.min_mask_region_area},
    )


def run_local(args: argparse.Namespace, generator, files: Sequence[Path]) -> int:
    """The single-process path: every image in turn, COCO JSON, mask PNGs and overlays."""
    from mobile_sam.image import ImageLoadError, load_image

    from .export import ImageMasks, write_coco_json, write_mask_pngs, write_overlay_png

    results, failed = [], []
    for file, name in tqdm(list(zip(files, unique_names(files))), desc="images", unit="image"):
        try:
            image = load_image(file)
        except ImageLoadError as error:
            failed.append(file)
            tqdm.write(f"skipped {file}: {error}", file=sys.stderr)
            continue
        records = generator.generate(image)
        if args.format in ("png", "both"):
            write_mask_pngs(args.out / name, records)
        if not args.no_overlay:
            write_overlay_png(args.out / name / "overlay.png", image, records)
        results.append(ImageMasks(str(file), int(image.shape[0]), int(image.shape[1]), records))
        tqdm.write(f"{file}: {len(records)} masks", file=sys.stderr)
    if args.format in ("coco", "both"):
        path = write_coco_json(args.out / "annotations.json", results)
        print(f"wrote {path} ({len(results)} images)", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(files)} images failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0


def run_with_ray(args: argparse.Namespace, spec, files: Sequence[Path]) -> int:
    """The Ray path: per-image results as they finish, resume, failures.json, then annotations.json."""
    from .ray_engine import run_ray
    from .results import merge_results, write_failures

    names = unique_names(files)
    with tqdm(total=len(files), desc="images", unit="image") as bar:

        def on_image(name: str, status: str) -> None:
            bar.update(1)
            if status == "failed":
                tqdm.write(f"failed: {name}", file=sys.stderr)

        summary = run_ray(
            files, names, args.out, spec, address=args.ray_address, num_workers=args.num_workers, on_image=on_image
        )
        bar.update(len(summary.skipped))
    write_failures(args.out, summary.failures)
    path, count = merge_results(args.out, names)
    print(
        f"wrote {path} ({count} images: {len(summary.done)} now, {len(summary.skipped)} from earlier runs; "
        f"{len(summary.failures)} failed, see {args.out / 'failures.json'})",
        file=sys.stderr,
    )
    for failure in summary.failures:
        print(f"failed {failure['file']}: {failure['error']}", file=sys.stderr)
    return 1 if summary.failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mobile_sam.allocator import keep_freed_memory
    from mobile_sam.checkpoints import CheckpointError

    keep_freed_memory()
    files = expand_paths(args.paths)
    if not files:
        print("error: no images found in the given paths", file=sys.stderr)
        return 2
    if args.random_weights:
        print(
            "WARNING: --random-weights: the model is randomly initialised; its masks are MEANINGLESS "
            "(use this only to test the pipeline).",
            file=sys.stderr,
        )
    if args.prompts == "objects":
        print(
            "note: --prompts objects is MobileSAMv2's object-aware mode, a different algorithm: its masks are not "
            "the official grid generator's results.",
            file=sys.stderr,
        )
    try:
        spec = generator_spec(args)
        if args.engine == "ray":
            return run_with_ray(args, spec, files)
        generator = spec.build()
    except (CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return run_local(args, generator, files)


if __name__ == "__main__":
    sys.exit(main())
