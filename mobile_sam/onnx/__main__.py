"""Command line: export SAM / MobileSAM to ONNX for `mobile_sam.onnx.OnnxPredictor`.

    python -m mobile_sam.onnx export --model vit_t --checkpoint mobile_sam.pt --out DIR [--opset N]

There is no int8 option: dynamic int8 quantization (onnxruntime's quantize_dynamic) was not faster than
fp32 here and moved masks far (benchmarks/bench_onnx.py measures both).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .files import DEFAULT_OPSET, INSTALL_ONNX, MAX_OPSET, MIN_OPSET

# vit_h is left out: its 2.5 GB of weights exceed the 2 GB limit of a single-file ONNX model.
MODEL_TYPES = (
    "vit_t",
    "vit_b",
    "vit_l",
    "efficientvit_sam_l0",
    "efficientvit_sam_l1",
    "efficientvit_sam_l2",
    "efficientvit_sam_xl0",
    "efficientvit_sam_xl1",
)


def _integer_in(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high] (high None: unbounded), refused with the range otherwise."""
    described = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {described}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {described}, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mobile_sam.onnx", description="ONNX export of SAM / MobileSAM.")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser(
        "export",
        help="write encoder.onnx and decoder.onnx",
        description="Write DIR/encoder.onnx (preprocessed (1, 3, S, S) image -> (1, 256, 64, 64) embedding; S = 1024, "
        "512 for EfficientViT-SAM's L models) and DIR/decoder.onnx (the official SamOnnxModel graph, all four mask "
        "outputs, any number of points).",
    )
    export.add_argument(
        "--model",
        choices=MODEL_TYPES,
        default="vit_t",
        help="vit_t = MobileSAM (default); vit_b / vit_l = SAM (vit_h: over ONNX's 2 GB file limit); "
        "efficientvit_sam_* = EfficientViT-SAM",
    )
    weights = export.add_mutually_exclusive_group(required=True)
    weights.add_argument(
        "--checkpoint",
        type=Path,
        help="official checkpoint file (mobile_sam.pt, sam_vit_b_01ec64.pth, efficientvit_sam_l0.pt, ...)",
    )
    weights.add_argument(
        "--random-weights",
        action="store_true",
        help="export randomly initialised weights (for testing only: the masks are MEANINGLESS)",
    )
    export.add_argument("--seed", type=_integer_in(0), default=0, help="seed of --random-weights (default 0)")
    export.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    export.add_argument(
        "--opset",
        type=_integer_in(MIN_OPSET, MAX_OPSET),
        default=DEFAULT_OPSET,
        help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from ..build_sam import CheckpointError, sam_model_registry

    try:
        from .export import export_sam
    except ImportError as error:
        print(f"error: the ONNX export needs onnx ({error}): {INSTALL_ONNX}", file=sys.stderr)
        return 2

    if args.random_weights:
        print(
            f"WARNING: --random-weights: exporting a RANDOMLY INITIALISED {args.model} (seed {args.seed}); "
            "its masks are MEANINGLESS (use this only to test the pipeline).",
            file=sys.stderr,
        )
        torch.manual_seed(args.seed)
        weights = f"random (seed {args.seed})"
    else:
        weights = args.checkpoint.name
    try:
        sam = sam_model_registry[args.model](None if args.random_weights else args.checkpoint).eval()
        exported = export_sam(sam, args.out, model_type=args.model, weights=weights, opset=args.opset)
    except (CheckpointError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(exported.encoder)
    print(exported.decoder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
