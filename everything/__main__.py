"""Command line: segment everything in images and write COCO JSON, mask PNGs and overlays.

    python -m everything PATH... --out DIR [--model vit_t] [--prompts grid|objects] [--boxes FILE]
                                 [--pipeline auto|mobilesamv2|mobilesam-boxes] [--engine local|ray] [--restart]
    python -m everything eval RESULT... GROUND_TRUTH [--out DIR]     (mask AR@K: `everything.eval_cli`)
    python -m everything compare IMAGE --out DIR [--pipelines P,...]  (side by side: `everything.compare_cli`)

PATH may be image files, folders (their images, recursively) or list files (.txt: one image path per line,
relative to the list's folder); each image's output name is its path relative to that root (`everything.inputs`),
and names that would collide are refused before any work. Both engines write the same folder
(`everything.results`): per-image results as they finish, `annotations.json`, `failures.json`, and `run.json`,
the settings, which a rerun must match to resume (`everything.run_record`; `--restart` starts over). Every knob
is checked before any work (`everything.settings`). --prompts objects runs one of two pipelines
(`everything.pipelines`): MobileSAMv2 as published when its files are in the checkpoint folder (or with
--pipeline mobilesamv2), else object-aware boxes with MobileSAM's decoder; run.json and annotations.json name the
pipeline. An unreadable image is reported and skipped; the exit status is 1 at the end if any image failed, 2 when
the run was refused. A first argument `eval` or `compare` is that command; an image or folder of that name
is written ./eval or ./compare.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from samkit.knobs import KnobError, Rule
from samkit.models import DETECTORS, MOBILE_SAM, MOBILESAMV2_DETECTOR, MODELS, SAM_MODELS

from .pipelines import (
    BOXES_PIPELINE,
    DEFAULT_DETECTORS,
    MOBILESAMV2_KNOBS,
    MOBILESAMV2_PIPELINE,
    OBJECT_PIPELINES,
    PIPELINES,
    mobilesamv2_missing,
)
from .settings import DEFAULTS, GRID, KNOBS, OBJECTS, PROMPT_MODES, SETTINGS

# The detectors' checkpoints come through samkit.checkpoints: ultralytics must never reach the network (nor
# pip-install anything) for a run over a dataset.
os.environ.setdefault("YOLO_OFFLINE", "1")
GRID_D, OBJECTS_D = DEFAULTS[GRID], DEFAULTS[OBJECTS]
FORMATS = ("coco", "png", "both")
AUTO = "auto"
CHECKPOINT_OPTIONS = (
    "Here: --checkpoint FILE (the SAM weights), --detector FILE (a detector), --checkpoint-dir DIR (a folder of "
    "official files), or --random-weights to try the pipeline without weights."
)


def knob(group: argparse._ArgumentGroup, name: str, help: str) -> None:
    """A generator knob's option: parsed and checked by its rule (`everything.settings.KNOBS`); unset: None."""
    group.add_argument("--" + name.replace("_", "-"), type=KNOBS[name].parse, help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m everything",
        description=(
            "Segment everything in images with MobileSAM / SAM / MobileSAMv2. --prompts grid (default) gives the "
            "official automatic mask generator's results; --prompts objects is object-aware prompting (one box "
            "prompt per detected object, or per box of --boxes), a DIFFERENT algorithm whose masks are not the "
            "official grid results: MobileSAMv2 itself when its files are there (--pipeline), else the boxes with "
            "MobileSAM's decoder."
        ),
        epilog="python -m everything eval RESULT... GROUND_TRUTH scores results as object proposals (mask AR@K; "
        "see its --help); python -m everything compare IMAGE --out DIR runs the pipelines side by side on one image "
        "(see its --help). An input path named eval or compare: write ./eval or ./compare.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="image files, folders of images (searched recursively) or list files (.txt, one image path per line); "
        "each image's output NAME is its path relative to the folder, list file or file's folder given",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="both",
        help="coco: DIR/annotations.json; png: DIR/masks/NAME/mask_NNNN.png per mask; both (default). "
        "DIR/results/NAME.json is always written (it marks an image done)",
    )
    parser.add_argument("--no-overlay", action="store_true", help="do not write DIR/masks/NAME/overlay.png")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="delete the results of earlier runs in DIR first (default: resume them, which needs the same settings)",
    )

    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        choices=SAM_MODELS,
        help="; ".join(f"{name} = {MODELS[name].label}" for name in SAM_MODELS)
        + f" (default {MOBILE_SAM}; the mobilesamv2 pipeline is its own model)",
    )
    model.add_argument(
        "--checkpoint",
        type=Path,
        help="checkpoint file (default: the official file from the cache); with --pipeline mobilesamv2, its l2.pt",
    )
    model.add_argument("--checkpoint-dir", type=Path, help="folder holding official checkpoint files (the cache)")
    model.add_argument("--no-download", action="store_true", help="never download a missing checkpoint")
    model.add_argument(
        "--random-weights",
        action="store_true",
        help="use randomly initialised model weights (for testing only: the masks are meaningless; "
        "the detector of --prompts objects still needs its file)",
    )
    model.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")

    prompts = parser.add_argument_group("prompts")
    prompts.add_argument(
        "--prompts",
        choices=PROMPT_MODES,
        help="grid: a grid of point prompts, the official generator's results (default); objects: "
        "MobileSAMv2's object-aware prompting, one box prompt per detected object, one mask each "
        "(a different algorithm: not the official results; much less decoder work; the default with --boxes)",
    )
    prompts.add_argument(
        "--pipeline",
        choices=(AUTO, *OBJECT_PIPELINES),
        default=AUTO,
        help=f"--prompts objects: {MOBILESAMV2_PIPELINE} = {PIPELINES[MOBILESAMV2_PIPELINE]}, from l2.pt, "
        f"Prompt_guided_Mask_Decoder.pt and ObjectAwareModel.pt in the checkpoint folder (--checkpoint and --detector "
        f"may name the first and the last); {BOXES_PIPELINE} = {PIPELINES[BOXES_PIPELINE]}, which needs no file of "
        f"MobileSAMv2's; {AUTO} (default): {MOBILESAMV2_PIPELINE} when its files are in the checkpoint folder and "
        f"no --model, --checkpoint, other --detector or knob of {BOXES_PIPELINE} is given, else {BOXES_PIPELINE}",
    )
    prompts.add_argument(
        "--detector",
        help=f"box detector for --prompts objects: {MOBILESAMV2_DETECTOR} (MobileSAMv2's ObjectAwareModel.pt, the "
        f"default of {MOBILESAMV2_PIPELINE}), fastsam-s (the default of {BOXES_PIPELINE}), fastsam-x, or the path of "
        "an ultralytics checkpoint you trust",
    )
    prompts.add_argument(
        "--boxes",
        type=Path,
        metavar="FILE",
        help='your own boxes instead of a detector (objects mode): JSON {"NAME": {"boxes": [[x0, y0, x1, y1], ...]}} '
        "with an entry for every image (NAME as in the output folder, e.g. x.jpg or sub/x.jpg; pixels of the image)",
    )
    knob(prompts, "max_boxes", f"objects: at most this many boxes (default {OBJECTS_D['max_boxes']})")
    knob(
        prompts,
        "border_snap",
        f"objects: box sides within this many pixels of the image border move onto it (default "
        f"{OBJECTS_D['border_snap']})",
    )
    knob(prompts, "boxes_per_batch", f"objects: boxes decoded per batch (default {OBJECTS_D['boxes_per_batch']})")

    knobs = parser.add_argument_group(
        "generator (the official SamAutomaticMaskGenerator settings; filters default to no filter with "
        "--prompts objects)"
    )
    knob(knobs, "points_per_side", f"grid points along one side (default {GRID_D['points_per_side']})")
    knob(knobs, "points_per_batch", f"prompts decoded together (memory vs speed; default {GRID_D['points_per_batch']})")
    knob(
        knobs,
        "pred_iou_thresh",
        f"keep masks with predicted IoU above this, 0..1 (default {GRID_D['pred_iou_thresh']}; objects: "
        f"{OBJECTS_D['pred_iou_thresh']})",
    )
    knob(
        knobs,
        "stability_score_thresh",
        f"keep masks with stability score at least this, 0..1 (default {GRID_D['stability_score_thresh']}; "
        f"objects: {OBJECTS_D['stability_score_thresh']})",
    )
    knob(
        knobs,
        "stability_score_offset",
        f"logit offset of the stability score's two thresholds (default {GRID_D['stability_score_offset']})",
    )
    knob(knobs, "box_nms_thresh", f"box IoU for removing duplicate masks (default {GRID_D['box_nms_thresh']}; "
         "objects: no NMS)")  # fmt: skip
    knob(knobs, "crop_n_layers", f"extra layers of image crops, 0..5 (default {GRID_D['crop_n_layers']}: whole image)")
    knob(
        knobs, "crop_nms_thresh", f"box IoU for removing duplicates across crops (default {GRID_D['crop_nms_thresh']})"
    )
    knob(
        knobs,
        "crop_overlap_ratio",
        f"overlap of neighbouring crops, fraction of the short side (default {GRID_D['crop_overlap_ratio']:.4f})",
    )
    knob(
        knobs,
        "crop_n_points_downscale_factor",
        f"points per side in crop layer i are divided by this**i (default {GRID_D['crop_n_points_downscale_factor']})",
    )
    knob(
        knobs,
        "min_mask_region_area",
        f"fill holes and remove islands smaller than this many pixels (default {GRID_D['min_mask_region_area']}: off)",
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
        help="local: this process (default); ray: Ray Data actors, one model replica each (needs ray[data]); "
        "both write the same output folder and resume each other's runs",
    )
    engine.add_argument(
        "--ray-address",
        help="Ray cluster to join (e.g. auto or ray://HOST:10001); unset: start a local Ray on this machine",
    )
    engine.add_argument(
        "--num-workers",
        type=Rule(integer=True, low=1).parse,
        help="Ray actors (model replicas); default one per GPU, else half the CPUs",
    )
    return parser


