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
from typing import Any

import numpy as np
import torch

from .predictor import SamPredictor
from .utils.amg import (
    MaskData,
    batched_mask_to_box,
    build_all_layer_point_grids,
    encode_like,
    generate_crop_boxes,
    remove_small_regions,
    rle_to_mask,
    uncrop_boxes_xyxy,
    uncrop_points,
)
from .utils.cancel import CancelFlag, Progress
from .utils.mask_candidates import (
    OUTPUT_MODES,
    UPSAMPLING,
    CandidateMasks,
    DecodedBatch,
    PromptDecoder,
    empty_mask_data,
    generator_records,
)
from .utils.rgb import to_rgb_uint8
from .utils.transforms import ResizeLongestSide

CPU_DECODE_GROUP = 4
LOW_RES_SIZE = 256  # side of the decoder's low-res logits

# Points (B, 2) in the input frame -> (low-res logits (B, 3, 256, 256), predicted IoU (B, 3)).
DecodePoints = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


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
        `stability_score_thresh` may be kept or dropped differently; cheaper full-resolution work per
        candidate on a CPU (README, Performance). Not the official results: opt in.
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

        import torchvision.ops  # noqa: F401  (for NMS: an import of seconds, paid here rather than in the first generate)

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
                `mobile_sam.utils.rgb.to_rgb_uint8`.
            progress: called with the fraction done (0 to 1) as the work advances.
            cancel: checked between batches; once `cancel.is_set()`, raises `mobile_sam.utils.cancel.Cancelled`.
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
        from torchvision.ops import batched_nms, box_area  # torchvision imports PIL: not with `import mobile_sam`

        orig_size = (int(image.shape[0]), int(image.shape[1]))
        crop_boxes, layer_idxs = generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
        total_points = sum(len(self.point_grids[layer]) for layer in layer_idxs)
        tracker = Progress(progress, cancel, total_points)
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
        tracker: Progress,
    ) -> MaskData:
        from torchvision.ops import batched_nms

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
        masks = CandidateMasks(
            self.image_size,
            LOW_RES_SIZE,
            input_size,
            crop_box,
            orig_size,
            self.mask_threshold,
            self.stability_score_offset,
            self.stability_score_thresh,
            self.upsampling,
            self.chunk_bytes,
        )
        data = empty_mask_data(points=torch.zeros(0, 2, dtype=torch.float64))
        for start in range(0, len(points_for_image), self.points_per_batch):
            tracker.check_cancel()
            points = points_for_image[start : start + self.points_per_batch]
            for first in range(0, len(points), group):
                some = points[first : first + group]
                data.cat(self._process_batch(decode(some), some, masks))
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
        return PromptDecoder(self.predictor).points

    def _decode_group_size(self) -> int:
        """Points decoded at once. On a CPU, small groups keep every tensor small enough to be reused by
        the allocator instead of being mapped afresh (page faults cost more than the arithmetic there)."""
        if self.predictor is None or self.model.device.type != "cpu":
            return self.points_per_batch
        return min(self.points_per_batch, CPU_DECODE_GROUP)

    def _process_batch(self, decoded: DecodedBatch, points: np.ndarray, masks: CandidateMasks) -> MaskData:
        """Candidates of B points (crop pixels): IoU filter first, then masks of the survivors only.

        Survivors keep the official order (prompt-major, then output); their low-res logits are computed for a
        few prompts at a time (bounded by the masks' chunk) and kept or dropped by `masks`.
        """
        n_masks = decoded.iou_predictions.shape[1]
        iou_preds = decoded.iou_predictions.flatten()
        points_t = torch.as_tensor(points).repeat_interleave(n_masks, dim=0)
        candidates = torch.arange(iou_preds.shape[0])
        if self.pred_iou_thresh > 0.0:
            candidates = candidates[iou_preds > self.pred_iou_thresh]
        prompts_per_group = max(1, masks.chunk // n_masks)
        prompts = torch.unique(candidates // n_masks)
        data = empty_mask_data(points=torch.zeros(0, 2, dtype=torch.float64))
        for start in range(0, len(prompts), prompts_per_group):
            group = prompts[start : start + prompts_per_group]
            low_res = decoded.low_res_logits(group).flatten(0, 1)
            in_group = candidates[(candidates // n_masks >= group[0]) & (candidates // n_masks <= group[-1])]
            # Row of each candidate in `low_res`: position of its prompt in `group`, then its output.
            rows = torch.searchsorted(group, in_group // n_masks) * n_masks + in_group % n_masks
            data.cat(masks.keep(low_res[rows], iou_preds[in_group], points=points_t[in_group]))
        return data

    @staticmethod
    def postprocess_small_regions(mask_data: MaskData, min_area: int, nms_thresh: float) -> MaskData:
        """Fill holes and drop islands smaller than `min_area` pixels in every mask, then box NMS at
        `nms_thresh` preferring unchanged masks (the official static method; edits and returns `mask_data`).

        `mask_data` needs "rles" (any RLE form; changed masks are re-encoded in the same form) and "boxes"
        (N, 4) XYXY; both are updated for the changed masks that survive.
        """
        from torchvision.ops import batched_nms

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
        return generator_records(data, self.output_mode)
