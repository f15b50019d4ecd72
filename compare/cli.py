"""Command line: `python -m compare IMAGES... [options]` and `python -m compare params`."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from samkit.checkpoints import CheckpointError
from samkit.devices import resolve_device
from samkit.extras import ULTRALYTICS_USE, MissingExtraError, require
from samkit.images import load_image
from samkit.knobs import Rule
from samkit.models import FASTSAM_MODELS, MOBILE_SAM, MODELS, PAPER_REFERENCE
from samkit.protocols import PAPER_DISTANCES, PROTOCOLS, load_user_prompts

from .fastsam_rules import DEFAULT_FASTSAM_RULES, FASTSAM_RULES, FASTSAM_RULES_DESCRIPTIONS
from .models import (
    MODEL_NAMES,
    BackendFactory,
    BuildOptions,
    architecture_parameter_counts,
    build_backend,
    canonical_model_name,
)
from .outputs import write_outputs
from .report import fastsam_rules_note, latency_markdown, miou_markdown, parameters_markdown, skipped_distances_note
from .runner import ProtocolSpec, check_distances_fit, run_comparison

_DESCRIPTION = f"""\
Compare original SAM, MobileSAM, EfficientViT-SAM and FastSAM on the same images and prompts: mIoU of each model's
masks against a reference model's (the MobileSAM paper treats original SAM ViT-H as ground truth), and latency
split into image encoder (once per image) and decoder (once per prompt).

