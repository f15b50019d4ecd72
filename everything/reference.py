"""`ReferenceMaskGenerator`: the official order of operations, step by step (slow; a baseline).

Each batch of B points is decoded with the image embedding copied B times, all 3B candidate masks are
upsampled to the crop size, and only then filtered by predicted IoU and stability, as the official
`SamAutomaticMaskGenerator` does. Tests compare `SamAutomaticMaskGenerator` against it and the benchmark
measures how much faster and leaner the reordered pipeline is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mobile_sam.automatic_mask_generator import DecodedBatch, SamAutomaticMaskGenerator
from mobile_sam.utils.amg import batched_mask_to_box, is_box_near_crop_edge, uncropped_mask_rles
from mobile_sam.utils.mask_data import MaskData


class ReferenceMaskGenerator(SamAutomaticMaskGenerator):
    """Same constructor and results as `SamAutomaticMaskGenerator`, computed in the official order (with
    `upsampling="torch"` only)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.upsampling != "torch":
            raise ValueError(f"the reference generator upsamples with torch only, got upsampling={self.upsampling!r}")

    def _decode_group_size(self) -> int:
        return self.points_per_batch

    def _process_batch(
        self,
        decode: Callable[[np.ndarray], DecodedBatch],
        points: np.ndarray,
        crop_size: tuple[int, int],
        input_size: tuple[int, int],
        crop_box: list[int],
        orig_size: tuple[int, int],
        plane_masks: None = None,
    ) -> MaskData:
        low_res, iou_preds = self._decode_all(points, crop_size)  # `decode` is bypassed: everything is decoded
        masks = self._postprocess_masks(low_res, input_size, crop_size)
        data = MaskData(
            masks=masks.flatten(0, 1),
            iou_preds=iou_preds.flatten(0, 1),
            points=torch.as_tensor(points.repeat(masks.shape[1], axis=0)),
        )
        del masks
        if self.pred_iou_thresh > 0.0:
            data.filter(data["iou_preds"] > self.pred_iou_thresh)
        data["stability_score"] = _official_cost_stability_score(
            data["masks"], self.mask_threshold, self.stability_score_offset
        )
        if self.stability_score_thresh > 0.0:
            data.filter(data["stability_score"] >= self.stability_score_thresh)
        data["masks"] = data["masks"] > self.mask_threshold
        data["boxes"] = batched_mask_to_box(data["masks"])
        orig_h, orig_w = orig_size
        keep = ~is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h])
        if not bool(keep.all()):
            data.filter(keep)
        data["rles"] = uncropped_mask_rles(data["masks"], crop_box, orig_size)
        del data["masks"]
        return data

    def _decode_all(self, points: np.ndarray, crop_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits (B, 3, 256, 256) and predicted IoU (B, 3) of every point, embedding copied B times."""
        in_points = torch.as_tensor(self.transform.apply_coords(points, crop_size))
        if self.decode_points is not None:
            return self.decode_points(in_points)
        model = self.model
        in_points = in_points.to(model.device)
        labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        sparse, dense = model.prompt_encoder(points=(in_points[:, None, :], labels[:, None]), boxes=None, masks=None)
        batch = in_points.shape[0]
        low_res, iou_preds = model.mask_decoder(
            image_embeddings=self.predictor.features.repeat(batch, 1, 1, 1),
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense.contiguous(),
            multimask_output=True,
        )
        return low_res, iou_preds

    def _postprocess_masks(
        self, low_res: torch.Tensor, input_size: tuple[int, int], crop_size: tuple[int, int]
    ) -> torch.Tensor:
        """(B, 3, 256, 256) -> (B, 3, H, W) at the crop size, as the official `Sam.postprocess_masks`."""
        size = self.image_size
        masks = F.interpolate(low_res, (size, size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return F.interpolate(masks, crop_size, mode="bilinear", align_corners=False)


def _official_cost_stability_score(masks: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """The stability score as the official code computes it, vectorised over (K, H, W) with full-size
    temporaries, so that this baseline costs what the official generator costs.
    `mobile_sam.utils.amg.calculate_stability_score` gives the same values with less work and memory."""
    high = (masks > (mask_threshold + offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    low = (masks > (mask_threshold - offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    return high / low
