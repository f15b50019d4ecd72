"""MobileSAMv2's "segment everything" decoding: the masks that its `Inference.py` makes for a list of boxes.

`Inference.py` (ChaoningZhang/MobileSAM, `MobileSAMv2/`) takes the detector's boxes in original-image pixels,
maps them to the 1024 input frame with `predictor.transform.apply_boxes` (float64), decodes them in batches of
320 with `multimask_output=False`, resizes the low-res logits to the image with `Sam.postprocess_masks`,
thresholds them at `mask_threshold`, and sorts the masks by area, largest first. There is no predicted-IoU,
stability or NMS filter. `segment_boxes` does the same on any device (the official script calls `.cuda()`).

Official quirks and where this differs:
- ties in area keep the order that `torch.argsort(areas, descending=True)` gives (not a stable sort), as in
  the official script, so equal-area masks may come in a different order on another device;
- no box at all makes the official script fail (`torch.cat` of nothing); here the result is empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .predictor import SamPredictor

OFFICIAL_BATCH_SIZE = 320


@dataclass(frozen=True)
class BoxMasks:
    """Masks of N boxes, largest area first, on the predictor's device.

    masks: (N, H, W) bool at the original image size; areas: (N,) float32 pixel counts (as the official
    script computes them); order: (N,) int64, the index in the input boxes of each mask.
    """

    masks: torch.Tensor
    areas: torch.Tensor
    order: torch.Tensor


@torch.no_grad()
def segment_boxes(
    predictor: SamPredictor, boxes: np.ndarray | torch.Tensor, batch_size: int = OFFICIAL_BATCH_SIZE
) -> BoxMasks:
    """The masks of `Inference.py` for `boxes` on the image set in `predictor` (`predictor.set_image`).

    Args:
        predictor: a `SamPredictor` of a MobileSAMv2 model (`mobile_sam.build_mobilesamv2`) or any SAM, its
            image set.
        boxes: (N, 4) XYXY in original-image pixels (as the detector gives them; not clipped or snapped here).
        batch_size: boxes decoded at once (the official 320; each mask is independent of the others).
    Returns:
        a `BoxMasks`, largest mask first.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    array = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes)
    if array.size == 0:
        array = array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must be an (N, 4) XYXY array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
        raise ValueError("boxes must be finite numbers")
    if predictor.original_size is None:
        predictor.get_image_embedding()  # raises the predictor's error: no image is set
    in_boxes = torch.from_numpy(predictor.transform.apply_boxes(array, predictor.original_size))
    height, width = predictor.original_size
    masks = torch.empty((len(in_boxes), height, width), dtype=torch.bool, device=predictor.device)
    for start in range(0, len(in_boxes), batch_size):
        batch = in_boxes[start : start + batch_size].to(predictor.device)
        batch_masks, _, _ = predictor.predict_torch(None, None, boxes=batch, multimask_output=False)
        masks[start : start + len(batch)] = batch_masks[:, 0]
    areas = masks.sum(dim=(1, 2)).to(torch.float32)
    order = torch.argsort(areas, descending=True)
    return BoxMasks(masks=masks[order], areas=areas[order], order=order)
