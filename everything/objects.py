"""`ObjectAwareMaskGenerator`: segment everything from box prompts (MobileSAMv2's object-aware prompting).

A different algorithm from the grid generator, not its results: instead of a grid of point prompts (three
candidates each, filtered by predicted IoU, stability and NMS), the boxes of an object-aware detector are
decoded as box prompts, one mask each (`multimask_output=False`), on the image embedding computed once.
MobileSAMv2's published behaviour is the default: at most 300 boxes, box sides within 20 px of the image
border snapped to it, no IoU / stability / NMS filter, masks sorted by area (largest first).

Masks are those of `SamPredictor.predict_torch(boxes=...)` with `multimask_output=False`: the decoder runs
through its per-image API (`MaskDecoder.prepare_image`, then `decode_prepared`, or `decode_iou` and
`decode_mask_tokens` when an IoU filter is set, then `upscale_masks`) and the low-res logits reach the image
size through `Sam.postprocess_masks` (`upsampling="torch"`) or, by default, OpenCV's bilinear resize with the
same geometry (`upsampling="opencv"`: logits within about 2e-5, so a pixel that close to a threshold may differ).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mobile_sam.automatic_mask_generator import SamAutomaticMaskGenerator
from mobile_sam.mobilesamv2 import CPU_BOX_GROUP
from mobile_sam.predictor import SamPredictor
from mobile_sam.utils.cancel import CancelFlag, Progress
from mobile_sam.utils.mask_candidates import (
    OUTPUT_MODES,
    UPSAMPLING,
    CandidateMasks,
    PromptDecoder,
    empty_mask_data,
    generator_records,
)
from mobile_sam.utils.mask_data import MaskData
from mobile_sam.utils.rgb import to_rgb_uint8

from .box_sources import MAX_DETECTIONS, BoxSource

BORDER_SNAP_PX = 20.0
STAGES = ("detector", "encoder", "decoder", "postprocess")


class ObjectAwareMaskGenerator:
    """Generates one mask per detected box (MobileSAMv2's object-aware "segment everything").

    Arguments:
      model: a `mobile_sam` `Sam` model (vit_t, vit_b, vit_l or vit_h, or MobileSAMv2 from
        `mobile_sam.build_mobilesamv2`: with `border_snap=0`, boxes inside the image give the masks of MobileSAMv2's
        Inference.py in its order, except that masks of equal area keep the boxes' order here).
      box_source: a detector (`everything.load_box_source(...)`, or anything with `detect(image)`); may be
        None when every `generate` call passes `boxes`. `ObjectAwareBoxSource` snaps boxes itself, as
        MobileSAMv2 does: use `border_snap=0` with it.
      max_boxes: at most this many boxes are decoded (the first ones: detectors give them by confidence).
      border_snap: box sides closer than this many pixels (original image) to the image border are moved
        onto it (0: off). MobileSAMv2 snaps 20 px in the detector's 1024-px frame; here it is 20 px of the
        original image.
      boxes_per_batch: boxes per batch; progress and cancellation are checked between batches. On a CPU
        the decoder runs `CPU_BOX_GROUP` boxes at a time (fastest there); elsewhere a whole batch at once.
      pred_iou_thresh: keep masks whose predicted IoU is above this (0: keep all, MobileSAMv2's behaviour).
      stability_score_thresh: keep masks whose stability score is at least this (0: keep all).
      stability_score_offset: logit offset of the stability score's two thresholds.
      box_nms_thresh: remove masks whose box overlaps a higher-IoU mask's box by more than this (None: off).
      min_mask_region_area: fill holes and drop islands smaller than this many pixels (0: off).
      output_mode: "binary_mask", "uncompressed_rle" or "coco_rle", as in the grid generator.
      upsampling: how low-res logits reach the image size. "opencv" (default): OpenCV's bilinear resize with
        the same half-pixel geometry as `Sam.postprocess_masks`, cheaper on a CPU; logits agree within
        about 2e-5, so a pixel whose logit lies that close to a threshold may differ. "torch":
        `Sam.postprocess_masks` itself, the predictor's masks exactly.
      chunk_megabytes: memory bound of the full-resolution float work done at once with "torch" upsampling
        ("opencv" works on one mask at a time in reused image-size buffers).
    """

    def __init__(
        self,
        model: Any,
        box_source: BoxSource | None = None,
        *,
        max_boxes: int = MAX_DETECTIONS,
        border_snap: float = BORDER_SNAP_PX,
        boxes_per_batch: int = 64,
        pred_iou_thresh: float = 0.0,
        stability_score_thresh: float = 0.0,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        upsampling: str = "opencv",
        chunk_megabytes: float = 24.0,
    ) -> None:
        if model is None:
            raise ValueError("a Sam model is required")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
        if upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
        if max_boxes < 0 or boxes_per_batch < 1 or border_snap < 0 or min_mask_region_area < 0 or chunk_megabytes <= 0:
            raise ValueError(
                "max_boxes >= 0, boxes_per_batch >= 1, border_snap >= 0, min_mask_region_area >= 0 and "
                "chunk_megabytes > 0 are required"
            )
        if box_nms_thresh is not None and not 0.0 <= box_nms_thresh <= 1.0:
            raise ValueError(f"box_nms_thresh must be in [0, 1] or None, got {box_nms_thresh}")
        self.model = model
        self.box_source = box_source
        self.max_boxes = max_boxes
        self.border_snap = float(border_snap)
        self.boxes_per_batch = boxes_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.upsampling = upsampling
        self.chunk_bytes = int(chunk_megabytes * 2**20)
        self.mask_threshold = float(model.mask_threshold)

    @torch.no_grad()
    def generate(
        self,
        image: np.ndarray,
        *,
        boxes: np.ndarray | torch.Tensor | None = None,
        progress: Callable[[float], None] | None = None,
        cancel: CancelFlag | None = None,
        timings: dict[str, float] | None = None,
    ) -> list[dict[str, Any]]:
        """Segment everything in `image` from box prompts.

        Args:
            image: (H, W, 3) uint8 RGB (other layouts go through `mobile_sam.utils.rgb.to_rgb_uint8`).
            boxes: (N, 4) XYXY boxes in image pixels to use instead of the box source's. They are clipped
                to the image; a non-finite box, an inverted one (x1 < x0 or y1 < y0) or one entirely
                outside the image raises ValueError.
            progress: called with the fraction done (0 to 1): detection and encoding, then box batches.
            cancel: checked between stages and batches; raises `Cancelled` once `cancel.is_set()`.
            timings: if given, receives the seconds spent per stage (`STAGES`).
        Returns:
            one record per mask, largest area first: `segmentation` (per output_mode), `area`, `bbox` (XYWH),
            `predicted_iou`, `point_coords` ([[x, y]] the box centre), `stability_score`, `crop_box` (the
            whole image, XYWH) and `box` (the XYXY prompt after clipping and snapping).
        """
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            image = to_rgb_uint8(image)
        stage_times = dict.fromkeys(STAGES, 0.0)
        report = Progress(progress, cancel).report
        report(0.0)
        start = time.perf_counter()
        if boxes is None:
            if self.box_source is None:
                raise ValueError("no box source: pass boxes=... or build the generator with a box_source")
            boxes = self.box_source.detect(image).boxes
        height, width = image.shape[:2]
        prompts = self.prepare_boxes(boxes, (height, width))
        stage_times["detector"] = time.perf_counter() - start
        report(0.05)
        data = empty_mask_data(box=torch.zeros(0, 4, dtype=torch.float64))
        if len(prompts) > 0:
            data = self._decode(image, prompts, stage_times, report)
        start = time.perf_counter()
        if self.min_mask_region_area > 0 and len(data) > 0:
            nms = 1.0 if self.box_nms_thresh is None else self.box_nms_thresh
            data = SamAutomaticMaskGenerator.postprocess_small_regions(data, self.min_mask_region_area, nms)
        records = self._records(data, (height, width))
        stage_times["postprocess"] += time.perf_counter() - start
        report(1.0)
        if timings is not None:
            timings.update(stage_times)
        return records

    def prepare_boxes(self, boxes: np.ndarray | torch.Tensor, image_size: tuple[int, int]) -> np.ndarray:
        """The prompts that `generate` decodes: checked, clipped, capped at `max_boxes`, border-snapped.

        boxes (N, 4) XYXY in image pixels -> (M, 4) float64, M <= max_boxes; image_size is (H, W).
        """
        array = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, dtype=np.float64)
        if array.size == 0:
            return np.zeros((0, 4), dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != 4:
            raise ValueError(f"boxes must be an (N, 4) XYXY array, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("boxes must be finite")
        if (array[:, 2] < array[:, 0]).any() or (array[:, 3] < array[:, 1]).any():
            raise ValueError("boxes must be XYXY with x1 >= x0 and y1 >= y0")
        height, width = image_size
        outside = (array[:, 2] < 0) | (array[:, 3] < 0) | (array[:, 0] > width) | (array[:, 1] > height)
        if outside.any():
            raise ValueError(f"box {array[outside][0].tolist()} lies outside the {width}x{height} image")
        array = array[: self.max_boxes].copy()
        array[:, 0::2] = array[:, 0::2].clip(0, width)
        array[:, 1::2] = array[:, 1::2].clip(0, height)
        if self.border_snap > 0:
            snap = self.border_snap
            array[:, 0] = np.where(array[:, 0] < snap, 0.0, array[:, 0])
            array[:, 1] = np.where(array[:, 1] < snap, 0.0, array[:, 1])
            array[:, 2] = np.where(array[:, 2] > width - snap, float(width), array[:, 2])
            array[:, 3] = np.where(array[:, 3] > height - snap, float(height), array[:, 3])
        return array

    # -- pipeline ----------------------------------------------------------------------------------------
    def _decode(
        self,
        image: np.ndarray,
        prompts: np.ndarray,
        stage_times: dict[str, float],
        report: Callable[[float], None],
    ) -> MaskData:
        """Encode the image once, decode the boxes batch by batch, and keep the masks that pass the filters."""
        start = time.perf_counter()
        predictor = SamPredictor(self.model)
        predictor.set_image(image)
        decoder = PromptDecoder(predictor)
        stage_times["encoder"] = time.perf_counter() - start
        report(0.1)
        group = self.boxes_per_batch if predictor.device.type != "cpu" else min(self.boxes_per_batch, CPU_BOX_GROUP)
        height, width = predictor.original_size
        masks = CandidateMasks(
            self.model.image_size,
            decoder.low_res_size,
            predictor.input_size,
            [0, 0, width, height],
            (height, width),
            self.mask_threshold,
            self.stability_score_offset,
            self.stability_score_thresh,
            self.upsampling,
            self.chunk_bytes,
        )
        iou_first = self.pred_iou_thresh > 0.0
        data = empty_mask_data(box=torch.zeros(0, 4, dtype=torch.float64))
        for first_box in range(0, len(prompts), self.boxes_per_batch):
            batch = prompts[first_box : first_box + self.boxes_per_batch]
            for first in range(0, len(batch), group):
                start = time.perf_counter()
                boxes = batch[first : first + group]
                decoded = decoder.boxes(boxes, iou_first)
                iou = decoded.iou_predictions[:, 0]
                kept = torch.nonzero(iou > self.pred_iou_thresh).flatten() if iou_first else torch.arange(len(boxes))
                low_res = decoded.low_res_logits(kept)[:, 0] if len(kept) else torch.zeros(0, 1, 1)
                stage_times["decoder"] += time.perf_counter() - start
                start = time.perf_counter()
                box = torch.as_tensor(boxes, dtype=torch.float64)[kept]
                data.cat(masks.keep(low_res, iou[kept], box=box))
                stage_times["postprocess"] += time.perf_counter() - start
            report(0.1 + 0.9 * min(first_box + self.boxes_per_batch, len(prompts)) / len(prompts))
        if self.box_nms_thresh is not None and len(data) > 0:
            from torchvision.ops import batched_nms  # here, not at import: torchvision loads torch._dynamo and triton

            keep = batched_nms(
                data["boxes"].float(), data["iou_preds"], torch.zeros(len(data)), iou_threshold=self.box_nms_thresh
            )
            data.filter(keep)
        return data

    def _records(self, data: MaskData, image_size: tuple[int, int]) -> list[dict[str, Any]]:
        """Records sorted by area, largest first (ties keep the prompt order); `point_coords` is the box centre,
        `crop_box` the whole image and `box` the prompt."""
        height, width = image_size
        box = data["box"]
        data["points"] = (box[:, :2] + box[:, 2:]) / 2
        data["crop_boxes"] = torch.tensor([0, 0, width, height], dtype=torch.int64).repeat(len(data), 1)
        return generator_records(data, self.output_mode, largest_first=True, extra=("box",))
