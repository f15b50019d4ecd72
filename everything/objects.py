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
from torchvision.ops import batched_nms

from mobile_sam.automatic_mask_generator import (
    OUTPUT_MODES,
    CancelFlag,
    GenerationCancelled,
    SamAutomaticMaskGenerator,
)
from mobile_sam.image import to_rgb_uint8
from mobile_sam.predictor import SamPredictor
from mobile_sam.utils.amg import (
    area_from_rle,
    box_xyxy_to_xywh,
    calculate_stability_score,
    coco_encode_rle,
    rle_boxes_in_crop,
    rle_to_mask,
    rle_to_uncompressed,
    threshold_to_rles,
)
from mobile_sam.utils.mask_data import MaskData
from mobile_sam.utils.opencv_masks import PlaneMasks

from .box_sources import MAX_DETECTIONS, BoxSource

BORDER_SNAP_PX = 20.0
UPSCALE = 4  # the mask decoder's upscaling: low-res logits per image token along each side
# Boxes decoded at once on a CPU: on the idle 2-core benchmark machine, 100 boxes on truck.jpg decoded in
# 1.6-1.75 s in groups of 4, 1.7-1.9 s in groups of 8 and 1.9-2.1 s in groups of 16.
CPU_BOX_GROUP = 4
STAGES = ("detector", "encoder", "decoder", "postprocess")
UPSAMPLING = ("opencv", "torch")


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
        the decoder runs 16 boxes at a time (fastest there); elsewhere a whole batch at once.
      pred_iou_thresh: keep masks whose predicted IoU is above this (0: keep all, MobileSAMv2's behaviour).
      stability_score_thresh: keep masks whose stability score is at least this (0: keep all).
      stability_score_offset: logit offset of the stability score's two thresholds.
      box_nms_thresh: remove masks whose box overlaps a higher-IoU mask's box by more than this (None: off).
      min_mask_region_area: fill holes and drop islands smaller than this many pixels (0: off).
      output_mode: "binary_mask", "uncompressed_rle" or "coco_rle", as in the grid generator.
      upsampling: how low-res logits reach the image size. "opencv" (default): OpenCV's bilinear resize with
        the same half-pixel geometry as `Sam.postprocess_masks`, about 4x faster on a CPU; logits agree within
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
            image: (H, W, 3) uint8 RGB (other layouts go through `mobile_sam.image.to_rgb_uint8`).
            boxes: (N, 4) XYXY boxes in image pixels to use instead of the box source's. They are clipped
                to the image; a non-finite box, an inverted one (x1 < x0 or y1 < y0) or one entirely
                outside the image raises ValueError.
            progress: called with the fraction done (0 to 1): detection and encoding, then box batches.
            cancel: checked between stages and batches; once `cancel.is_set()`, raises GenerationCancelled.
            timings: if given, receives the seconds spent per stage (`STAGES`).
        Returns:
            one record per mask, largest area first: `segmentation` (per output_mode), `area`, `bbox` (XYWH),
            `predicted_iou`, `point_coords` ([[x, y]] the box centre), `stability_score`, `crop_box` (the
            whole image, XYWH) and `box` (the XYXY prompt after clipping and snapping).
        """
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            image = to_rgb_uint8(image)
        stage_times = dict.fromkeys(STAGES, 0.0)
        report = _reporter(progress, cancel)
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
        data = _empty_mask_data()
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
        decoder = _BoxDecoder(predictor)
        stage_times["encoder"] = time.perf_counter() - start
        report(0.1)
        group = self.boxes_per_batch if predictor.device.type != "cpu" else min(self.boxes_per_batch, CPU_BOX_GROUP)
        original_size = predictor.original_size
        masks = None
        if self.upsampling == "opencv":
            height, width = original_size
            extent = self.model.low_res_extent(predictor.input_size, decoder.low_res_size)
            scale = self.model.image_size // decoder.low_res_size
            masks = PlaneMasks(
                extent,
                scale,
                predictor.input_size,
                [0, 0, width, height],
                original_size,
                self.mask_threshold,
                self.stability_score_offset,
            )
        data = _empty_mask_data()
        for first_box in range(0, len(prompts), self.boxes_per_batch):
            batch = prompts[first_box : first_box + self.boxes_per_batch]
            for first in range(0, len(batch), group):
                start = time.perf_counter()
                boxes = batch[first : first + group]
                low_res, iou_preds, kept = decoder.decode(boxes, self.pred_iou_thresh)
                stage_times["decoder"] += time.perf_counter() - start
                start = time.perf_counter()
                if masks is not None:
                    data.cat(self._opencv_masks(masks, low_res, iou_preds, boxes[kept]))
                else:
                    data.cat(self._torch_masks(low_res, iou_preds, boxes[kept], predictor.input_size, original_size))
                stage_times["postprocess"] += time.perf_counter() - start
            report(0.1 + 0.9 * min(first_box + self.boxes_per_batch, len(prompts)) / len(prompts))
        if self.box_nms_thresh is not None and len(data) > 0:
            keep = batched_nms(
                data["boxes"].float(), data["iou_preds"], torch.zeros(len(data)), iou_threshold=self.box_nms_thresh
            )
            data.filter(keep)
        return data

    def _opencv_masks(
        self, masks: PlaneMasks, low_res: torch.Tensor, iou_preds: torch.Tensor, prompt_boxes: np.ndarray
    ) -> MaskData:
        """The masks of low-res logits (K, 1, 4h, 4w) with "opencv" upsampling, one plane at a time.

        On truck.jpg (1800x1200) this takes 3.9 ms per mask against 5.7 ms for the resize of four planes at a time
        followed by the vectorised stability, threshold and encoding (which left each 8.6 MB plane out of the cache).
        """
        stability, kept, rles, boxes = masks.candidates(low_res[:, 0].cpu().numpy(), self.stability_score_thresh)
        return _kept_masks(kept, stability, boxes, rles, iou_preds, prompt_boxes)

    def _torch_masks(
        self,
        low_res: torch.Tensor,
        iou_preds: torch.Tensor,
        prompt_boxes: np.ndarray,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
    ) -> MaskData:
        """The masks of low-res logits (K, 1, 4h, 4w) with "torch" upsampling, `chunk_megabytes` of logits at a time."""
        height, width = original_size
        crop_box = [0, 0, width, height]
        chunk = max(1, self.chunk_bytes // (4 * height * width))
        data = _empty_mask_data()
        for lo in range(0, len(low_res), chunk):
            planes = self._full_logits(low_res[lo : lo + chunk], input_size, original_size)
            data.cat(
                self._filter(planes, iou_preds[lo : lo + chunk], prompt_boxes[lo : lo + chunk], crop_box, original_size)
            )
        return data

    def _full_logits(
        self, low_res: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> np.ndarray:
        """Image-size logits (K, H, W) float32 of low-res logits (K, 1, 4h, 4w), by `Sam.postprocess_masks`."""
        return self.model.postprocess_masks(low_res, input_size, original_size)[:, 0].cpu().numpy()

    def _filter(
        self,
        planes: np.ndarray,
        iou_preds: torch.Tensor,
        prompt_boxes: np.ndarray,
        crop_box: list[int],
        original_size: tuple[int, int],
    ) -> MaskData:
        """Stability filter, threshold, RLE and tight box of K masks ("torch" upsampling): planes (K, H, W)
        float32 logits, their predicted IoU (K,) and prompts (K, 4)."""
        stability = calculate_stability_score(
            torch.from_numpy(planes), self.mask_threshold, self.stability_score_offset
        )
        keep = torch.ones_like(stability, dtype=torch.bool)
        if self.stability_score_thresh > 0.0:
            keep = stability >= self.stability_score_thresh
        kept = torch.nonzero(keep).flatten()
        rles = threshold_to_rles([planes[i] for i in kept.tolist()], self.mask_threshold, crop_box, original_size)
        return _kept_masks(kept, stability, rle_boxes_in_crop(rles, crop_box), rles, iou_preds, prompt_boxes)

    def _records(self, data: MaskData, image_size: tuple[int, int]) -> list[dict[str, Any]]:
        """Records sorted by area, largest first (ties keep the prompt order)."""
        if len(data) == 0:
            return []
        encode = {"binary_mask": rle_to_mask, "uncompressed_rle": rle_to_uncompressed, "coco_rle": coco_encode_rle}[
            self.output_mode
        ]
        height, width = image_size
        areas = [area_from_rle(rle) for rle in data["rles"]]
        order = sorted(range(len(areas)), key=lambda i: -areas[i])
        boxes = data["boxes"].tolist()
        prompt_boxes = data["prompt_boxes"].tolist()
        iou_preds = data["iou_preds"].tolist()
        stability = data["stability_score"].tolist()
        return [
            {
                "segmentation": encode(data["rles"][i]),
                "area": areas[i],
                "bbox": box_xyxy_to_xywh(boxes[i]),
                "predicted_iou": iou_preds[i],
                "point_coords": [
                    [(prompt_boxes[i][0] + prompt_boxes[i][2]) / 2, (prompt_boxes[i][1] + prompt_boxes[i][3]) / 2]
                ],
                "stability_score": stability[i],
                "crop_box": [0, 0, width, height],
                "box": prompt_boxes[i],
            }
            for i in order
        ]


class _BoxDecoder:
    """Decodes box prompts on one encoded image: the mask decoder's image side is prepared once."""

    def __init__(self, predictor: SamPredictor) -> None:
        model = predictor.model
        self.predictor = predictor
        self.prompt_encoder, self.mask_decoder = model.prompt_encoder, model.mask_decoder
        _, dense = self.prompt_encoder(points=None, boxes=None, masks=None)
        features = predictor.features
        self.image = self.mask_decoder.prepare_image(features, self.prompt_encoder.get_dense_pe(), dense)
        # Image tokens whose upscaled logits reach the unpadded input frame (upscaling is local: 4x4 logits per
        # token), as far as `Sam.postprocess_masks` reads them (one spare low-res row and column).
        tokens = features.shape[-1]
        self.low_res_size = UPSCALE * tokens
        self.token_extent = tuple(
            min(tokens, -(-extent // UPSCALE))
            for extent in model.low_res_extent(predictor.input_size, self.low_res_size)
        )
        # The official code passes float64 coordinates; MPS has no float64.
        self.dtype = torch.float32 if predictor.device.type == "mps" else torch.float64

    def decode(self, boxes: np.ndarray, pred_iou_thresh: float) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Low-res logits (S, 1, 4h, 4w) for (h, w) image tokens (256 x 256 in SAM), predicted IoU (S,) and the
        indices (S,) of the boxes (B, 4) XYXY in image pixels whose predicted IoU is above `pred_iou_thresh` (all
        when it is 0).

        Logits outside the unpadded input frame (never read by `Sam.postprocess_masks`) are left at 0.
        """
        device = self.predictor.device
        in_boxes = self.predictor.transform.apply_boxes_torch(
            torch.as_tensor(boxes, dtype=self.dtype), self.predictor.original_size
        ).to(device)
        sparse, _ = self.prompt_encoder(points=None, boxes=in_boxes, masks=None)
        if pred_iou_thresh <= 0.0:
            iou_predictions, hyper_in, image_tokens = self.mask_decoder.decode_prepared(self.image, sparse, False)
            iou, kept = iou_predictions[:, 0].cpu(), torch.arange(len(boxes))
        else:
            iou_predictions, state = self.mask_decoder.decode_iou(self.image, sparse)
            iou = iou_predictions[:, 0].cpu()
            kept = torch.nonzero(iou > pred_iou_thresh).flatten()
            hyper_in, image_tokens = self.mask_decoder.decode_mask_tokens(state, kept.to(device), False)
        rows, cols = self.token_extent
        low_res = torch.zeros(len(kept), 1, self.low_res_size, self.low_res_size, device=device)
        if len(kept) > 0:
            upscaled = self.mask_decoder.upscale_masks(hyper_in, image_tokens[..., :rows, :cols])
            low_res[..., : upscaled.shape[-2], : upscaled.shape[-1]] = upscaled
        return low_res, iou[kept], kept.numpy()


def _kept_masks(
    kept: torch.Tensor,
    stability: torch.Tensor,
    boxes: torch.Tensor,
    rles: list[dict[str, Any]],
    iou_preds: torch.Tensor,
    prompt_boxes: np.ndarray,
) -> MaskData:
    """The masks kept (S,) (indices into iou_preds, prompt_boxes and stability (K,)) with their boxes (S, 4) and
    RLEs."""
    return MaskData(
        iou_preds=iou_preds[kept],
        prompt_boxes=torch.as_tensor(prompt_boxes, dtype=torch.float64)[kept],
        stability_score=stability[kept],
        boxes=boxes,
        rles=rles,
    )


def _reporter(progress: Callable[[float], None] | None, cancel: CancelFlag | None) -> Callable[[float], None]:
    """A function that checks `cancel` and reports a fraction done to `progress`."""

    def report(fraction: float) -> None:
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("mask generation was cancelled")
        if progress is not None:
            progress(fraction)

    return report


def _empty_mask_data() -> MaskData:
    return MaskData(
        iou_preds=torch.zeros(0, dtype=torch.float32),
        prompt_boxes=torch.zeros(0, 4, dtype=torch.float64),
        stability_score=torch.zeros(0, dtype=torch.float32),
        boxes=torch.zeros(0, 4, dtype=torch.int64),
        rles=[],
    )
