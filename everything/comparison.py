"""Segment everything, side by side: the pipelines of `everything.pipelines` on one image, with each one's masks,
latency split and agreement with a reference pipeline (the grid by default: the official results).

- Latency, in three stages: the detector's boxes, the image encoder, and the decoder with everything after it
  (mask upsampling, filters, records). The object-aware pipelines report their stages themselves
  (`ObjectAwareMaskGenerator.generate(timings=...)`); the grid's encoder is timed around its predictor's
  `set_image` (one per crop) and the rest of its run is the decoder's. The total is synchronised with the device.
- Agreement, with the reference's masks as the ground truth: mask recall at IoU 0.5 and 0.75, matched as
  `everything.evaluation` matches proposals (COCO's greedy one-to-one matching, every mask of the pipeline taking
  part, ranked by predicted IoU), and the mean over the reference's masks of the best IoU that any of the pipeline's
  masks reaches (pycocotools' mask IoU).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobile_sam.predictor import SamPredictor
from mobile_sam.utils.cancel import CancelFlag
from mobile_sam.utils.rle import compressed_rle
from samkit.checkpoints import CheckpointError
from samkit.devices import synchronize
from samkit.extras import MissingExtraError

from .evaluation import AREA_RANGES, IOU_THRESHOLDS, ImageProposals, ImageTruth, evaluate, iou_matrix
from .pipelines import DEFAULT_DETECTORS, GRID_PIPELINE, PIPELINES, pipeline_missing
from .settings import GRID, OBJECTS

STAGES = ("detector", "encoder", "decoder")
AGREEMENT_IOUS = (0.5, 0.75)
RANDOM_NOTE = "random weights: meaningless masks"


@dataclass(frozen=True)
class PipelineRun:
    """One pipeline on the image: its records (COCO RLE, the generator's order) and seconds per `STAGES` and
    "total"; or, when it could not run, `skipped` says why (e.g. which file is missing) and records are empty."""

    pipeline: str
    records: list[dict[str, Any]]
    seconds: dict[str, float]
    skipped: str | None = None

    @classmethod
    def skip(cls, pipeline: str, reason: str) -> PipelineRun:
        return cls(pipeline, [], {}, reason)


@dataclass(frozen=True)
class Agreement:
    """How well a pipeline's masks find the reference's: recall at each IoU of `AGREEMENT_IOUS`, mean best IoU."""

    recall: dict[float, float]
    mean_best_iou: float


class TimedPredictor(SamPredictor):
    """A SamPredictor that adds the seconds of each `set_image` (the image encoder) to `encoder_seconds`."""

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.encoder_seconds = 0.0

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        synchronize(self.device)
        start = time.perf_counter()
        super().set_image(image, image_format)
        synchronize(self.device)
        self.encoder_seconds += time.perf_counter() - start


def compare_pipelines(
    image: np.ndarray,
    pipelines: Sequence[str],
    build: Callable[[str], Any],
    *,
    checkpoint_dir: str | Path | None = None,
    cancel: CancelFlag | None = None,
    progress: Callable[[float], None] | None = None,
) -> list[PipelineRun]:
    """Each pipeline, in order, built by `build(pipeline)` and run on the (H, W, 3) uint8 RGB image (`run_pipeline`).
    A pipeline that cannot be built for a missing or bad file, or a missing optional package, is skipped and says
    why (`skip_reason`); `progress` gets the fraction of all of them done."""
    runs = []
    for index, pipeline in enumerate(pipelines):
        try:
            generator = build(pipeline)
        except (CheckpointError, MissingExtraError) as error:
            runs.append(PipelineRun.skip(pipeline, skip_reason(pipeline, error, checkpoint_dir)))
            continue
        report = None if progress is None else (lambda done, i=index: progress((i + done) / len(pipelines)))
        runs.append(run_pipeline(pipeline, generator, image, cancel=cancel, progress=report))
    return runs


def skip_reason(pipeline: str, error: Exception, checkpoint_dir: str | Path | None = None) -> str:
    """Why a pipeline could not be built: the files it lacks in the checkpoint folder, else the error's first line."""
    missing = pipeline_missing(pipeline, checkpoint_dir)
    if missing:
        return "missing " + ", ".join(str(path) for path in missing)
    return str(error).strip().splitlines()[0]


def run_pipeline(
    pipeline: str,
    generator: Any,
    image: np.ndarray,
    *,
    cancel: CancelFlag | None = None,
    progress: Callable[[float], None] | None = None,
) -> PipelineRun:
    """`generator` (the pipeline's, built with output_mode "coco_rle") on an (H, W, 3) uint8 RGB image, timed."""
    stages: dict[str, float] = {}
    if pipeline == GRID_PIPELINE:
        generator.predictor = TimedPredictor(generator.predictor.model)
        device = generator.predictor.device
    else:
        device = generator.model.device
    synchronize(device)
    start = time.perf_counter()
    if pipeline == GRID_PIPELINE:
        records = generator.generate(image, progress=progress, cancel=cancel)
    else:
        records = generator.generate(image, progress=progress, cancel=cancel, timings=stages)
    synchronize(device)
    total = time.perf_counter() - start
    if pipeline == GRID_PIPELINE:
        encoder = generator.predictor.encoder_seconds
        seconds = {"detector": 0.0, "encoder": encoder, "decoder": total - encoder}
    else:
        seconds = {
            "detector": stages["detector"],
            "encoder": stages["encoder"],
            "decoder": stages["decoder"] + stages["postprocess"],
        }
    return PipelineRun(pipeline, records, {**seconds, "total": total})


def build_generator(
    pipeline: str,
    *,
    random_weights: bool = False,
    checkpoint_dir: str | None = None,
    download: bool = True,
    device: str = "auto",
    points_per_side: int | None = None,
) -> Any:
    """The generator of `pipeline` at its defaults (the grid's `points_per_side` may be set), built as
    `python -m everything` builds it (`GeneratorSpec`), with COCO-RLE output. With `random_weights` every network is
    random, the object-aware pipelines' detectors too (as in the app): no file is needed.

    Raises:
      samkit.checkpoints.CheckpointError: a file is missing (the message names each one and where it goes) or bad.
    """
    from .box_sources import load_box_source
    from .spec import RANDOM_SEED, GeneratorSpec

    grid = pipeline == GRID_PIPELINE
    spec = GeneratorSpec(
        pipeline=pipeline,
        prompts=GRID if grid else OBJECTS,
        checkpoint_dir=checkpoint_dir,
        download=download,
        random_weights=random_weights,
        device=device,
        detector=None if grid or random_weights else DEFAULT_DETECTORS[pipeline],
        settings={} if not grid or points_per_side is None else {"points_per_side": points_per_side},
    )
    generator = spec.build() if random_weights else spec.resolved().build()
    if random_weights and not grid:
        detector = DEFAULT_DETECTORS[pipeline]
        generator.box_source = load_box_source(detector, device=device, random_weights=True, seed=RANDOM_SEED)
    return generator


def agreement(reference: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> Agreement | None:
    """Agreement of `records` with the `reference` records of the same image (see the module doc); None when the
    reference has no mask to find."""
    if not reference:
        return None
    truth_masks = [compressed_rle(dict(record["segmentation"])) for record in reference]
    height, width = (int(v) for v in truth_masks[0]["size"])
    areas = np.asarray([float(record["area"]) for record in reference], dtype=np.float64)
    masks = [compressed_rle(dict(record["segmentation"])) for record in records]
    scores = np.asarray([float(record["predicted_iou"]) for record in records], dtype=np.float64)
    truth = {0: ImageTruth("image", height, width, truth_masks, areas)}
    everything = {"all": AREA_RANGES["all"]}
    found = evaluate({0: ImageProposals(masks, scores)}, truth, (max(1, len(masks)),), everything)
    recall = {iou: float(found.recall[0, 0, _threshold_index(iou)]) for iou in AGREEMENT_IOUS}
    best = iou_matrix(masks, truth_masks).max(axis=0) if masks else np.zeros(len(truth_masks))
    return Agreement(recall, float(best.mean()))


def comparison_rows(runs: Sequence[PipelineRun], reference: str) -> list[dict[str, Any]]:
    """One JSON-ready row per pipeline: status ("reference", "ok" or "skipped: why"), masks, milliseconds per
    stage and in total, and the agreement with the `reference` pipeline's run (None where undefined)."""
    by_name = {run.pipeline: run for run in runs}
    truth = by_name.get(reference)
    rows = []
    for run in runs:
        found = None
        if run.skipped is None and truth is not None and truth.skipped is None:
            found = agreement(truth.records, run.records)
        status = "reference" if run.pipeline == reference else "ok"
        rows.append(
            {
                "pipeline": run.pipeline,
                "label": PIPELINES[run.pipeline],
                "status": status if run.skipped is None else f"skipped: {run.skipped}",
                "masks": None if run.skipped is not None else len(run.records),
                **{f"{name}_ms": _ms(run.seconds.get(name)) for name in (*STAGES, "total")},
                **{_recall_key(iou): None if found is None else found.recall[iou] for iou in AGREEMENT_IOUS},
                "mean_best_iou": None if found is None else found.mean_best_iou,
            }
        )
    return rows


def rows_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a text table: one line per pipeline (milliseconds rounded, agreement to three decimals)."""
    columns = {"pipeline": "pipeline", "masks": "masks", **{f"{name}_ms": f"{name} ms" for name in (*STAGES, "total")}}
    columns.update({_recall_key(iou): f"recall@{iou}" for iou in AGREEMENT_IOUS})
    columns.update({"mean_best_iou": "mean best IoU", "status": "status"})
    lines = [list(columns.values())] + [[_cell(key, row[key]) for key in columns] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def side_by_side_png(image: np.ndarray, runs: Sequence[PipelineRun], random_weights: bool) -> bytes:
    """PNG bytes: one panel per pipeline that ran, its masks over the image (`samkit.drawing.overlay_records`)."""
    from matplotlib.figure import Figure

    from samkit.drawing import overlay_records

    shown = [run for run in runs if run.skipped is None]
    if not shown:
        raise ValueError("no pipeline ran: nothing to draw")
    height, width = image.shape[:2]
    panel = 4.0
    figure = Figure(figsize=(panel * len(shown), panel * height / width + 0.8), dpi=100)
    for axes, run in zip(figure.subplots(1, len(shown), squeeze=False)[0], shown):
        axes.imshow(overlay_records(image, run.records, seed=0))
        axes.set_title(f"{run.pipeline}: {len(run.records)} masks, {1000 * run.seconds['total']:.0f} ms", fontsize=9)
        axes.set_axis_off()
    if random_weights:
        figure.suptitle(RANDOM_NOTE.upper(), color="#b91c1c", fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _recall_key(iou: float) -> str:
    return f"recall_{round(100 * iou)}"


def _threshold_index(iou: float) -> int:
    return int(np.flatnonzero(np.isclose(IOU_THRESHOLDS, iou))[0])


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000.0 * seconds


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if key.endswith("_ms") else f"{value:.3f}"
    return str(value)
