"""`python -m everything compare IMAGE --out DIR [--pipelines P,P,...] [--reference P]`: segment-everything
pipelines side by side on one image (`everything.comparison`).

The table goes to stdout; DIR gets, each written atomically: comparison.json (the settings and one row per pipeline:
masks, milliseconds per stage, agreement with the reference), side_by_side.png (each pipeline's masks over the
image) and masks_PIPELINE.json per pipeline that ran (COCO, for `python -m everything eval`). A pipeline whose files
are missing is reported as skipped, naming them. Exit status: 0 when a pipeline ran, 1 when none could, 2 for
bad input.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from mobile_sam.utils.atomic import atomic_write_bytes
from samkit.writers import ImageMasks, write_coco_json

from .comparison import RANDOM_NOTE, build_generator, compare_pipelines, comparison_rows, rows_table, side_by_side_png
from .pipelines import GRID_PIPELINE, PIPELINES
from .settings import DEFAULTS, GRID, KNOBS

COMPARISON_FILE = "comparison.json"
FIGURE_FILE = "side_by_side.png"
MASKS_FILE = "masks_{}.json"


def compare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m everything compare",
        description="Segment everything in one image with several pipelines and compare them: masks, latency "
        "(detector / image encoder / decoder and post-processing) and agreement with a reference pipeline (recall "
        "of the reference's masks at IoU 0.5 and 0.75, mean best IoU). Pipelines: "
        + "; ".join(f"{name} = {text}" for name, text in PIPELINES.items()),
    )
    parser.add_argument("image", type=Path, metavar="IMAGE", help="the image file")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument(
        "--pipelines",
        type=_pipelines,
        default=tuple(PIPELINES),
        metavar="P,P,...",
        help=f"the pipelines, in order (default {','.join(PIPELINES)})",
    )
    parser.add_argument(
        "--reference",
        default=GRID_PIPELINE,
        help=f"the pipeline whose masks the others are measured against (default {GRID_PIPELINE})",
    )
    parser.add_argument(
        "--points-per-side",
        type=KNOBS["points_per_side"].parse,
        help=f"the grid's points per side (default {DEFAULTS[GRID]['points_per_side']})",
    )
    parser.add_argument("--checkpoint-dir", type=Path, help="folder holding official checkpoint files (the cache)")
    parser.add_argument("--no-download", action="store_true", help="never download a missing checkpoint")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="every network randomly initialised, the detectors too (no file needed; the masks are MEANINGLESS)",
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    return parser


def run_compare(argv: Sequence[str]) -> int:
    """Run `python -m everything compare` (see the module doc)."""
    from samkit.devices import resolve_device
    from samkit.images import ImageLoadError, load_image

    parser = compare_parser()
    args = parser.parse_args(argv)
    if args.reference not in args.pipelines:
        parser.error(f"--reference {args.reference} is not one of --pipelines {','.join(args.pipelines)}")
    try:
        resolve_device(args.device)
        image = load_image(args.image)
    except (ImageLoadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.random_weights:
        print(f"WARNING: --random-weights: {RANDOM_NOTE.upper()} (only to test the pipelines).", file=sys.stderr)

    def build(pipeline: str):
        return build_generator(
            pipeline,
            random_weights=args.random_weights,
            checkpoint_dir=args.checkpoint_dir,
            download=not args.no_download,
            device=args.device,
            points_per_side=args.points_per_side,
        )

    runs = compare_pipelines(image, args.pipelines, build, checkpoint_dir=args.checkpoint_dir)
    rows = comparison_rows(runs, args.reference)
    print(rows_table(rows))
    ran = [run for run in runs if run.skipped is None]
    report = {
        "image": str(args.image),
        "image_size": list(image.shape[:2]),
        "reference": args.reference,
        "random_weights": args.random_weights,
        "note": RANDOM_NOTE if args.random_weights else None,
        "points_per_side": args.points_per_side or DEFAULTS[GRID]["points_per_side"],
        "device": args.device,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "rows": rows,
    }
    atomic_write_bytes(args.out / COMPARISON_FILE, json.dumps(report, indent=1).encode("utf-8"))
    if ran:
        atomic_write_bytes(args.out / FIGURE_FILE, side_by_side_png(image, ran, args.random_weights))
    for run in ran:
        masks = ImageMasks(args.image.name, int(image.shape[0]), int(image.shape[1]), run.records)
        write_coco_json(args.out / MASKS_FILE.format(run.pipeline), [masks], {"pipeline": run.pipeline})
    print(f"wrote {args.out / COMPARISON_FILE}" + (f" and {args.out / FIGURE_FILE}" if ran else ""), file=sys.stderr)
    return 0 if ran else 1


def _pipelines(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in PIPELINES]
    if not names or unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected distinct pipelines among {','.join(PIPELINES)} separated by commas, got {text!r}"
        )
    return names
