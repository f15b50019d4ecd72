"""Command line: `python -m distill {embed,train,finetune-decoder,eval} ...` (see --help of each)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from samkit.checkpoints import CheckpointError
from samkit.extras import MissingExtraError
from samkit.images import ImageLoadError
from samkit.knobs import Rule
from samkit.models import MOBILE_SAM, PAPER_REFERENCE
from samkit.protocols import PAPER_DISTANCES

from .embed import RULES as EMBED
from .evaluate import DISTANCE
from .evaluate import RULES as EVAL
from .models import STUDENT_NAMES, TEACHER_NAMES, TEST_STUDENT, TEST_TEACHER
from .store import StoreError
from .train import OPTIMIZERS
from .train import RULES as TRAIN

_DESCRIPTION = f"""\
Train your own MobileSAM by decoupled distillation (the MobileSAM paper, section 3.2):

  1. embed             run the teacher SAM's image encoder once over a folder of images and store the
                       (256, 64, 64) embeddings (float16, 2 MiB per image) in a sharded store;
  2. train             train the TinyViT student to reproduce the stored embeddings (MSE), then write a full
                       Sam checkpoint: student encoder + the teacher's prompt encoder and mask decoder;
  3. finetune-decoder  optional: fine-tune the mask decoder on the frozen student to match the teacher's masks;
  4. eval              mIoU between teacher and student masks for the same seeded prompts on held-out images
                       (one point; two points as in the paper's Table 7) and the embedding MSE.

Multi-GPU: torchrun --nproc_per_node N -m distill train ... (DDP; gloo on CPU).
{TEST_TEACHER} / {TEST_STUDENT} are reduced configurations (64 px input) for tests and quick smoke runs.
"""


def _distances(text: str) -> tuple[float, ...]:
    return tuple(DISTANCE.parse(v) for v in text.split(",") if v.strip())


def _add_embed(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "embed",
        help="store the teacher's image embeddings for a folder of images",
        description="Run the teacher's image encoder with the predictor's preprocessing (longest side to 1024, "
        "normalise, zero-pad) over every image under IMAGES (recursively; plain images or an extracted SA-1B "
        "folder of sa_*.jpg + sa_*.json) and store the embeddings in float16 shards with an index.json. "
        "Rerunning resumes: images already stored are skipped. Unreadable images are listed in the index "
        "('failures') and skipped.",
    )
    parser.add_argument("images", type=Path, help="folder of images (searched recursively)")
    parser.add_argument("--out", required=True, type=Path, help="store folder (created; an existing store resumes)")
    parser.add_argument(
        "--teacher",
        choices=TEACHER_NAMES,
        default=PAPER_REFERENCE,
        help=f"teacher SAM (default {PAPER_REFERENCE}, as in the paper)",
    )
    parser.add_argument(
        "--teacher-checkpoint",
        type=Path,
        help="teacher weights (default: the official file from the mobile_sam cache, downloaded "
        "and verified if missing); its SHA-256 is recorded in the index",
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--batch-size", type=EMBED["batch_size"].parse, default=1, help="images per encoder call (default 1)"
    )
    parser.add_argument(
        "--shard-size",
        type=EMBED["shard_size"].parse,
        default=64,
        help="images per shard file (default 64 = 128 MiB at 1024 px); at most one shard of work "
        "is lost when a run is interrupted",
    )
    parser.add_argument(
        "--limit", type=EMBED["limit"].parse, help="only the first N images in sorted order (e.g. a subset)"
    )
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: Ray Data actors (needs ray[data])",
    )
    parser.add_argument(
        "--workers", type=EMBED["workers"].parse, default=1, help="Ray actors (--engine ray only; default 1)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_training_options(parser: argparse.ArgumentParser, decoder: bool) -> None:
    parser.add_argument("--store", required=True, type=Path, help="embedding store made by `embed` (training images)")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output folder: mobile_sam.pt, checkpoint.pt, train_log.csv, loss.png; an existing "
        "checkpoint.pt there resumes the run (same options required)",
    )
    parser.add_argument(
        "--teacher-checkpoint",
        type=Path,
        help="the teacher weights the store was made with (checked by SHA-256; default: the "
        "official file from the mobile_sam cache)",
    )
    parser.add_argument("--images", type=Path, help="image folder, if it moved since `embed` (default: as recorded)")
    parser.add_argument(
        "--student",
        choices=STUDENT_NAMES,
        default=MOBILE_SAM,
        help="student architecture (default vit_t: MobileSAM's TinyViT)",
    )
    if decoder:
        parser.add_argument(
            "--student-checkpoint",
            required=True,
            type=Path,
            help="the trained student (mobile_sam.pt from `train`); its encoder stays frozen",
        )
    else:
        parser.add_argument("--init", type=Path, help="start from this student checkpoint (default: random init)")
        parser.add_argument(
            "--mode",
            choices=("decoupled", "semi-coupled"),
            default="decoupled",
            help="decoupled (default): MSE to the teacher embeddings; semi-coupled: mask loss "
            "through the frozen copied decoder for random point prompts (the paper's ablation)",
        )
    parser.add_argument(
        "--epochs", type=TRAIN["epochs"].parse, default=8, help="passes over the store (default 8, as in the paper)"
    )
    parser.add_argument("--steps", type=TRAIN["steps"].parse, help="optimizer steps instead of --epochs")
    parser.add_argument(
        "--batch-size", type=TRAIN["batch_size"].parse, default=8, help="images per micro-batch per process (default 8)"
    )
    parser.add_argument(
        "--accumulate",
        type=TRAIN["accumulate"].parse,
        default=1,
        help="micro-batches per optimizer step (gradient accumulation; default 1). Effective batch "
        "= batch-size x accumulate x processes",
    )
    parser.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="adamw",
        help="adamw (default): AdamW for every parameter; muon: torch's Muon for the weight "
        "matrices of the linear layers (attention and MLP; step size matched to AdamW's) and AdamW "
        "for the rest. "
        "On the CPU benchmark Muon reached in 100 steps a held-out MSE AdamW had not reached in 340 "
        "(see README)",
    )
    parser.add_argument("--lr", type=TRAIN["lr"].parse, default=1e-3, help="peak learning rate (default 1e-3)")
    if not decoder:
        parser.add_argument(
            "--output-lr-scale",
            type=TRAIN["output_lr_scale"].parse,
            default=1.0,
            help="learning-rate multiplier for the student's output LayerNorm, the per-channel scale "
            "and shift of the embedding (default 1: one rate for all, the paper's plain recipe; "
            "short runs learn the teacher's channel means faster with 10, see README)",
        )
    parser.add_argument(
        "--weight-decay", type=TRAIN["weight_decay"].parse, default=0.05, help="decoupled weight decay (default 0.05)"
    )
    parser.add_argument(
        "--warmup", type=TRAIN["warmup"].parse, default=100, help="linear warm-up steps (default 100), then cosine"
    )
    parser.add_argument(
        "--min-lr-ratio",
        type=TRAIN["min_lr_ratio"].parse,
        default=0.01,
        help="final learning rate as a fraction of the peak (default 0.01)",
    )
    parser.add_argument(
        "--seed", type=TRAIN["seed"].parse, default=0, help="seed of initialisation, data order and prompts"
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="auto (default): bf16 autocast on CUDA (fp16 where bf16 is missing), fp32 elsewhere; bf16/fp16 need CUDA",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (default), cpu, cuda or mps; torchrun uses cuda:LOCAL_RANK"
    )
    parser.add_argument(
        "--checkpoint-every",
        type=TRAIN["checkpoint_every"].parse,
        default=100,
        help="write checkpoint.pt every N optimizer steps (default 100) and at the end",
    )
    parser.add_argument(
        "--points-per-image",
        type=TRAIN["points_per_image"].parse,
        default=4,
        help="random one-point prompts per image for the mask loss (semi-coupled and finetune-decoder; default 4)",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not draw loss.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_eval(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval",
        help="mIoU of student vs teacher masks on held-out images, and embedding MSE",
        description="The paper's metric: for seeded prompts on held-out images (a store made by `embed` from "
        "images not trained on), the IoU between the teacher SAM's mask and the student SAM's mask, averaged "
        "(mIoU); one random point (best of three masks) and the two-point protocol of the paper's Table 7 (one "
        "foreground and one background point a given distance apart). Writes report.md, results.json, miou.png.",
    )
    parser.add_argument("--store", required=True, type=Path, help="embedding store of the held-out images")
    parser.add_argument("--student-checkpoint", required=True, type=Path, help="student Sam checkpoint (mobile_sam.pt)")
    parser.add_argument(
        "--student", choices=STUDENT_NAMES, default=MOBILE_SAM, help=f"student architecture (default {MOBILE_SAM})"
    )
    parser.add_argument(
        "--teacher-checkpoint",
        type=Path,
        help="the store's teacher weights (checked by SHA-256; default: from the mobile_sam cache)",
    )
    parser.add_argument("--out", required=True, type=Path, help="report folder")
    parser.add_argument("--images", type=Path, help="image folder, if it moved since `embed`")
    parser.add_argument(
        "--points",
        type=EVAL["points_per_image"].parse,
        default=10,
        help="one-point prompts per image (default 10; 0: none)",
    )
    parser.add_argument(
        "--distances",
        type=_distances,
        default=PAPER_DISTANCES,
        help="two-point distances in pixels (default 100,200,300,400,500 as in Table 7; "
        "distances that do not fit an image are left out for it)",
    )
    parser.add_argument(
        "--pairs",
        type=Rule(integer=True, low=0).parse,
        default=2,
        help="point pairs per distance per image (default 2)",
    )
    parser.add_argument("--seed", type=EVAL["seed"].parse, default=0, help="prompt seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m distill", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{embed,train,finetune-decoder,eval,random-teacher}"
    )
    _add_embed(commands)
    train = commands.add_parser(
        "train",
        help="train the student encoder on stored teacher embeddings",
        description="Train the student image encoder on a store made by `embed` (AdamW or Muon, linear warm-up then "
        "cosine decay, exact resume from checkpoint.pt). Writes mobile_sam.pt: a full Sam state dict (student "
        "encoder + the teacher's prompt encoder and mask decoder), for vit_t loadable by "
        "mobile_sam.sam_model_registry['vit_t'](checkpoint=...).",
    )
    _add_training_options(train, decoder=False)
    finetune = commands.add_parser(
        "finetune-decoder",
        help="fine-tune the mask decoder on the frozen student to match the teacher's masks",
        description="The paper's optional second stage: the student's encoder is frozen and its mask decoder "
        "(starting from the teacher's) is trained so that its masks for random one-point prompts match the "
        "teacher SAM's masks (teacher decoder on the stored teacher embedding). Loss: SAM's 20 x focal + dice "
        "against the teacher's binarised masks, on all three multimask outputs (it targets mask agreement, "
        "the metric), plus the MSE of the predicted IoU against the teacher's (so that the student ranks its "
        "three masks as the teacher does; see distill/losses.py).",
    )
    _add_training_options(finetune, decoder=True)
    _add_eval(commands)
    random_teacher = commands.add_parser(
        "random-teacher",
        help="write a teacher with seeded random weights (to try the method offline)",
        description="Write a teacher SAM with random weights drawn with --seed, as a full Sam state dict, for "
        "--teacher-checkpoint: the whole method (embed, train, eval) then runs without any download. Its "
        "embeddings and masks are MEANINGLESS: use it to check the pipeline, not to train a model.",
    )
    random_teacher.add_argument(
        "--teacher", choices=TEACHER_NAMES, default=PAPER_REFERENCE, help=f"architecture (default {PAPER_REFERENCE})"
    )
    random_teacher.add_argument("--seed", type=TRAIN["seed"].parse, default=0, help="seed of the weights (default 0)")
    random_teacher.add_argument("--out", required=True, type=Path, help="the file to write (must not exist)")
    return parser


def _train_config(args: argparse.Namespace, mode: str, init: Path | None):
    from .train import TrainConfig

    return TrainConfig(
        store=str(args.store),
        output=str(args.out),
        images=None if args.images is None else str(args.images),
        teacher_checkpoint=None if args.teacher_checkpoint is None else str(args.teacher_checkpoint),
        student=args.student,
        init=None if init is None else str(init),
        mode=mode,
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        accumulate=args.accumulate,
        lr=args.lr,
        output_lr_scale=getattr(args, "output_lr_scale", 1.0),
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        min_lr_ratio=args.min_lr_ratio,
        seed=args.seed,
        precision=args.precision,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        points_per_image=args.points_per_image,
        plot=not args.no_plot,
        progress=not args.no_progress,
    )


def _run(args: argparse.Namespace) -> int:
    if args.command == "random-teacher":
        from .models import write_random_teacher

        print(
            f"WARNING: a RANDOMLY INITIALISED {args.teacher} teacher (seed {args.seed}): its embeddings and masks "
            "are MEANINGLESS (use it only to try the pipeline).",
            file=sys.stderr,
        )
        print(write_random_teacher(args.teacher, args.out, args.seed))
        return 0
    if args.command == "embed":
        from .embed import embed_folder

        summary = embed_folder(
            args.images,
            args.out,
            args.teacher,
            args.teacher_checkpoint,
            args.device,
            args.batch_size,
            args.shard_size,
            args.limit,
            args.engine,
            args.workers,
            not args.no_progress,
        )
        print(
            f"{summary.embedded} embedded, {summary.skipped} already stored, {summary.failed} unreadable "
            f"(listed in {args.out / 'index.json'}) of {summary.total} images"
        )
        return 0
    if args.command in ("train", "finetune-decoder"):
        from .train import train

        decoder = args.command == "finetune-decoder"
        config = _train_config(
            args, "decoder" if decoder else args.mode, args.student_checkpoint if decoder else args.init
        )
        result = train(config)
        if result.losses and os.environ.get("RANK", "0") == "0":
            print(
                f"{len(result.losses)} steps, loss {result.losses[0]:.4g} -> {result.losses[-1]:.4g}; "
                f"wrote {result.student_checkpoint}"
            )
        return 0
    from .evaluate import evaluate, load_pair, write_report

    student, teacher = load_pair(
        args.store, args.student_checkpoint, args.student, args.teacher_checkpoint, args.device
    )
    result = evaluate(
        args.store,
        student,
        teacher,
        args.seed,
        args.points,
        args.distances if args.pairs else (),
        max(args.pairs, 1),
        args.images,
        not args.no_progress,
    )
    report = write_report(result, args.out, f"{args.student} student vs {teacher_name(args.store)} teacher")
    print(report.read_text())
    return 0


def teacher_name(store: Path) -> str:
    from .store import read_index

    return read_index(store).teacher


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from samkit.allocator import keep_freed_memory

    keep_freed_memory()
    try:
        return _run(args)
    except (StoreError, CheckpointError, ImageLoadError, ValueError, FileNotFoundError, MissingExtraError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
