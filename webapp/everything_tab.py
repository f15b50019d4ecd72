"""The segment-everything tab and `/everything`: budget first, cached results, cancellable jobs."""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from everything.box_sources import ObjectAwareBoxSource, UltralyticsBoxSource
from everything.pipelines import (
    BOXES_PIPELINE,
    DEFAULT_DETECTORS,
    GRID_PIPELINE,
    MOBILESAMV2_PIPELINE,
    OBJECT_PIPELINES,
    PIPELINES,
    mobilesamv2_missing,
)
from mobile_sam.utils.atomic import atomic_write_bytes
from samkit.loading import load_model
from samkit.models import APP_DETECTOR, DETECTORS, MOBILE_SAM, MOBILESAMV2, MOBILESAMV2_DETECTOR
from samkit.writers import write_mask_pngs

from .embedding_cache import image_key
from .everything_jobs import (
    GRID,
    OBJECTS,
    EverythingBudget,
    EverythingResult,
    EverythingSettings,
    ResultCache,
    prepare_image,
    run_everything,
)
from .heavy import run_heavy
from .messages import safe_stem
from .model_store import RANDOM_SEED, ModelStore
from .scheduling import HeavyLane, JobControl, current_job, interruptible
from .sessions import Sessions
from .uploads import Upload, read_upload

# The objects mode's pipeline choice: "auto" runs MobileSAMv2 when its files are in the server's checkpoint folder.
AUTO = "auto"
PIPELINE_CHOICES = (AUTO, *OBJECT_PIPELINES)


@dataclass(frozen=True)
class EverythingAnswer:
    """A finished (or cached) job for one upload."""

    upload: Upload
    result: EverythingResult
    cached: bool

    def summary(self) -> str:
        result = self.result
        height, width = result.image_size
        text = (
            f"{len(result.records)} masks in {result.seconds:.2f} s (estimated {result.estimated_seconds:.0f} s) "
            f"by {PIPELINES[result.pipeline]}"
        )
        if result.working_size != result.image_size:
            work_height, work_width = result.working_size
            text += (
                f", segmented on a {work_width}x{work_height} working copy and given in the {width}x{height} pixels "
                "of the uploaded image (masks resized by nearest neighbour; the overlay shows the working copy)"
            )
        else:
            text += f" on a {width}x{height} image"
        text += ", from the cache." if self.cached else "."
        return text + (" " + self.upload.notice if self.upload.notice else "")

    def coco(self) -> dict[str, Any]:
        """The COCO dict of the masks, named after the uploaded file, its image of the masks' size."""
        return self.result.coco(self.upload.file_name)


