"""The programmatic API (`/segment`, `/everything`, `/compare`, `/compare_everything`): prompts in the uploaded
file's own pixels, checked there (by `samkit.prompts.Prompts`) before they are mapped onto the downscaled image."""

from __future__ import annotations

import json
from dataclasses import fields

import gradio as gr
import numpy as np

from compare.fastsam_rules import DEFAULT_FASTSAM_RULES
from everything.comparison import RANDOM_NOTE
from everything.pipelines import GRID_PIPELINE, PIPELINES
from mobile_sam.utils.rle import mask_to_rle
from samkit.checkpoints import CheckpointError
from samkit.images import ImageLoadError
from samkit.models import APP_DETECTOR, MOBILE_SAM, PAPER_REFERENCE
from samkit.prompts import Prompts

from .compare_tab import CompareTab, user_prompts
from .everything_compare import EverythingCompareJobs, summary
from .everything_jobs import GRID, EverythingSettings
from .everything_tab import AUTO, EverythingTab
from .heavy import STOPPED
from .image_session import segment
from .messages import user_error
from .model_store import ModelStore
from .scheduling import LaneFull, Priority
from .uploads import Upload, read_upload

SETTINGS = EverythingSettings()  # the defaults of the API's knobs
HANDLED = (ImageLoadError, ValueError, CheckpointError, LaneFull, *STOPPED)


def scaled_prompts(prompts_json: str, upload: Upload) -> Prompts:
    """The caller's prompts, validated against the original image, in the model image's pixels."""
    prompts = Prompts.from_json(prompts_json).checked(upload.original_size)
    return Prompts.from_lists(upload.to_image(prompts.points), prompts.labels, upload.to_image(prompts.boxes))


def checked_settings(*values: float) -> EverythingSettings:
    """The segment-everything settings of the API's knob values, given in the order of `EverythingSettings`' fields
    (None keeps a default), each checked (`EverythingSettings.checked`)."""
    return EverythingSettings.checked(**dict(zip((item.name for item in fields(EverythingSettings)), values)))


def model_list(text: str) -> list[str]:
    """A JSON list or comma-separated names (of models, or of pipelines)."""
    text = (text or "").strip()
    if text.startswith("["):
        try:
            return [str(name) for name in json.loads(text)]
        except json.JSONDecodeError as error:
            raise ValueError(f"models is not a valid JSON list ({error.msg}).") from error
    return [name.strip() for name in text.split(",") if name.strip()]