def prompt_mode(args: argparse.Namespace) -> str:
    """The prompt mode: --prompts, else objects with --boxes, else grid."""
    if args.boxes is not None and args.prompts == GRID:
        raise KnobError("--boxes gives box prompts: it needs --prompts objects (the default with --boxes)")
    if args.boxes is not None and args.detector is not None:
        raise KnobError("give --boxes or --detector, not both")
    return args.prompts or (OBJECTS if args.boxes is not None else GRID)


def generator_spec(args: argparse.Namespace):
    """The `GeneratorSpec` that the command line describes; a knob the prompt mode does not have is refused."""
    from .spec import GeneratorSpec

    mode = prompt_mode(args)
    given = given_settings(args)
    foreign = ["--" + name.replace("_", "-") for name in given if name not in SETTINGS[mode]]
    if foreign:
        raise KnobError(f"not a setting of --prompts {mode}: {', '.join(foreign)}")
    if mode == GRID and (args.detector is not None or args.pipeline != AUTO):
        raise KnobError("--detector and --pipeline apply to --prompts objects")
    pipeline = None if mode == GRID else object_pipeline(args, given)[0]
    if pipeline == MOBILESAMV2_PIPELINE and args.model is not None:
        raise KnobError(
            f"--model applies to the {BOXES_PIPELINE} and grid pipelines: {MOBILESAMV2_PIPELINE} is its own model"
        )
    detector = None if args.boxes is not None or mode == GRID else (args.detector or DEFAULT_DETECTORS[pipeline])
    if detector is not None and detector.strip().lower() not in DETECTORS and not Path(detector).expanduser().is_file():
        raise KnobError(f"--detector must be one of {', '.join(DETECTORS)} or a checkpoint file, got {detector!r}")
    if pipeline == MOBILESAMV2_PIPELINE and detector is not None and detector.strip().lower() in DETECTORS:
        if detector.strip().lower() != MOBILESAMV2_DETECTOR:
            raise KnobError(f"the detector of {MOBILESAMV2_PIPELINE} is {MOBILESAMV2_DETECTOR} (or its file)")
    return GeneratorSpec(
        pipeline=pipeline,
        model=args.model,
        checkpoint=str(args.checkpoint) if args.checkpoint else None,
        checkpoint_dir=str(args.checkpoint_dir) if args.checkpoint_dir else None,
        download=not args.no_download,
        random_weights=args.random_weights,
        device=args.device,
        prompts=mode,
        detector=detector,
        settings=given,
    )


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The generator settings given on the command line."""
    return {name: getattr(args, name) for name in (*KNOBS, "upsampling") if getattr(args, name, None) is not None}


def object_pipeline(args: argparse.Namespace, given: dict[str, Any]) -> tuple[str, str]:
    """The pipeline of --prompts objects and why: --pipeline; else (auto) MobileSAMv2 when its files are in the
    checkpoint folder and nothing given belongs to the other pipeline (--model, --checkpoint, another --detector,
    a knob MobileSAMv2 does not take); else object-aware boxes with MobileSAM's decoder."""
    if args.pipeline != AUTO:
        return args.pipeline, "--pipeline"
    others = [flag for flag in ("model", "checkpoint") if getattr(args, flag) is not None]
    if args.detector is not None and args.detector.strip().lower() != MOBILESAMV2_DETECTOR:
        others.append("detector")
    others += [name for name in given if name not in MOBILESAMV2_KNOBS]
    if others:
        return BOXES_PIPELINE, "given " + ", ".join("--" + name.replace("_", "-") for name in others)
    missing = mobilesamv2_missing(args.checkpoint_dir, caller_boxes=args.boxes is not None)
    if missing:
        return BOXES_PIPELINE, f"{MOBILESAMV2_PIPELINE} runs instead when its files are there: missing " + ", ".join(
            str(path) for path in missing
        )
    return MOBILESAMV2_PIPELINE, "its files are in the checkpoint folder"


