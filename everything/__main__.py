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

from samkit.models import MODELS, SAM_MODELS

from .settings import DEFAULTS, FILTERS, GRID, OBJECTS

GRID_D, OBJECTS_D = DEFAULTS[GRID], DEFAULTS[OBJECTS]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
LIST_SUFFIXES = (".txt", ".lst")


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
        "--model",
        choices=SAM_MODELS,
        default=SAM_MODELS[0],
        help="; ".join(f"{name} = {MODELS[name].label}" for name in SAM_MODELS) + f" (default {SAM_MODELS[0]})",
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
    prompts.add_argument(
        "--max-boxes",
        type=int,
        default=OBJECTS_D["max_boxes"],
        help="objects: at most this many boxes (default %(default)s)",
    )
    prompts.add_argument(
        "--border-snap",
        type=float,
        default=OBJECTS_D["border_snap"],
        help="objects: box sides within this many pixels of the image border move onto it (default %(default)s)",
    )
    prompts.add_argument(
        "--boxes-per-batch",
        type=int,
        default=OBJECTS_D["boxes_per_batch"],
        help="objects: boxes decoded per batch (default %(default)s)",
    )

    knobs = parser.add_argument_group(
        "generator (the official SamAutomaticMaskGenerator settings; filters default to no filter with "
        "--prompts objects)"
    )
    knobs.add_argument(
        "--points-per-side",
        type=int,
        default=GRID_D["points_per_side"],
        help="grid points along one side (default %(default)s)",
    )
    knobs.add_argument(
        "--points-per-batch",
        type=int,
        default=GRID_D["points_per_batch"],
        help="prompts decoded together (memory vs speed; default %(default)s)",
    )
    knobs.add_argument(
        "--pred-iou-thresh",
        type=float,
        help=f"keep masks with predicted IoU above this (default {GRID_D['pred_iou_thresh']}; objects: "
        f"{OBJECTS_D['pred_iou_thresh']})",
    )
    knobs.add_argument(
        "--stability-score-thresh",
        type=float,
        help=f"keep masks with stability score at least this (default {GRID_D['stability_score_thresh']}; "
        f"objects: {OBJECTS_D['stability_score_thresh']})",
    )
    knobs.add_argument(
        "--stability-score-offset",
        type=float,
        default=GRID_D["stability_score_offset"],
        help="logit offset of the stability score's two thresholds (default %(default)s)",
    )
    knobs.add_argument(
        "--box-nms-thresh",
        type=float,
        help=f"box IoU for removing duplicate masks (default {GRID_D['box_nms_thresh']}; objects: no NMS)",
    )
    knobs.add_argument(
        "--crop-n-layers",
        type=int,
        default=GRID_D["crop_n_layers"],
        help="extra layers of image crops (default %(default)s: whole image only)",
    )
    knobs.add_argument(
        "--crop-nms-thresh",
        type=float,
        default=GRID_D["crop_nms_thresh"],
        help="box IoU for removing duplicates across crops (default %(default)s)",
    )
    knobs.add_argument(
        "--crop-overlap-ratio",
        type=float,
        default=GRID_D["crop_overlap_ratio"],
        help="overlap of neighbouring crops, fraction of the short side (default %(default).4f)",
    )
    knobs.add_argument(
        "--crop-n-points-downscale-factor",
        type=int,
        default=GRID_D["crop_n_points_downscale_factor"],
        help="points per side in crop layer i are divided by this**i (default %(default)s)",
    )
    knobs.add_argument(
        "--min-mask-region-area",
        type=int,
        default=GRID_D["min_mask_region_area"],
        help="fill holes and remove islands smaller than this many pixels (default %(default)s: off)",
    )
    knobs.add_argument(
        "--upsampling",
        choices=("torch", "opencv"),
        help="how masks reach the image size: torch (the official values; the grid's default) or opencv "
        "(the same geometry, logits within about 2e-5, cheaper per mask; the default with "
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
        for key, default in {name: DEFAULTS[args.prompts][name] for name in FILTERS}.items()
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
    from samkit.images import ImageLoadError, load_image
    from samkit.writers import ImageMasks, write_coco_json, write_mask_pngs, write_overlay_png

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
    from samkit.allocator import keep_freed_memory
    from samkit.checkpoints import CheckpointError

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
