"""`SamAutomaticMaskGenerator`: segment everything in an image with a grid of point prompts.

The results are those of the official `segment_anything.SamAutomaticMaskGenerator` (same candidates,
filters, thresholds, NMS and output records); the work is ordered to be cheap:
  * prompts are decoded by the mask decoder's per-image API (`MaskDecoder.prepare_image`, `decode_iou`,
    `decode_mask_tokens`), which predicts IoU before any mask token or mask is made;
  * candidates are filtered by predicted IoU first; only prompts with a survivor get their masks upscaled,
    and only surviving candidates are upsampled to full resolution (with exactly the values of the
    official `postprocess_masks`);
  * full-resolution work (stability score, threshold, RLE, box) runs a few masks at a time, bounded by
    `chunk_megabytes`, instead of on (B, 3, H, W) tensors.
With `decode_points` the pipeline reproduces the official records bit for bit; with a model, values
differ from the official decoder's only by float32 rounding (~1e-6). The opt-in `upsampling="opencv"`
trades that exactness for cheaper full-resolution work (logits within about 2e-5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, box_area

from .image import to_rgb_uint8
from .modeling.sam import low_res_extent
from .predictor import SamPredictor
from .utils.amg import (
    MaskData,
    area_from_rle,
    batched_mask_to_box,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    calculate_stability_score,
    coco_encode_rle,
    encode_like,
    generate_crop_boxes,
    is_box_near_crop_edge,
    remove_small_regions,
    rle_boxes_in_crop,
    rle_to_mask,
    rle_to_uncompressed,
    threshold_to_rles,
    uncrop_boxes_xyxy,
    uncrop_points,
)
from .utils.opencv_masks import PlaneMasks
from .utils.transforms import ResizeLongestSide

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
UPSAMPLING = ("torch", "opencv")
CPU_DECODE_GROUP = 4
LOW_RES_SIZE = 256  # side of the decoder's low-res logits

# Points (B, 2) in the input frame -> (low-res logits (B, 3, 256, 256), predicted IoU (B, 3)).
DecodePoints = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class GenerationCancelled(RuntimeError):
    """`generate` was stopped through its `cancel` argument."""


class CancelFlag(Protocol):
    """Anything with `is_set()`, such as `threading.Event`."""

    def is_set(self) -> bool: ...


@dataclass
class DecodedBatch:
    """The decoder's answer for B point prompts: predicted IoU now, mask logits on demand.

    `iou_predictions` is (B, 3). `low_res_logits(prompts)` gives (S, 3, 256, 256) logits for the prompt
    indices (S,), so that mask work is spent only on prompts with a candidate that passed the IoU filter.
    """

    iou_predictions: torch.Tensor
    low_res_logits: Callable[[torch.Tensor], torch.Tensor]


class SamAutomaticMaskGenerator:
    """Generates masks for a whole image from a grid of single-point prompts (the official API).

    Arguments (as in the official generator):
      model: a `mobile_sam` `Sam` model (any of vit_t, vit_b, vit_l, vit_h); may be None when
        `decode_points` is given.
      points_per_side: points along one side of the grid (points_per_side**2 prompts); None if
        `point_grids` is given.
      points_per_batch: prompts per batch; progress and cancellation are checked between batches. On a
        CPU the model decodes them 4 at a time (fastest there); elsewhere all at once.
      pred_iou_thresh: keep candidates whose predicted IoU is above this, in [0, 1] (0 keeps all).
      stability_score_thresh: keep candidates whose stability score is at least this (0 keeps all).
      stability_score_offset: logit offset of the two thresholds of the stability score.
      box_nms_thresh: box IoU above which duplicate masks of one crop are removed.
      crop_n_layers: extra layers of image crops; layer i has 2**i x 2**i crops.
      crop_nms_thresh: box IoU above which duplicates of different crops are removed (smaller crops win).
      crop_overlap_ratio: overlap of neighbouring crops, as a fraction of the short side at layer 1.
      crop_n_points_downscale_factor: points per side in layer i are divided by this**i.
      point_grids: explicit grids, one (N, 2) array in [0, 1] x [0, 1] per crop layer.
      min_mask_region_area: fill holes and drop islands smaller than this many pixels (0: off).
      output_mode: "binary_mask" ((H, W) bool arrays), "uncompressed_rle" or "coco_rle" (JSON-ready).
    Our additions:
      decode_points: replaces the prompt encoder and mask decoder (and makes the image encoder
        unnecessary): points (B, 2) in the input frame -> (low-res logits (B, 3, 256, 256), IoU (B, 3)).
      chunk_megabytes: memory bound of the full-resolution float work done at once (results do not
        depend on it).
      upsampling: how candidates' low-res logits reach the image size. "torch" (default): the official
        `postprocess_masks` values bit for bit. "opencv": OpenCV's bilinear resize with the same geometry,
        one candidate at a time (`mobile_sam.utils.opencv_masks`): logits within about 2e-5, so a pixel that
        close to a threshold may differ, and a candidate whose stability score is that close to
        `stability_score_thresh` may be kept or dropped differently; about 2.5x cheaper full-resolution work
        per candidate on a CPU (2.6 against 6.6 ms on an 1800x1200 image). Not the official results: opt in.
    """

    def __init__(
        self,
        model: Any | None,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        *,
        decode_points: DecodePoints | None = None,
        chunk_megabytes: float = 24.0,
        upsampling: str = "torch",
    ) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("give exactly one of points_per_side and point_grids")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
        if model is None and decode_points is None:
            raise ValueError("a model is required unless decode_points is given")
        if points_per_batch < 1:
            raise ValueError(f"points_per_batch must be at least 1, got {points_per_batch}")
        if crop_n_layers < 0:
            raise ValueError(f"crop_n_layers must be >= 0, got {crop_n_layers}")
        if chunk_megabytes <= 0:
            raise ValueError(f"chunk_megabytes must be positive, got {chunk_megabytes}")
        if upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
        if points_per_side is not None:
            if points_per_side < 1 or crop_n_points_downscale_factor < 1:
                raise ValueError("points_per_side and crop_n_points_downscale_factor must be at least 1")
            point_grids = build_all_layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
        if len(point_grids) < crop_n_layers + 1:
            raise ValueError(
                f"point_grids has {len(point_grids)} grids; crop_n_layers={crop_n_layers} needs {crop_n_layers + 1}"
            )

        self.model = model
        self.decode_points = decode_points
        self.point_grids = [np.asarray(grid, dtype=np.float64).reshape(-1, 2) for grid in point_grids]
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.chunk_bytes = int(chunk_megabytes * 2**20)
        self.upsampling = upsampling
        self.mask_threshold = float(getattr(model, "mask_threshold", 0.0))
        self.image_size = int(getattr(model, "image_size", 1024))
        self.transform = ResizeLongestSide(self.image_size)
        self.predictor = None
        if decode_points is None:
            self.predictor = SamPredictor(model)

    @torch.no_grad()
    def generate(
        self,
        image: np.ndarray,
        *,
        progress: Callable[[float], None] | None = None,
        cancel: CancelFlag | None = None,
    ) -> list[dict[str, Any]]:
        """Segment everything in `image`.

        Args:
            image: (H, W, 3) uint8 RGB; other inputs (grayscale, RGBA, PIL, ...) go through
                `mobile_sam.image.to_rgb_uint8`.
            progress: called with the fraction done (0 to 1) as the work advances.
            cancel: checked between batches; once `cancel.is_set()`, raises GenerationCancelled.
        Returns:
            one record per mask: `segmentation` (per output_mode), `area`, `bbox` (XYWH), `predicted_iou`,
            `point_coords` ([[x, y]]), `stability_score`, `crop_box` (XYWH).
        """
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            image = to_rgb_uint8(image)
        data = self._generate_masks(image, progress, cancel)
        if self.min_mask_region_area > 0:
            data = self.postprocess_small_regions(
                data, self.min_mask_region_area, max(self.box_nms_thresh, self.crop_nms_thresh)
            )
        return self._records(data)

    # -- pipeline ----------------------------------------------------------------------------------------
    def _generate_masks(
        self, image: np.ndarray, progress: Callable[[float], None] | None, cancel: CancelFlag | None
    ) -> MaskData:
        orig_size = (int(image.shape[0]), int(image.shape[1]))
        crop_boxes, layer_idxs = generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
        total_points = sum(len(self.point_grids[layer]) for layer in layer_idxs)
        tracker = _Progress(progress, cancel, total_points)
        tracker.advance(0)
        data = MaskData()
        for crop_box, layer_idx in zip(crop_boxes, layer_idxs):
            data.cat(self._process_crop(image, crop_box, layer_idx, orig_size, tracker))
        if len(crop_boxes) > 1 and len(data) > 0:
            # Prefer masks from smaller crops.
            scores = 1 / box_area(data["crop_boxes"])
            keep = batched_nms(
                data["boxes"].float(), scores, torch.zeros_like(data["boxes"][:, 0]), iou_threshold=self.crop_nms_thresh
            )
            data.filter(keep)
        tracker.finish()
        return data

    def _process_crop(
        self,
        image: np.ndarray,
        crop_box: list[int],
        layer_idx: int,
        orig_size: tuple[int, int],
        tracker: _Progress,
    ) -> MaskData:
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1, :]
        crop_size = (int(crop.shape[0]), int(crop.shape[1]))
        input_size = self.transform.get_preprocess_shape(crop_size[0], crop_size[1], self.image_size)
        if min(input_size) < 1:
            raise ValueError(f"image region of size {crop_size} is too thin to resize to the model's input frame")
        tracker.check_cancel()
        decode = self._crop_decoder(crop)
        points_for_image = self.point_grids[layer_idx] * np.array(crop_size, dtype=np.float64)[None, ::-1]
        group = self._decode_group_size()
        plane_masks = None
        if self.upsampling == "opencv":
            extent = low_res_extent(input_size, self.image_size, LOW_RES_SIZE)
            scale = self.image_size // LOW_RES_SIZE
            plane_masks = PlaneMasks(
                extent, scale, input_size, crop_box, orig_size, self.mask_threshold, self.stability_score_offset
            )
        data = _empty_mask_data()
        for start in range(0, len(points_for_image), self.points_per_batch):
            tracker.check_cancel()
            points = points_for_image[start : start + self.points_per_batch]
            for first in range(0, len(points), group):
                data.cat(
                    self._process_batch(
                        decode, points[first : first + group], crop_size, input_size, crop_box, orig_size, plane_masks
                    )
                )
            tracker.advance(len(points))
        if self.predictor is not None:
            self.predictor.reset_image()
        if len(data) > 0:
            keep = batched_nms(
                data["boxes"].float(),
                data["iou_preds"],
                torch.zeros_like(data["boxes"][:, 0]),
                iou_threshold=self.box_nms_thresh,
            )
            data.filter(keep)
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = torch.tensor(crop_box, dtype=torch.int64).repeat(len(data), 1)
        return data

    def _crop_decoder(self, crop: np.ndarray) -> Callable[[np.ndarray], DecodedBatch]:
        """A function decoding B points given in crop pixels (B, 2) XY (encodes the crop with the model)."""
        crop_size = (int(crop.shape[0]), int(crop.shape[1]))
        if self.decode_points is not None:

            def decode_synthetic(points: np.ndarray) -> DecodedBatch:
                low_res, iou = self.decode_points(torch.as_tensor(self.transform.apply_coords(points, crop_size)))
                return DecodedBatch(iou.cpu(), lambda prompts: low_res[prompts.to(low_res.device)])

            return decode_synthetic

        self.predictor.set_image(crop)
        device = self.model.device
        prompt_encoder, mask_decoder = self.model.prompt_encoder, self.model.mask_decoder
        _, dense = prompt_encoder(points=None, boxes=None, masks=None)
        features = self.predictor.features
        image = mask_decoder.prepare_image(features, prompt_encoder.get_dense_pe(), dense)
        input_size = self.predictor.input_size
        upscale = LOW_RES_SIZE // features.shape[-1]  # image tokens -> low-res logits
        # Image tokens under the low-res logits that upsampling to the input frame reads (upscaling is local).
        token_extent = tuple(-(-side // upscale) for side in low_res_extent(input_size, self.image_size, LOW_RES_SIZE))
        # The official code passes float64 coordinates; MPS has no float64.
        dtype = torch.float32 if device.type == "mps" else torch.float64

        def decode_model(points: np.ndarray) -> DecodedBatch:
            in_points = torch.as_tensor(self.transform.apply_coords(points, crop_size), dtype=dtype, device=device)
            labels = torch.ones(in_points.shape[0], 1, dtype=torch.int, device=device)
            sparse, _ = prompt_encoder(points=(in_points[:, None, :], labels), boxes=None, masks=None)
            iou_predictions, state = mask_decoder.decode_iou(image, sparse)

            def low_res_logits(prompts: torch.Tensor) -> torch.Tensor:
                hyper_in, image_tokens = mask_decoder.decode_mask_tokens(state, prompts.to(device), True)
                return mask_decoder.upscale_masks(hyper_in, image_tokens[..., : token_extent[0], : token_extent[1]])

            return DecodedBatch(iou_predictions[:, 1:].cpu(), low_res_logits)

        return decode_model

    def _decode_group_size(self) -> int:
        """Points decoded at once. On a CPU, small groups keep every tensor small enough to be reused by
        the allocator instead of being mapped afresh (page faults cost more than the arithmetic there)."""
        if self.predictor is None or self.model.device.type != "cpu":
            return self.points_per_batch
        return min(self.points_per_batch, CPU_DECODE_GROUP)

    def _process_batch(
        self,
        decode: Callable[[np.ndarray], DecodedBatch],
        points: np.ndarray,
        crop_size: tuple[int, int],
        input_size: tuple[int, int],
        crop_box: list[int],
        orig_size: tuple[int, int],
        plane_masks: PlaneMasks | None = None,
    ) -> MaskData:
        """Candidates of B points (crop pixels): IoU filter first, then masks of the survivors only.

        Survivors keep the official order (prompt-major, then output); their masks are computed for a few
        prompts at a time and upsampled in chunks of at most `chunk_bytes` of float logits, or one at a time
        by plane_masks ("opencv" upsampling).
        """
        decoded = decode(points)
        n_masks = decoded.iou_predictions.shape[1]
        iou_preds = decoded.iou_predictions.flatten()
        points_t = torch.as_tensor(points).repeat_interleave(n_masks, dim=0)
        candidates = torch.arange(iou_preds.shape[0])
        if self.pred_iou_thresh > 0.0:
            candidates = candidates[iou_preds > self.pred_iou_thresh]
        chunk = max(1, self.chunk_bytes // (4 * crop_size[0] * crop_size[1]))
        prompts_per_group = max(1, chunk // n_masks)
        prompts = torch.unique(candidates // n_masks)
        data = _empty_mask_data()
        for start in range(0, len(prompts), prompts_per_group):
            group = prompts[start : start + prompts_per_group]
            low_res = decoded.low_res_logits(group).flatten(0, 1).cpu()
            in_group = candidates[(candidates // n_masks >= group[0]) & (candidates // n_masks <= group[-1])]
            # Row of each candidate in `low_res`: position of its prompt in `group`, then its output.
            rows = torch.searchsorted(group, in_group // n_masks) * n_masks + in_group % n_masks
            if plane_masks is not None:
                data.cat(
                    self._plane_candidates(
                        plane_masks, low_res[rows], iou_preds[in_group], points_t[in_group], crop_box, orig_size
                    )
                )
                continue
            for first in range(0, len(in_group), chunk):
                idx = in_group[first : first + chunk]
                logits = self._upsample(low_res[rows[first : first + chunk]], input_size, crop_size)
                data.cat(self._filter_chunk(logits, iou_preds[idx], points_t[idx], crop_box, orig_size))
        return data

    def _upsample(self, low_res: torch.Tensor, input_size: tuple[int, int], crop_size: tuple[int, int]) -> torch.Tensor:
        """Low-res logits (K, 256, 256) -> (K, H, W) at the crop size, equal to the official `postprocess_masks`.

        Only the low-res rows and columns that reach the unpadded input frame are upsampled (at the same
        scale, so every value is computed exactly as in the full-frame upsampling); `low_res` may hold just
        those (its top-left part).
        """
        low_size = LOW_RES_SIZE
        scale = self.image_size // low_size
        need_h, need_w = low_res_extent(input_size, self.image_size, low_size)
        x = low_res[None, :, :need_h, :need_w]
        if (need_h, need_w) == (low_size, low_size):
            x = F.interpolate(x, (self.image_size, self.image_size), mode="bilinear", align_corners=False)
        else:
            x = F.interpolate(
                x, scale_factor=float(scale), mode="bilinear", align_corners=False, recompute_scale_factor=False
            )
        x = x[..., : input_size[0], : input_size[1]]
        return F.interpolate(x, crop_size, mode="bilinear", align_corners=False)[0]

    def _filter_chunk(
        self,
        logits: torch.Tensor,
        iou_preds: torch.Tensor,
        points: torch.Tensor,
        crop_box: list[int],
        orig_size: tuple[int, int],
    ) -> MaskData:
        """Stability filter, threshold, boxes, crop-edge filter and RLE of K candidates: logits (K, H, W)."""
        planes = logits.numpy()
        stability = calculate_stability_score(logits, self.mask_threshold, self.stability_score_offset)
        keep = torch.ones_like(stability, dtype=torch.bool)
        if self.stability_score_thresh > 0.0:
            keep = stability >= self.stability_score_thresh
        kept = torch.nonzero(keep).flatten()
        rles = threshold_to_rles([planes[i] for i in kept.tolist()], self.mask_threshold, crop_box, orig_size)
        boxes = rle_boxes_in_crop(rles, crop_box)
        return _away_from_crop_edges(kept, stability, boxes, rles, iou_preds, points, crop_box, orig_size)

    def _plane_candidates(
        self,
        plane_masks: PlaneMasks,
        low_res: torch.Tensor,
        iou_preds: torch.Tensor,
        points: torch.Tensor,
        crop_box: list[int],
        orig_size: tuple[int, int],
    ) -> MaskData:
        """`_filter_chunk` for K candidates' low-res logits (K, 256, 256) with "opencv" upsampling."""
        stability, kept, rles, boxes = plane_masks.candidates(low_res.numpy(), self.stability_score_thresh)
        return _away_from_crop_edges(kept, stability, boxes, rles, iou_preds, points, crop_box, orig_size)

    @staticmethod
    def postprocess_small_regions(mask_data: MaskData, min_area: int, nms_thresh: float) -> MaskData:
        """Fill holes and drop islands smaller than `min_area` pixels in every mask, then box NMS at
        `nms_thresh` preferring unchanged masks (the official static method; edits and returns `mask_data`).

        `mask_data` needs "rles" (any RLE form; changed masks are re-encoded in the same form) and "boxes"
        (N, 4) XYXY; both are updated for the changed masks that survive.
        """
        if len(mask_data["rles"]) == 0:
            return mask_data
        new_rles, new_boxes, scores = [], [], []
        for rle in mask_data["rles"]:
            mask = rle_to_mask(rle)
            mask, changed_holes = remove_small_regions(mask, min_area, mode="holes")
            mask, changed_islands = remove_small_regions(mask, min_area, mode="islands")
            changed = changed_holes or changed_islands
            new_rles.append(encode_like(mask, rle) if changed else rle)
            new_boxes.append(batched_mask_to_box(torch.from_numpy(mask)))
            scores.append(0.0 if changed else 1.0)
        boxes = torch.stack(new_boxes)
        keep = batched_nms(boxes.float(), torch.tensor(scores), torch.zeros_like(boxes[:, 0]), iou_threshold=nms_thresh)
        for i in keep.tolist():
            if scores[i] == 0.0:
                mask_data["rles"][i] = new_rles[i]
                mask_data["boxes"][i] = boxes[i]
        mask_data.filter(keep)
        return mask_data

    def _records(self, data: MaskData) -> list[dict[str, Any]]:
        if len(data) == 0:
            return []
        encode = {"binary_mask": rle_to_mask, "uncompressed_rle": rle_to_uncompressed, "coco_rle": coco_encode_rle}[
            self.output_mode
        ]
        boxes = data["boxes"].tolist()
        crop_boxes = data["crop_boxes"].tolist()
        points = data["points"].tolist()
        iou_preds = data["iou_preds"].tolist()
        stability = data["stability_score"].tolist()
        return [
            {
                "segmentation": encode(rle),
                "area": area_from_rle(rle),
                "bbox": box_xyxy_to_xywh(boxes[i]),
                "predicted_iou": iou_preds[i],
                "point_coords": [points[i]],
                "stability_score": stability[i],
                "crop_box": box_xyxy_to_xywh(crop_boxes[i]),
            }
            for i, rle in enumerate(data["rles"])
        ]