Models: {", ".join(MODEL_NAMES)}.
Checkpoints come from --checkpoint NAME=FILE, else the checkpoint folder (--checkpoint-dir, else
$MOBILE_SAM_CACHE_DIR, else ~/.cache/mobile_sam); --download fetches missing official files.
`python -m compare params` prints parameter counts from the model definitions alone.
"""


DISTANCE = Rule(low=0.0, low_open=True)
COUNT, NON_NEGATIVE = Rule(integer=True, low=1), Rule(integer=True, low=0)


def _csv_floats(text: str) -> tuple[float, ...]:
    values = tuple(DISTANCE.parse(v) for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated distances, got {text!r}")
    return values


def _model_list(text: str) -> list[str]:
    try:
        return [canonical_model_name(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _model_name(text: str) -> str:
    try:
        return canonical_model_name(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _checkpoint_pair(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE (e.g. vit_h=sam_vit_h_4b8939.pth), got {text!r}")
    return _model_name(name), Path(path)


def comparison_parser() -> argparse.ArgumentParser:
    """The parser of `python -m compare IMAGES...`."""
    p = argparse.ArgumentParser(
        prog="python -m compare", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, ...); names must be unique")
    p.add_argument(
        "--reference",
        type=_model_name,
        default=PAPER_REFERENCE,
        help="model whose masks count as ground truth (default: vit_h, as in the paper)",
    )
    p.add_argument(
        "--models",
        type=_model_list,
        default=[MOBILE_SAM, "fastsam-x"],
        help="comma-separated models compared with the reference (default: vit_t,fastsam-x)",
    )
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="points2",
        help="points2: a foreground and a background point D px apart (paper Table 7); point: one "
        "random point; box: a box jittered around the reference mask of a random point; user: "
        "prompts from --prompts (default: points2)",
    )
    p.add_argument(
        "--distances",
        type=_csv_floats,
        default=PAPER_DISTANCES,
        help="points2 distances in original-image pixels (default: 100,200,300,400,500)",
    )
    p.add_argument(
        "--prompts-per-image",
        type=COUNT.parse,
        default=20,
        help="prompts per image, per distance for points2 (default: 20)",
    )
    p.add_argument(
        "--prompts",
        type=Path,
        help='user prompts, JSON: {"image.jpg": [{"points": [[x, y]], "labels": [1]}, {"box": [x0, y0, x1, y1]}]}',
    )
    p.add_argument(
        "--fastsam-rules",
        choices=FASTSAM_RULES,
        default=DEFAULT_FASTSAM_RULES,
        help="how a prompt selects FastSAM's instances: "
        + "; ".join(f"{name}: {text}" for name, text in FASTSAM_RULES_DESCRIPTIONS.items())
        + f" (default: {DEFAULT_FASTSAM_RULES})",
    )
    p.add_argument("--seed", type=NON_NEGATIVE.parse, default=0, help="seed of the prompt sampling (default: 0)")
    p.add_argument("--out", type=Path, required=True, help="output folder (CSV, JSON, markdown report, figures)")
    p.add_argument("--checkpoint-dir", type=Path, help="folder holding the official checkpoint files")
    p.add_argument(
        "--checkpoint",
        type=_checkpoint_pair,
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="explicit checkpoint for one model, e.g. vit_h=/data/sam_vit_h_4b8939.pth (repeatable)",
    )
    p.add_argument("--download", action="store_true", help="download missing official checkpoints")
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="build every model with random weights drawn with --seed (no files needed; masks and mIoU "
        "are meaningless, timings and parameter counts are real)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--threads", type=COUNT.parse, help="torch CPU threads for every model (default: torch's)")
    p.add_argument(
        "--warmup", type=NON_NEGATIVE.parse, default=1, help="untimed runs per model on the first image (default: 1)"
    )
    p.add_argument("--repeats", type=COUNT.parse, default=1, help="timed encoder runs per image and model (default: 1)")
    return p


def params_parser() -> argparse.ArgumentParser:
    """The parser of `python -m compare params`."""
    p = argparse.ArgumentParser(
        prog="python -m compare params",
        description="Print encoder / decoder / total parameters of each model from its definition alone "
        "(no checkpoint needed), next to the figures quoted in the MobileSAM paper.",
    )
    p.add_argument(
        "--models",
        type=_model_list,
        default=list(MODEL_NAMES),
        help=f"comma-separated models (default: {','.join(MODEL_NAMES)})",
    )
    return p


def run_params(argv: Sequence[str]) -> int:
    """`python -m compare params`: print the parameter table."""
    args = params_parser().parse_args(argv)
    counts = {name: architecture_parameter_counts(name).to_dict() for name in args.models}
    print(parameters_markdown(counts, paper={name: MODELS[name].paper for name in counts}))
    return 0


def run_compare(argv: Sequence[str], factory: BackendFactory = build_backend) -> int:
    """`python -m compare IMAGES...`: run the comparison and write its outputs; `factory` builds the backends."""
    parser = comparison_parser()
    args = parser.parse_args(argv)
    if args.protocol == "user" and args.prompts is None:
        parser.error("--protocol user needs --prompts FILE")
    if args.reference in args.models:
        parser.error(f"the reference {args.reference} is also listed in --models")
    names = [p.name for p in args.images]
    if len(set(names)) != len(names):
        parser.error("image file names must be unique (results are keyed by file name)")
    if any(name in FASTSAM_MODELS for name in (args.reference, *args.models)):
        try:
            require("ultralytics", ULTRALYTICS_USE)
        except MissingExtraError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
        user_prompts = load_user_prompts(args.prompts) if args.prompts is not None else {}
        spec = ProtocolSpec(args.protocol, args.distances, args.prompts_per_image, user_prompts)
        images = [(path.name, load_image(path)) for path in args.images]
        check_distances_fit(images, spec)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    options = BuildOptions(
        device=device,
        checkpoint_dir=args.checkpoint_dir,
        checkpoints=dict(args.checkpoint),
        random_weights=args.random_weights,
        download=args.download,
        num_threads=torch.get_num_threads(),
        fastsam_rules=args.fastsam_rules,
    )
    if args.random_weights:
        torch.manual_seed(args.seed)  # the same random weights on every run with this seed
    try:
        reference = factory(args.reference, options)
        models = [factory(name, options) for name in args.models]
    except CheckpointError as err:
        print(
            f"error: {err}\nHere: --checkpoint NAME=FILE for one model's file, --checkpoint-dir DIR for a folder of "
            "official files, --download to fetch them, or --random-weights to try the pipeline without checkpoints "
            "(masks are then meaningless).",
            file=sys.stderr,
        )
        return 2
    with tqdm(total=len(images) * (1 + len(models)), desc="comparing", unit="model-image") as bar:

        def advance(description: str) -> None:
            bar.set_postfix_str(description)
            bar.update()

        try:
            run = run_comparison(
                images,
                reference,
                models,
                spec,
                seed=args.seed,
                warmup=args.warmup,
                repeats=args.repeats,
                progress=advance,
            )
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    run.result.settings.update(
        {
            "random_weights": args.random_weights,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
    )
    if any(name in FASTSAM_MODELS for name in (args.reference, *args.models)):
        run.result.settings["fastsam_rules"] = args.fastsam_rules
    paths = write_outputs(run, args.out)
    if skipped_distances_note(run.result):
        print(f"note: {skipped_distances_note(run.result)}", file=sys.stderr)
    print(miou_markdown(run.result))
    print()
    if fastsam_rules_note(run.result):
        print(fastsam_rules_note(run.result))
        print()
    print(latency_markdown(run.result))
    print()
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def main(argv: Sequence[str] | None = None, factory: BackendFactory = build_backend) -> int:
    """Entry point: `params` as first argument prints parameter counts, anything else runs a comparison."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["params"]:
        return run_params(argv[1:])
    return run_compare(argv, factory)
