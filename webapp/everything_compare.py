"""Segment everything, side by side (the compare tab's section and `/compare_everything`): the pipelines of
`everything.pipelines` on one image through `everything.comparison`, budget first, cached, cancellable, in the
heavy lane. Models and detectors come from the everything tab (`EverythingTab.pipeline_parts`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from everything.comparison import PipelineRun, compare_pipelines, comparison_rows
from everything.pipelines import GRID_PIPELINE, PIPELINES
from samkit.drawing import overlay_records

from .embedding_cache import EmbeddingCache, image_key
from .everything_jobs import GRID, OBJECTS, EverythingSettings, job_generator, prepare_image
from .everything_tab import EverythingTab
from .heavy import run_heavy
from .messages import hide_paths
from .scheduling import JobControl, current_job, interruptible


@dataclass(frozen=True)
class EverythingComparison:
    """A finished comparison: the runs, their rows (`everything.comparison.comparison_rows`), the estimate, and
    the (h, w) working copy they segmented."""

    runs: list[PipelineRun]
    rows: list[dict[str, Any]]
    reference: str
    estimated_seconds: float
    working_size: tuple[int, int]


def check_pipelines(pipelines: Sequence[str], reference: str) -> tuple[list[str], str]:
    """Distinct known pipelines in their order, and a reference among them (ValueError otherwise)."""
    chosen = list(dict.fromkeys(pipelines))
    unknown = [name for name in [*chosen, reference] if name not in PIPELINES]
    if unknown:
        raise ValueError(f"Unknown pipeline {unknown[0]!r}; expected one of {', '.join(PIPELINES)}.")
    if not chosen:
        raise ValueError("Choose at least one pipeline.")
    if reference not in chosen:
        raise ValueError(f"The reference {reference!r} must be one of the chosen pipelines ({', '.join(chosen)}).")
    return chosen, reference


class EverythingCompareJobs:
    """Comparisons of segment-everything pipelines on the everything tab's models, budget and heavy lane."""

    def __init__(self, everything: EverythingTab, max_items: int = 4) -> None:
        self.everything = everything
        self.cache: EmbeddingCache[EverythingComparison] = EmbeddingCache(max_items)

    async def answer(
        self,
        image: np.ndarray,
        pipelines: Sequence[str],
        reference: str,
        settings: EverythingSettings,
        random_weights: bool,
        request: Any,
        progress: Callable[..., Any] | None = None,
    ) -> tuple[EverythingComparison, np.ndarray, bool]:
        """The comparison of an (H, W, 3) uint8 image (segmented at settings.input_size) and that working copy:
        refused at once when all the jobs together are over the everything tab's budget, from the cache when already
        done (the bool), else run in the heavy lane (cancelled with the calling task or the session).

        Raises:
          ValueError, BudgetExceeded, LaneFull, Cancelled.
        """
        pipelines, reference = check_pipelines(pipelines, reference)
        working = prepare_image(image, settings)
        modes = [GRID if name == GRID_PIPELINE else OBJECTS for name in pipelines]
        estimated = self.everything.budget.check(working.shape[:2], settings, *modes)
        key = (image_key(working), settings, tuple(pipelines), reference, bool(random_weights))
        cached = self.cache.get(key)
        if cached is not None:
            return cached, working, True
        report = None if progress is None else (lambda fraction: progress(fraction, desc="Segmenting everything"))

        def run(control: JobControl) -> EverythingComparison:
            def build(pipeline: str) -> Any:
                model, box_source = self.everything.pipeline_parts(pipeline, random_weights)
                return job_generator(interruptible(model), settings, pipeline, box_source)

            with current_job(control):
                runs = compare_pipelines(
                    working,
                    pipelines,
                    build,
                    checkpoint_dir=self.everything.store.checkpoint_dir,
                    cancel=control,
                    progress=report,
                )
            rows = comparison_rows(runs, reference)
            for row in rows:
                row["status"] = hide_paths(row["status"])
            return EverythingComparison(runs, rows, reference, estimated, tuple(working.shape[:2]))

        def job(control: JobControl) -> tuple[EverythingComparison, bool]:
            return self.cache.get_or_compute(key, lambda: run(control))

        comparison, cached = await run_heavy(self.everything.sessions, self.everything.lane, request, job, progress)
        return comparison, working, cached


def overlays(comparison: EverythingComparison, working: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Per pipeline that ran: its masks over the working copy and a caption."""
    return [
        (overlay_records(working, run.records, seed=0), f"{run.pipeline}: {len(run.records)} masks")
        for run in comparison.runs
        if run.skipped is None
    ]


def table(comparison: EverythingComparison) -> list[list[str]]:
    """The rows as display strings (milliseconds rounded, agreement to three decimals)."""
    return [
        [
            row["pipeline"],
            _text(row["masks"], 0),
            *(_text(row[f"{stage}_ms"], 0) for stage in ("detector", "encoder", "decoder", "total")),
            *(_text(row[key], 3) for key in ("recall_50", "recall_75", "mean_best_iou")),
            row["status"],
        ]
        for row in comparison.rows
    ]


def summary(comparison: EverythingComparison, cached: bool) -> str:
    """The line above the results."""
    height, width = comparison.working_size
    text = (
        f"Segmented a {width}x{height} copy with each pipeline (estimated {comparison.estimated_seconds:.0f} s "
        f"in all). Agreement is with the masks of **{comparison.reference}**: recall of its masks at IoU 0.5 and "
        "0.75 (one-to-one matching, as COCO's proposal recall) and the mean best IoU over its masks."
    )
    return text + (" From the cache." if cached else "")


def _text(value: Any, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"