class _Progress:
    """Reports the fraction of prompts decoded and honours cancellation."""

    def __init__(self, callback: Callable[[float], None] | None, cancel: CancelFlag | None, total: int) -> None:
        self.callback = callback
        self.cancel = cancel
        self.total = max(total, 1)
        self.done = 0

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise GenerationCancelled("mask generation was cancelled")

    def advance(self, n_points: int) -> None:
        self.done += n_points
        if self.callback is not None:
            self.callback(min(self.done / self.total, 1.0))

    def finish(self) -> None:
        if self.callback is not None:
            self.callback(1.0)


def _away_from_crop_edges(
    kept: torch.Tensor,
    stability: torch.Tensor,
    boxes: torch.Tensor,
    rles: list[dict[str, Any]],
    iou_preds: torch.Tensor,
    points: torch.Tensor,
    crop_box: list[int],
    orig_size: tuple[int, int],
) -> MaskData:
    """The candidates kept (S,) (indices into iou_preds, points and stability (K,)), with their boxes (S, 4) XYXY in
    crop coordinates and RLEs, less those whose box touches a crop edge that is not an image edge."""
    orig_h, orig_w = orig_size
    inside = ~is_box_near_crop_edge(boxes, crop_box, [0, 0, orig_w, orig_h])
    kept = kept[inside]
    return MaskData(
        iou_preds=iou_preds[kept],
        points=points[kept],
        stability_score=stability[kept],
        boxes=boxes[inside],
        rles=[rle for rle, ok in zip(rles, inside.tolist()) if ok],
    )


def _empty_mask_data() -> MaskData:
    return MaskData(
        iou_preds=torch.zeros(0, dtype=torch.float32),
        points=torch.zeros(0, 2, dtype=torch.float64),
        stability_score=torch.zeros(0, dtype=torch.float32),
        boxes=torch.zeros(0, 4, dtype=torch.int64),
        rles=[],
    )