def check_extras(args: argparse.Namespace, spec: Any) -> None:
    """The optional packages this run needs, imported now (a `MissingExtraError` names the extra)."""
    from samkit.extras import ULTRALYTICS_USE, require

    if args.engine == "ray":
        from samkit.ray_map import import_ray

        import_ray()
    if spec.detector is not None:
        require("ultralytics", ULTRALYTICS_USE)


def run_settings(spec: Any, args: argparse.Namespace) -> dict[str, Any]:
    """What the results depend on (`run.json`'s settings): the resolved spec's record and the outputs asked for."""
    return {**spec.record(), "format": args.format, "overlay": not args.no_overlay}


def run(args: argparse.Namespace) -> int:
    """Check everything, then segment the images not done yet and write the outputs (see the module doc)."""
    from tqdm import tqdm

    from samkit.allocator import keep_freed_memory

    from .dataset import Job, run_local
    from .inputs import list_inputs, read_boxes_file
    from .results import merge_results, write_failures
    from .run_record import input_records, open_run

    spec = generator_spec(args)
    check_extras(args, spec)
    inputs = list_inputs(args.paths, args.out)
    boxes = read_boxes_file(args.boxes, inputs) if args.boxes is not None else None
    keep_freed_memory()
    _print_notes(args, spec)
    spec = spec.resolved()  # find (or download) the weights once, here, not in every worker
    done = set(open_run(args.out, run_settings(spec, args), input_records(inputs, boxes), args.restart))
    jobs = [Job(item, None if boxes is None else boxes[item.name]) for item in inputs if item.name not in done]
    pngs, overlay = args.format in ("png", "both"), not args.no_overlay
    with tqdm(total=len(jobs), desc="images", unit="image") as bar:

        def on_image(name: str, status: str) -> None:
            bar.update(1)
            if status == "failed":
                tqdm.write(f"failed: {name}", file=sys.stderr)

        if not jobs:
            summary = None
        elif args.engine == "ray":
            from .ray_engine import run_ray

            summary = run_ray(
                spec,
                jobs,
                args.out,
                pngs=pngs,
                overlay=overlay,
                address=args.ray_address,
                num_workers=args.num_workers,
                on_image=on_image,
            )
        else:
            summary = run_local(spec.build(), jobs, args.out, pngs=pngs, overlay=overlay, on_image=on_image)
    failures = summary.failures if summary is not None else []
    write_failures(args.out, failures)
    now = len(summary.done) if summary is not None else 0
    if args.format in ("coco", "both"):
        path, count = merge_results(args.out, [item.name for item in inputs], {"pipeline": spec.pipeline})
        print(f"wrote {path} ({count} images)", file=sys.stderr)
    print(
        f"{len(inputs)} images: {now} now, {len(done)} from earlier runs, {len(failures)} failed"
        + (f" (see {args.out / 'failures.json'})" if failures else ""),
        file=sys.stderr,
    )
    for failure in failures:
        print(f"failed {failure['file']}: {failure['error']}", file=sys.stderr)
    return 1 if failures else 0


def _print_notes(args: argparse.Namespace, spec: Any) -> None:
    if args.random_weights:
        print(
            "WARNING: --random-weights: the model is randomly initialised; its masks are MEANINGLESS "
            "(use this only to test the pipeline).",
            file=sys.stderr,
        )
    if spec.prompts == OBJECTS:
        why = object_pipeline(args, given_settings(args))[1]
        print(
            f"note: --prompts objects runs the {spec.pipeline} pipeline ({why}): "
            f"{PIPELINES[spec.pipeline]}; a different algorithm: its masks are not the official grid generator's "
            "results.",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"]:
        from .eval_cli import run_eval

        return run_eval(argv[1:])
    if argv[:1] == ["compare"]:
        from .compare_cli import run_compare

        return run_compare(argv[1:])
    args = build_parser().parse_args(argv)
    from samkit.checkpoints import CheckpointError
    from samkit.extras import MissingExtraError

    from .inputs import InputError
    from .run_record import ResumeError

    try:
        return run(args)
    except CheckpointError as error:
        print(f"error: {error}\n{CHECKPOINT_OPTIONS}", file=sys.stderr)
        return 2
    except (KnobError, InputError, ResumeError, MissingExtraError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
