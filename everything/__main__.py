"""Command line: segment everything in images and write COCO JSON, mask PNGs and overlays.

    python -m everything PATH... --out DIR [--model vit_t] [--checkpoint FILE] [--device auto] [--format both]

PATH may be image files or folders (their images, not recursing). An unreadable image is reported and
skipped; the exit status is 1 at the end if any image failed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
MODEL_TYPES = ("vit_t", "vit_b", "vit_l", "vit_h")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m everything",
        description="Segment everything in images with MobileSAM / SAM (the official automatic mask generator's results).",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders of images")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument("--format", choices=("coco", "png", "both"), default="both",
                        help="coco: DIR/annotations.json; png: DIR/NAME/mask_NNNN.png per mask; both (default)")
    parser.add_argument("--no-overlay", action="store_true", help="do not write DIR/NAME/overlay.png")

    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=MODEL_TYPES, default="vit_t", help="vit_t = MobileSAM (default); vit_b/l/h = SAM")
    model.add_argument("--checkpoint", type=Path, help="checkpoint file (default: the official file from the cache)")
    model.add_argument("--checkpoint-dir", type=Path, help="folder holding official checkpoint files (the cache)")
    model.add_argument("--no-download", action="store_true", help="never download a missing checkpoint")
    model.add_argument("--random-weights", action="store_true",
                       help="use randomly initialised weights (for testing only: the masks are meaningless)")
    model.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")

    knobs = parser.add_argument_group("generator (the official SamAutomaticMaskGenerator settings)")
    knobs.add_argument("--points-per-side", type=int, default=32, help="grid points along one side (default 32 = 1024 prompts)")
    knobs.add_argument("--points-per-batch", type=int, default=64, help="prompts decoded together (memory vs speed; default 64)")
    knobs.add_argument("--pred-iou-thresh", type=float, default=0.88, help="keep masks with predicted IoU above this (default 0.88)")
    knobs.add_argument("--stability-score-thresh", type=float, default=0.95,
                       help="keep masks with stability score at least this (default 0.95)")
    knobs.add_argument("--stability-score-offset", type=float, default=1.0,
                       help="logit offset of the stability score's two thresholds (default 1.0)")
    knobs.add_argument("--box-nms-thresh", type=float, default=0.7, help="box IoU for removing duplicate masks (default 0.7)")
    knobs.add_argument("--crop-n-layers", type=int, default=0, help="extra layers of image crops (default 0: whole image only)")
    knobs.add_argument("--crop-nms-thresh", type=float, default=0.7,
                       help="box IoU for removing duplicates across crops (default 0.7)")
    knobs.add_argument("--crop-overlap-ratio", type=float, default=512 / 1500,
                       help="overlap of neighbouring crops, fraction of the short side (default 512/1500)")
    knobs.add_argument("--crop-n-points-downscale-factor", type=int, default=1,
                       help="points per side in crop layer i are divided by this**i (default 1)")
    knobs.add_argument("--min-mask-region-area", type=int, default=0,
                       help="fill holes and remove islands smaller than this many pixels (default 0: off)")
    return parser


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given, folders replaced by their image files (sorted, not recursing)."""
    files = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
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


def load_model(args: argparse.Namespace):
    """The model named on the command line, on the requested device, in eval mode."""
    from mobile_sam import sam_model_registry
    from mobile_sam.checkpoints import resolve_checkpoint
    from mobile_sam.device import resolve_device

    device = resolve_device(args.device)
    if args.random_weights:
        print(
            "WARNING: --random-weights: the model is randomly initialised; its masks are MEANINGLESS "
            "(use this only to test the pipeline).",
            file=sys.stderr,
        )
        checkpoint = None
    else:
        checkpoint = resolve_checkpoint(
            args.model, path=args.checkpoint, cache_dir=args.checkpoint_dir, download=not args.no_download
        )
    return sam_model_registry[args.model](checkpoint).to(device).eval()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mobile_sam.checkpoints import CheckpointError
    from mobile_sam.image import ImageLoadError, load_image

    from . import SamAutomaticMaskGenerator
    from .allocator import keep_freed_memory
    from .export import ImageMasks, write_coco_json, write_mask_pngs, write_overlay_png

    keep_freed_memory()
    files = expand_paths(args.paths)
    if not files:
        print("error: no images found in the given paths", file=sys.stderr)
        return 2
    try:
        model = load_model(args)
        generator = SamAutomaticMaskGenerator(
            model,
            points_per_side=args.points_per_side,
            points_per_batch=args.points_per_batch,
            pred_iou_thresh=args.pred_iou_thresh,
            stability_score_thresh=args.stability_score_thresh,
            stability_score_offset=args.stability_score_offset,
            box_nms_thresh=args.box_nms_thresh,
            crop_n_layers=args.crop_n_layers,
            crop_nms_thresh=args.crop_nms_thresh,
            crop_overlap_ratio=args.crop_overlap_ratio,
            crop_n_points_downscale_factor=args.crop_n_points_downscale_factor,
            min_mask_region_area=args.min_mask_region_area,
            output_mode="coco_rle",
        )
    except (CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

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


if __name__ == "__main__":
    sys.exit(main())
