"""`ReferenceMaskGenerator`: the official automatic mask generator's algorithm, re-derived step by step (slow).

An oracle independent of `mobile_sam.automatic_mask_generator` and its core: it is written from the official
`SamAutomaticMaskGenerator`'s order of operations with the official helpers only (`mobile_sam.utils.amg`, whose
functions the official-API tests check, and `SamPredictor`, checked against the official outputs). Each batch of
B points is decoded with the image embedding copied B times, all 3B candidate masks are upsampled to the crop
size as `Sam.postprocess_masks` does, and only then filtered by predicted IoU and stability. Tests compare the
generator with it; the benchmark measures how much faster and leaner the reordered generator is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, box_area

from mobile_sam.predictor import SamPredictor
from mobile_sam.utils.amg import (
    MaskData,
    area_from_rle,
    batched_mask_to_box,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    coco_encode_rle,
    generate_crop_boxes,
    is_box_near_crop_edge,
    remove_small_regions,
    rle_to_mask,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)
from mobile_sam.utils.rle import encode_rle
from mobile_sam.utils.transforms import ResizeLongestSide

DecodePoints = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class ReferenceMaskGenerator:
    """The official constructor's arguments (``model`` may be None with ``decode_points``, points (B, 2) in the
    input frame -> (low-res logits (B, 3, 256, 256), IoU (B, 3))); `generate(image)` gives the official records."""

    def __init__(
        self,
        model: Any | None,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        *,
        decode_points: DecodePoints | None = None,
    ) -> None:
        self.model, self.decode_points = model, decode_points
        self.point_grids = build_all_layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh, self.stability_score_thresh = pred_iou_thresh, stability_score_thresh
        self.stability_score_offset, self.box_nms_thresh = stability_score_offset, box_nms_thresh
        self.crop_n_layers, self.crop_nms_thresh, self.crop_overlap_ratio = (
            crop_n_layers,
            crop_nms_thresh,
            crop_overlap_ratio,
        )
        self.min_mask_region_area, self.output_mode = min_mask_region_area, output_mode
        self.mask_threshold = float(getattr(model, "mask_threshold", 0.0))
        self.image_size = int(getattr(model, "image_size", 1024))
        self.transform = ResizeLongestSide(self.image_size)
        self.predictor = SamPredictor(model) if model is not None else None

    @torch.no_grad()
    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
        data = MaskData()
        for crop_box, layer_idx in zip(crop_boxes, layer_idxs):
            data.cat(self._process_crop(image, crop_box, layer_idx, orig_size))
        if len(crop_boxes) > 1 and len(data) > 0:
            scores = 1 / box_area(data["crop_boxes"])
            keep = batched_nms(
                data["boxes"].float(), scores, torch.zeros_like(data["boxes"][:, 0]), self.crop_nms_thresh
            )
            data.filter(keep)
        if self.min_mask_region_area > 0 and len(data) > 0:
            data = self._remove_small_regions(data)
        return self._records(data)

    def _process_crop(self, image: np.ndarray, crop_box: list[int], layer_idx: int, orig_size) -> MaskData:
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1, :]
        crop_size = crop.shape[:2]
        if self.predictor is not None:
            self.predictor.set_image(crop)
        points_for_image = self.point_grids[layer_idx] * np.array(crop_size)[None, ::-1]
        data = MaskData()
        for start in range(0, len(points_for_image), self.points_per_batch):
            points = points_for_image[start : start + self.points_per_batch]
            data.cat(self._process_batch(points, crop_size, crop_box, orig_size))
        keep = batched_nms(
            data["boxes"].float(), data["iou_preds"], torch.zeros_like(data["boxes"][:, 0]), self.box_nms_thresh
        )
        data.filter(keep)
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = torch.tensor(crop_box, dtype=torch.int64).repeat(len(data["rles"]), 1)
        return data

    def _process_batch(self, points: np.ndarray, crop_size, crop_box: list[int], orig_size) -> MaskData:
        in_points = torch.as_tensor(self.transform.apply_coords(points, crop_size))
        low_res, iou_preds = self._decode(in_points)
        input_size = self.transform.get_preprocess_shape(*crop_size, self.image_size)
        masks = self._postprocess_masks(low_res, input_size, crop_size)
        data = MaskData(
            masks=masks.flatten(0, 1),
            iou_preds=iou_preds.flatten(0, 1),
            points=torch.as_tensor(points.repeat(masks.shape[1], axis=0)),
        )
        del masks
        if self.pred_iou_thresh > 0.0:
            data.filter(data["iou_preds"] > self.pred_iou_thresh)
        data["stability_score"] = official_cost_stability_score(
            data["masks"], self.mask_threshold, self.stability_score_offset
        )
        if self.stability_score_thresh > 0.0:
            data.filter(data["stability_score"] >= self.stability_score_thresh)
        data["masks"] = data["masks"] > self.mask_threshold
        data["boxes"] = batched_mask_to_box(data["masks"])
        keep = ~is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_size[1], orig_size[0]])
        if not bool(keep.all()):
            data.filter(keep)
        full = uncrop_masks(data["masks"], crop_box, *orig_size)
        data["rles"] = [encode_rle(mask.numpy()) for mask in full]
        del data["masks"]
        return data

    def _decode(self, in_points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits (B, 3, 256, 256) and predicted IoU (B, 3) of every point, embedding copied B times."""
        if self.decode_points is not None:
            return self.decode_points(in_points)
        model = self.model
        in_points = in_points.to(model.device)
        labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        sparse, dense = model.prompt_encoder(points=(in_points[:, None, :], labels[:, None]), boxes=None, masks=None)
        return model.mask_decoder(
            image_embeddings=self.predictor.features.repeat(in_points.shape[0], 1, 1, 1),
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense.contiguous(),
            multimask_output=True,
        )

    def _postprocess_masks(self, low_res: torch.Tensor, input_size, crop_size) -> torch.Tensor:
        """(B, 3, 256, 256) -> (B, 3, H, W) at the crop size, as the official `Sam.postprocess_masks`."""
        size = self.image_size
        masks = F.interpolate(low_res, (size, size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return F.interpolate(masks, crop_size, mode="bilinear", align_corners=False)

    def _remove_small_regions(self, data: MaskData) -> MaskData:
        nms_thresh = max(self.box_nms_thresh, self.crop_nms_thresh)
        new_masks, scores = [], []
        for rle in data["rles"]:
            mask = rle_to_mask(rle)
            mask, changed_holes = remove_small_regions(mask, self.min_mask_region_area, mode="holes")
            mask, changed_islands = remove_small_regions(mask, self.min_mask_region_area, mode="islands")
            new_masks.append(torch.as_tensor(mask).unsqueeze(0))
            scores.append(float(not (changed_holes or changed_islands)))
        masks = torch.cat(new_masks, dim=0)
        boxes = batched_mask_to_box(masks)
        keep = batched_nms(boxes.float(), torch.as_tensor(scores), torch.zeros_like(boxes[:, 0]), nms_thresh)
        for i in keep.tolist():
            if scores[i] == 0.0:
                data["rles"][i] = encode_rle(masks[i].numpy())
                data["boxes"][i] = boxes[i]
        data.filter(keep)
        return data

    def _records(self, data: MaskData) -> list[dict[str, Any]]:
        if len(data) == 0:
            return []
        segmentations = {
            "binary_mask": lambda rle: rle_to_mask(rle),
            "coco_rle": coco_encode_rle,
        }[self.output_mode]
        return [
            {
                "segmentation": segmentations(data["rles"][i]),
                "area": area_from_rle(data["rles"][i]),
                "bbox": box_xyxy_to_xywh(data["boxes"][i].tolist()),
                "predicted_iou": data["iou_preds"][i].item(),
                "point_coords": [data["points"][i].tolist()],
                "stability_score": data["stability_score"][i].item(),
                "crop_box": box_xyxy_to_xywh(data["crop_boxes"][i].tolist()),
            }
            for i in range(len(data["rles"]))
        ]


def official_cost_stability_score(masks: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """The stability score as the official code computes it, vectorised over (K, H, W) with full-size
    temporaries, so that this baseline costs what the official generator costs."""
    high = (masks > (mask_threshold + offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    low = (masks > (mask_threshold - offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    return high / low