class Api:
    """The API endpoints (their parameter names are the API's)."""

    def __init__(
        self,
        store: ModelStore,
        everything: EverythingTab,
        compare: CompareTab,
        everything_compare: EverythingCompareJobs,
        priority: Priority,
        random_weights: bool,
        max_side: int,
    ) -> None:
        self.store, self.everything_tab, self.compare_tab, self.priority = store, everything, compare, priority
        self.everything_compare = everything_compare
        self.random_weights, self.max_side = random_weights, max_side

    def segment(self, image: str | None, prompts: str, multimask: bool = True) -> dict:
        """Masks (COCO RLE, at mask_size) and predicted IoU for prompts given in the uploaded image's pixels."""
        try:
            upload = read_upload(image, self.max_side)
            checked = scaled_prompts(prompts, upload)
            with self.priority.interactive():
                embedding, _ = self.store.embedding(MOBILE_SAM, self.random_weights, upload.image)
                result = segment(embedding, checked, bool(multimask))
        except HANDLED as error:
            raise user_error(error) from error
        notice = upload.notice
        if upload.scale != 1.0:
            notice += (
                f" The masks are at the downscaled size {upload.image.shape[1]}x{upload.image.shape[0]} (mask_size)."
            )
        return {
            "masks": [mask_to_rle(mask) for mask in result.masks],
            "scores": [float(score) for score in result.scores],
            "candidates": result.candidates,
            "image_size": list(upload.image.shape[:2]),
            "mask_size": list(upload.image.shape[:2]),
            "original_size": list(upload.original_size),
            "scale": upload.scale,
            "notice": notice.strip(),
            "random_weights": self.random_weights,
            "encoder_ms": 1000 * embedding.encode_seconds,
            "decoder_ms": 1000 * result.decode_seconds,
        }

    async def everything(
        self,
        image: str | None,
        points_per_side: float = SETTINGS.points_per_side,
        pred_iou_thresh: float = SETTINGS.pred_iou_thresh,
        stability_score_thresh: float = SETTINGS.stability_score_thresh,
        box_nms_thresh: float = SETTINGS.box_nms_thresh,
        crop_n_layers: float = SETTINGS.crop_n_layers,
        min_mask_region_area: float = SETTINGS.min_mask_region_area,
        input_size: float = SETTINGS.input_size,
        mode: str = GRID,
        detector: str = APP_DETECTOR,
        pipeline: str = AUTO,
        request: gr.Request = None,
    ) -> tuple[dict, np.ndarray]:
        """The COCO dataset dict of all masks (plus a summary, the sizes and the pipeline that made them) and the
        overlay; over-budget jobs are refused. mode "objects" runs `pipeline`: "mobilesamv2", "mobilesam-boxes" (the
        boxes of `detector`, one of `samkit.models.DETECTORS`) or "auto" (MobileSAMv2 when its files are on the
        server).

        The generator segments a working copy, longest side input_size (`working_size`); the masks, boxes, areas
        and points are given in the uploaded image's pixels (`mask_size`, the COCO image's height and width: the
        file's own size `original_size`, unless it was over the server's image side limit, which `notice` says),
        resized by nearest neighbour at pixel centres (`samkit.rescaling`). The overlay is at working_size."""
        try:
            settings = checked_settings(
                points_per_side,
                pred_iou_thresh,
                stability_score_thresh,
                box_nms_thresh,
                crop_n_layers,
                min_mask_region_area,
                input_size,
            )
            answer = await self.everything_tab.answer(
                image,
                settings,
                self.random_weights,
                request,
                mode=mode or GRID,
                detector=detector or APP_DETECTOR,
                pipeline=pipeline or AUTO,
            )
        except HANDLED as error:
            raise user_error(error) from error
        result, upload = answer.result, answer.upload
        document = {
            **answer.coco(),
            "summary": answer.summary(),
            "pipeline": result.pipeline,
            "random_weights": self.random_weights,
            "mask_size": list(result.image_size),
            "working_size": list(result.working_size),
            "original_size": list(upload.original_size),
            "mask_resize": "nearest" if result.working_size != result.image_size else "none",
            "notice": upload.notice,
        }
        return document, result.overlay

    async def compare(
        self,
        image: str | None,
        prompts: str,
        models: str = f'["{MOBILE_SAM}"]',
        reference: str = PAPER_REFERENCE,
        fastsam_rules: str = DEFAULT_FASTSAM_RULES,
        request: gr.Request = None,
    ) -> list[dict]:
        """The comparison table (mIoU against the reference and latencies) for prompts on an image; FastSAM's
        masks follow `fastsam_rules` ("original" or "ultralytics", `compare.fastsam_rules`)."""
        try:
            upload = read_upload(image, self.max_side)
            cases = user_prompts(scaled_prompts(prompts, upload), upload.image.shape[:2])
            comparison = await self.compare_tab.answer(
                upload.image,
                cases,
                reference or PAPER_REFERENCE,
                model_list(models),
                self.random_weights,
                request,
                fastsam_rules=fastsam_rules or DEFAULT_FASTSAM_RULES,
            )
        except HANDLED as error:
            raise user_error(error) from error
        return [
            {
                "model": r.model,
                "role": r.role,
                "miou": r.miou,
                "encoder_ms": r.encoder_ms,
                "decoder_ms": r.decoder_ms,
                "total_ms": r.total_ms,
                "status": r.status,
            }
            for r in comparison.rows
        ]

    async def compare_everything(
        self,
        image: str | None,
        pipelines: str = json.dumps(list(PIPELINES)),
        reference: str = GRID_PIPELINE,
        points_per_side: float = SETTINGS.points_per_side,
        pred_iou_thresh: float = SETTINGS.pred_iou_thresh,
        stability_score_thresh: float = SETTINGS.stability_score_thresh,
        box_nms_thresh: float = SETTINGS.box_nms_thresh,
        crop_n_layers: float = SETTINGS.crop_n_layers,
        min_mask_region_area: float = SETTINGS.min_mask_region_area,
        input_size: float = SETTINGS.input_size,
        request: gr.Request = None,
    ) -> dict:
        """Segment-everything pipelines side by side on an image (`everything.comparison`): per pipeline (a JSON list
        or comma-separated names of `everything.pipelines.PIPELINES`), its masks, milliseconds per stage and its
        agreement with the `reference` pipeline's masks; a pipeline whose files are missing is skipped and says
        which. The knobs are the grid's (as in `/everything`); all the jobs together must fit the server's budget.
        For the masks themselves, call `/everything`."""
        try:
            settings = checked_settings(
                points_per_side,
                pred_iou_thresh,
                stability_score_thresh,
                box_nms_thresh,
                crop_n_layers,
                min_mask_region_area,
                input_size,
            )
            upload = read_upload(image, self.max_side)
            comparison, _, cached = await self.everything_compare.answer(
                upload.image,
                model_list(pipelines),
                reference or GRID_PIPELINE,
                settings,
                self.random_weights,
                request,
            )
        except HANDLED as error:
            raise user_error(error) from error
        return {
            "reference": comparison.reference,
            "rows": comparison.rows,
            "summary": summary(comparison, cached),
            "random_weights": self.random_weights,
            "note": RANDOM_NOTE if self.random_weights else "",
            "working_size": list(comparison.working_size),
            "original_size": list(upload.original_size),
            "notice": upload.notice,
        }
