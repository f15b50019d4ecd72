"""`python -m everything eval RESULT... GROUND_TRUTH [--out DIR]`: mask AR@K of results against a COCO ground truth.

Each RESULT is an output folder of `python -m everything` (its `annotations.json`; its `run.json` labels it by
prompt mode and model), a COCO file of masks, a COCO results list or one image's result (`everything.evaluation`).
The table goes to stdout; with --out, DIR/eval.json (every number, written atomically) and DIR/recall.png (AR
against K, and recall against the IoU threshold at the largest K, one line per result).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mobile_sam.utils.atomic import atomic_write_bytes

from .evaluation import (
    AREA_RANGES,
    MAX_PROPOSALS,
    SCORE_AUTO,
    SCORE_ORDER,
    EvaluationError,
    Recall,
    evaluate,
    read_ground_truth,
    read_proposals,
)
from .results import ANNOTATIONS_FILE
from .run_record import RUN_FILE

EVAL_FILE = "eval.json"
PLOT_FILE = "recall.png"


def eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m everything eval",
        description="Score segment-everything results as object proposals: class-agnostic mask average recall "
        "at K proposals per image (AR@K, IoU 0.50:0.05:0.95), as COCO's evaluation (COCOeval, useCats=0) "
        "and MobileSAMv2 (on LVIS) measure it; per result, i.e. per prompt mode.",
    )
    parser.add_argument(
        "results",
        nargs="+",
        type=Path,
        metavar="RESULT",
        help="one or more results: an output folder of python -m everything, its annotations.json, a COCO results "
        "list or a results/NAME.json. Images are matched by file name (results lists: by image id); masks must "
        "have the ground truth's image size",
    )
    parser.add_argument(
        "ground_truth", type=Path, metavar="GROUND_TRUTH", help="the ground truth: COCO instances JSON (LVIS works too)"
    )
    parser.add_argument("--out", type=Path, help=f"write DIR/{EVAL_FILE} and DIR/{PLOT_FILE} (created if missing)")
    parser.add_argument(
        "--label",
        action="append",
        help="a name for each RESULT, in order (default: prompt mode and model from the folder's run.json, "
        "else the file name)",
    )
    parser.add_argument(
        "--score",
        default=SCORE_AUTO,
        help=f"what ranks proposals for the top K: {SCORE_AUTO} (default: the COCO 'score', which this project "
        f"writes as the predicted IoU, else 'predicted_iou'), {SCORE_ORDER} (the result's own order, first = best), "
        "or any numeric field of the proposals (e.g. stability_score, area)",
    )
    parser.add_argument(
        "--max-proposals",
        type=_positive_ints,
        default=MAX_PROPOSALS,
        metavar="K,K,...",
        help=f"the K of AR@K (default {','.join(map(str, MAX_PROPOSALS))})",
    )
    return parser


def run_eval(argv: Sequence[str]) -> int:
    """Run `python -m everything eval` (exit status 2 when the inputs cannot be scored)."""
    args = eval_parser().parse_args(argv)
    results, ground_truth = args.results, args.ground_truth
    if args.label is not None and len(args.label) != len(results):
        eval_parser().error(f"--label given {len(args.label)} times for {len(results)} results")
    try:
        truth = read_ground_truth(_read_json(ground_truth))
        scored = []
        for i, path in enumerate(results):
            file, label = result_file(path)
            proposals = read_proposals(_read_json(file), truth, args.score)
            recall = evaluate(proposals, truth, args.max_proposals)
            scored.append((args.label[i] if args.label else label, file, recall))
    except EvaluationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table(scored))
    if args.out is not None:
        report = eval_report(scored, ground_truth, args.score)
        atomic_write_bytes(args.out / EVAL_FILE, json.dumps(report, indent=1).encode("utf-8"))
        atomic_write_bytes(args.out / PLOT_FILE, plot_png(scored))
        print(f"wrote {args.out / EVAL_FILE} and {args.out / PLOT_FILE}", file=sys.stderr)
    return 0


def result_file(path: Path) -> tuple[Path, str]:
    """The JSON file of a RESULT argument and its default label."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    file = path / ANNOTATIONS_FILE if path.is_dir() else path
    label = path.name if path.is_dir() else path.stem
    try:
        settings = json.loads((folder / RUN_FILE).read_text())["settings"]
        label = f"{settings['prompts']} {settings['model']}"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return file, label


def table(scored: Sequence[tuple[str, Path, Recall]]) -> str:
    """Text table: one row per result, AR@K for every K, then AR of small/medium/large objects at the largest K."""
    ks = scored[0][2].max_proposals
    areas = [area for area in AREA_RANGES if area != "all"]
    header = ["result", *(f"AR@{k}" for k in ks), *(f"AR_{area[0]}@{ks[-1]}" for area in areas), "objects", "images"]
    rows = [header]
    for label, _, recall in scored:
        values = [*recall.average_recall("all").values(), *(recall.average_recall(a)[ks[-1]] for a in areas)]
        rows.append(
            [label, *("-" if v is None else f"{v:.3f}" for v in values), str(recall.objects[0]), str(recall.images)]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def eval_report(scored: Sequence[tuple[str, Path, Recall]], ground_truth: Path, score: str) -> dict[str, Any]:
    """The JSON report: the measure's settings and, per result, AR@K and recall per IoU threshold, per area range."""
    first = scored[0][2]
    return {
        "ground_truth": str(ground_truth),
        "measure": "class-agnostic mask average recall (COCOeval segm, useCats=0)",
        "score": score,
        "max_proposals": list(first.max_proposals),
        "iou_thresholds": [round(float(t), 2) for t in first.iou_thresholds],
        "area_ranges": {name: list(AREA_RANGES[name]) for name in first.area_ranges},
        "results": [
            {
                "label": label,
                "file": str(file),
                "images": recall.images,
                "images_without_proposals": recall.images_without_proposals,
                "objects": {area: int(n) for area, n in zip(recall.area_ranges, recall.objects)},
                "average_recall": {
                    area: {str(k): v for k, v in recall.average_recall(area).items()} for area in recall.area_ranges
                },
                "recall": {
                    area: {
                        str(k): [None if v != v else float(v) for v in recall.recall[a, i]]
                        for i, k in enumerate(recall.max_proposals)
                    }
                    for a, area in enumerate(recall.area_ranges)
                },
            }
            for label, file, recall in scored
        ],
    }


def plot_png(scored: Sequence[tuple[str, Path, Recall]]) -> bytes:
    """PNG bytes: AR@K against K (log scale) and recall against the IoU threshold at the largest K, per result."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100)
    by_k, by_iou = figure.subplots(1, 2)
    for label, _, recall in scored:
        ar = recall.average_recall("all")
        by_k.plot(list(ar), [float("nan") if v is None else v for v in ar.values()], marker="o", label=label)
        by_iou.plot(recall.iou_thresholds, recall.recall[0, -1], marker="o", label=label)
    ks = scored[0][2].max_proposals
    by_k.set(xscale="log", xlabel="proposals per image (K)", ylabel="mask AR@K", ylim=(0, 1.02), xticks=list(ks))
    by_k.set_xticklabels([str(k) for k in ks])
    by_iou.set(xlabel="IoU threshold", ylabel=f"mask recall at K={ks[-1]}", ylim=(0, 1.02))
    for axes in (by_k, by_iou):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle("Proposal quality (class-agnostic, all object sizes)", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise EvaluationError(f"cannot read {path}: {error.strerror or error}") from error
    except ValueError as error:
        raise EvaluationError(f"{path} is not JSON: {error}") from error


def _positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return tuple(sorted(set(values)))