class EverythingTab:
    """Segment-everything jobs on MobileSAM, shared by the tab and the API."""

    def __init__(
        self,
        store: ModelStore,
        sessions: Sessions,
        lane: HeavyLane,
        budget: EverythingBudget,
        results: ResultCache,
        max_image_side: int,
    ) -> None:
        self.store, self.sessions, self.lane, self.budget = store, sessions, lane, budget
        self.results, self.max_image_side = results, max_image_side

    async def answer(
        self,
        path: str | None,
        settings: EverythingSettings,
        random_weights: bool,
        request: Any,
        progress: Callable[..., Any] | None = None,
        mode: str = GRID,
        detector: str = APP_DETECTOR,
        pipeline: str = AUTO,
    ) -> EverythingAnswer:
        """
        The job for an upload: refused at once when over budget, from the cache when already done,
        else run in the heavy lane (cancelled with the calling task or the session). In objects mode,
        `pipeline` (`PIPELINE_CHOICES`) picks MobileSAMv2 or `detector`'s boxes with MobileSAM's decoder.

        Raises:
          ValueError, ImageLoadError, BudgetExceeded, CheckpointError, LaneFull, Cancelled.
        """
        pipeline = self.pipeline(mode, pipeline)
        if pipeline == BOXES_PIPELINE and detector not in DETECTORS:
            raise ValueError(f"Unknown detector {detector!r}; expected one of {', '.join(DETECTORS)}.")
        if pipeline != BOXES_PIPELINE:
            detector = MOBILESAMV2_DETECTOR if pipeline == MOBILESAMV2_PIPELINE else None
        upload, image, key = await asyncio.to_thread(self._prepare, path, settings, random_weights, pipeline, detector)
        cached = self.results.get(key)
        if cached is not None:
            return EverythingAnswer(upload, cached, True)
        size = upload.image.shape[:2]

        def job(control: JobControl) -> tuple[EverythingResult, bool]:
            return self.results.get_or_run(
                key, lambda: self._run(image, settings, random_weights, control, progress, pipeline, detector, size)
            )

        result, cached = await run_heavy(self.sessions, self.lane, request, job, progress)
        return EverythingAnswer(upload, result, cached)

    def pipeline(self, mode: str, choice: str = AUTO) -> str:
        """The pipeline of a job: the grid's, or in objects mode `choice`, where "auto" is MobileSAMv2 when its
        files are in the server's checkpoint folder, else boxes with MobileSAM's decoder."""
        if mode == GRID:
            return GRID_PIPELINE
        if mode != OBJECTS:
            raise ValueError(f"Unknown segment-everything mode {mode!r}; expected {GRID!r} or {OBJECTS!r}.")
        if choice not in PIPELINE_CHOICES:
            raise ValueError(f"Unknown pipeline {choice!r}; expected one of {', '.join(PIPELINE_CHOICES)}.")
        if choice != AUTO:
            return choice
        return BOXES_PIPELINE if mobilesamv2_missing(self.store.checkpoint_dir) else MOBILESAMV2_PIPELINE

    def _prepare(
        self, path: str | None, settings: EverythingSettings, random_weights: bool, pipeline: str, detector: str | None
    ) -> tuple[Upload, Any, tuple]:
        """The upload, the working copy the generator segments and the result's cache key. The masks are given
        in the upload's pixels: the file's own, unless it was over the server's image side limit."""
        upload = read_upload(path, self.max_image_side)
        image = prepare_image(upload.image, settings)
        self.budget.check(image.shape[:2], settings, GRID if pipeline == GRID_PIPELINE else OBJECTS)
        model_key = (bool(random_weights), pipeline, detector)
        return upload, image, ResultCache.key(image, settings, (model_key, upload.image.shape[:2]))

    def _run(
        self,
        image: Any,
        settings: EverythingSettings,
        random_weights: bool,
        control: JobControl,
        progress: Callable[..., Any] | None,
        pipeline: str,
        detector: str | None,
        output_size: tuple[int, int],
    ) -> EverythingResult:
        model, box_source = self.pipeline_parts(pipeline, random_weights, detector)
        embedding = self.store.embeddings.get((image_key(image), MOBILE_SAM, bool(random_weights)))
        report = None if progress is None else (lambda fraction: progress(fraction, desc="Segmenting everything"))
        with current_job(control):
            return run_everything(
                interruptible(model),
                image,
                settings,
                budget=self.budget,
                embedding=embedding,
                box_source=box_source,
                pipeline=pipeline,
                cancel=control,
                progress=report,
                output_size=output_size,
            )

    def pipeline_parts(self, pipeline: str, random_weights: bool, detector: str | None = None) -> tuple[Any, Any]:
        """The model and the box source (None for the grid) of a pipeline, loaded once by the store; `detector`
        (default: the pipeline's) is the boxes' in "mobilesam-boxes". Raises CheckpointError for a missing file."""
        model = self.store.model(MOBILESAMV2 if pipeline == MOBILESAMV2_PIPELINE else MOBILE_SAM, random_weights)
        if pipeline == GRID_PIPELINE:
            return model, None
        name = detector or DEFAULT_DETECTORS[pipeline]
        return model, self._detector(name, bool(random_weights), pipeline == MOBILESAMV2_PIPELINE)

    def _detector(self, name: str, random_weights: bool, official: bool) -> Any:
        """The object-aware mode's detector, loaded once (random weights: an untrained YOLOv8 of its size);
        `official`: MobileSAMv2's ObjectAwareModel run as its Inference.py runs it (`ObjectAwareBoxSource`)."""

        def build() -> Any:
            network = load_model(
                name,
                checkpoint_dir=self.store.checkpoint_dir,
                download=self.store.may_download(name),
                random_weights=random_weights,
                seed=RANDOM_SEED,
            )
            source = ObjectAwareBoxSource if official else UltralyticsBoxSource
            return source(interruptible(network), device=self.store.device)

        return self.store.shared(("detector", name, random_weights, official), build)

    def write_downloads(self, answer: EverythingAnswer, request: Any) -> tuple[str, str]:
        """The COCO JSON and a ZIP of one PNG per mask, in a new folder of the session."""
        folder = self.sessions.new_folder(request)
        stem = safe_stem(answer.upload.name)
        coco_path = atomic_write_bytes(folder / f"{stem}_everything.json", json.dumps(answer.coco()).encode())
        zip_path = folder / f"{stem}_masks.zip"
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for png in write_mask_pngs(folder / "masks", answer.result.records):
                archive.write(png, png.name)
        self.sessions.enforce_cap()
        return str(coco_path), str(zip_path)
