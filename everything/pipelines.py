"""The pipelines of segment everything, by name: which model, prompts and settings made a result.

  - "grid": SAM's automatic mask generator (`SamAutomaticMaskGenerator`, a grid of point prompts) on a SAM-family
    model: the official results;
  - "mobilesamv2": MobileSAMv2 as its `Inference.py` runs it: its image encoder (EfficientViT-SAM-L2, l2.pt) and
    prompt-guided decoder (Prompt_guided_Mask_Decoder.pt), prompted with the boxes of its ObjectAwareModel.pt
    (`ObjectAwareBoxSource`: conf 0.4, NMS IoU 0.9, imgsz 1024, at most 300 boxes, the border snap in the detector's
    letterboxed frame) or with the caller's boxes, at its published settings (`MOBILESAMV2_SETTINGS`: no IoU,
    stability or NMS filter, masks sorted by area, batches of 320, `Sam.postprocess_masks` upsampling);
  - "mobilesam-boxes": object-aware boxes with MobileSAM's decoder: the boxes of any detector (FastSAM-s by default,
    a downloadable file) as prompts of a SAM-family model (MobileSAM by default), one mask each; needs no file of
    MobileSAMv2's. Its settings are the object-aware generator's knobs.

`mobilesamv2_missing` says which of MobileSAMv2's files a folder lacks, which the command line and the app use to
run "mobilesamv2" when its files are there.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mobile_sam.mobilesamv2 import OFFICIAL_BATCH_SIZE
from samkit.checkpoints import checkpoint_status, load_ultralytics_checkpoint
from samkit.knobs import KnobError
from samkit.models import APP_DETECTOR, MOBILE_SAM, MOBILESAMV2, MOBILESAMV2_DETECTOR, MODELS

from .box_sources import MAX_DETECTIONS, ObjectAwareBoxSource
from .objects import ObjectAwareMaskGenerator
from .settings import GRID, OBJECTS, check_settings

GRID_PIPELINE, MOBILESAMV2_PIPELINE, BOXES_PIPELINE = GRID, "mobilesamv2", "mobilesam-boxes"
PIPELINES: Mapping[str, str] = {
    GRID_PIPELINE: "SAM's automatic mask generator (a grid of point prompts): the official results",
    MOBILESAMV2_PIPELINE: "MobileSAMv2 (its L2 image encoder, prompt-guided decoder and ObjectAwareModel detector, "
    "at its published settings)",
    BOXES_PIPELINE: "object-aware boxes with MobileSAM's decoder (a detector's boxes as prompts of a SAM-family model)",
}
# The object-aware pipelines (prompts "objects").
OBJECT_PIPELINES = (MOBILESAMV2_PIPELINE, BOXES_PIPELINE)
# The detector of each object-aware pipeline unless the caller names one: MobileSAMv2's own, and FastSAM-s (a
# downloadable file) for boxes with MobileSAM's decoder.
DEFAULT_DETECTORS = {MOBILESAMV2_PIPELINE: MOBILESAMV2_DETECTOR, BOXES_PIPELINE: APP_DETECTOR}
# MobileSAMv2's Inference.py, as settings of `ObjectAwareMaskGenerator`: its detector snaps the boxes itself
# (border_snap 0 here), no filter, `Sam.postprocess_masks` ("torch") upsampling, batches of 320.
MOBILESAMV2_SETTINGS: Mapping[str, Any] = {
    "max_boxes": MAX_DETECTIONS,
    "border_snap": 0.0,
    "boxes_per_batch": OFFICIAL_BATCH_SIZE,
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "box_nms_thresh": None,
    "min_mask_region_area": 0,
    "upsampling": "torch",
}
# What a caller may change in "mobilesamv2": the boxes decoded at once change memory and progress steps, not masks.
MOBILESAMV2_KNOBS = ("boxes_per_batch",)


def pipeline_settings(pipeline: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting of `pipeline`'s generator: its defaults with `values` over them, checked
    (`everything.settings.check_settings`); "mobilesamv2" takes only `MOBILESAMV2_KNOBS` (and its own values of
    the others).

    Raises:
      KnobError: an unknown pipeline, a setting it does not have, or a value out of its rule.
    """
    if pipeline not in PIPELINES:
        raise KnobError(f"pipeline must be one of {', '.join(PIPELINES)}, got {pipeline!r}")
    if pipeline != MOBILESAMV2_PIPELINE:
        return check_settings(GRID if pipeline == GRID_PIPELINE else OBJECTS, values)
    official = check_settings(OBJECTS, MOBILESAMV2_SETTINGS)
    foreign = [name for name in values if name not in MOBILESAMV2_KNOBS and values[name] != official.get(name, values)]
    if foreign:
        raise KnobError(
            f"{', '.join(foreign)}: not a setting of the {MOBILESAMV2_PIPELINE} pipeline, which runs MobileSAMv2's "
            f"published settings (only {', '.join(MOBILESAMV2_KNOBS)} may be set); the {BOXES_PIPELINE} pipeline "
            "has the object-aware generator's knobs"
        )
    return check_settings(OBJECTS, {**MOBILESAMV2_SETTINGS, **values})


def mobilesamv2_files(caller_boxes: bool = False) -> tuple[str, ...]:
    """The catalog names of the files "mobilesamv2" reads: the model's, its parts', and the detector's (unless the
    caller gives the boxes)."""
    return (MOBILESAMV2, *MODELS[MOBILESAMV2].needs, *(() if caller_boxes else (MOBILESAMV2_DETECTOR,)))


def mobilesamv2_missing(checkpoint_dir: str | Path | None = None, caller_boxes: bool = False) -> list[Path]:
    """Where each of MobileSAMv2's files that the checkpoint folder lacks would be (empty: all are there)."""
    return _missing(mobilesamv2_files(caller_boxes), checkpoint_dir)


def pipeline_missing(pipeline: str, checkpoint_dir: str | Path | None = None) -> list[Path]:
    """Where each file that `pipeline` reads at its defaults (MobileSAM, its detector; MobileSAMv2's three files)
    would be in the checkpoint folder, if it is not there (empty: all are there)."""
    if pipeline == MOBILESAMV2_PIPELINE:
        return mobilesamv2_missing(checkpoint_dir)
    names = (MOBILE_SAM,) if pipeline == GRID_PIPELINE else (MOBILE_SAM, DEFAULT_DETECTORS[pipeline])
    return _missing(names, checkpoint_dir)


def _missing(names: tuple[str, ...], checkpoint_dir: str | Path | None) -> list[Path]:
    found = [checkpoint_status(name, checkpoint_dir) for name in names]
    return [status.path for status in found if not status.present]


def mobilesamv2_detector(path: str | Path, device: str | torch.device = "auto") -> ObjectAwareBoxSource:
    """MobileSAMv2's detector from an ObjectAwareModel.pt file (any path: `resolve_checkpoint` finds the cached one),
    run as its Inference.py runs it."""
    return ObjectAwareBoxSource(load_ultralytics_checkpoint(path), device=device)


def mobilesamv2_generator(model: Any, box_source: Any = None, **settings: Any) -> ObjectAwareMaskGenerator:
    """The generator of "mobilesamv2": `model` (`mobile_sam.build_mobilesamv2`, or `load_model("mobilesamv2")`),
    `box_source` (`mobilesamv2_detector`; None: caller boxes) and `pipeline_settings`, e.g. output_mode."""
    return ObjectAwareMaskGenerator(model, box_source, **{**MOBILESAMV2_SETTINGS, **settings})
