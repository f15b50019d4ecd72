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
from .utils.mask_candidates import PromptDecoder
from .utils.mask_resize import MaskResize

OFFICIAL_BATCH_SIZE = 320
# Boxes decoded at once on a CPU, whatever the batch size: small tensors stay in the caches there (the decoder's
# transformer keeps its factored image tokens in groups of `transformer.FACTORED_CHUNK`, the same 8).
CPU_BOX_GROUP = 8


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
        batch_size: boxes decoded at once (the official 320; on a CPU at most `CPU_BOX_GROUP`). Each mask is
            independent of the others, so a smaller batch gives the same masks with less memory (the decoder holds
            activations for every box of a batch).
    Returns:
        a `BoxMasks`, largest mask first.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    array = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes)
    if array.shape == (0,):  # an empty list
        array = array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must be an (N, 4) XYXY array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
        raise ValueError("boxes must be finite numbers")
    if predictor.original_size is None:
        predictor.get_image_embedding()  # raises the predictor's error: no image is set
    model = predictor.model
    decoder = PromptDecoder(predictor)
    scale = model.image_size // decoder.low_res_size
    height, width = predictor.original_size
    resize = MaskResize(decoder.low_res_size, scale, predictor.input_size, (height, width), predictor.device)
    masks = torch.empty((len(array), height, width), dtype=torch.bool, device=predictor.device)
    group = batch_size if predictor.device.type != "cpu" else min(batch_size, CPU_BOX_GROUP)
    for start in range(0, len(array), group):
        decoded = decoder.boxes(array[start : start + group], iou_first=False)
        low_res = decoded.low_res_logits(torch.arange(len(decoded.iou_predictions)))  # (n, 1, h', w')
        resize.masks_into(low_res, model.mask_threshold, masks[start : start + len(low_res), None])
    areas = _areas(masks)
    order = torch.argsort(areas, descending=True)
    return BoxMasks(masks=masks[order], areas=areas[order], order=order)


def _areas(masks: torch.Tensor) -> torch.Tensor:
    """Pixel counts (N,) float32 of bool masks (N, H, W), mask by mask (a sum over bool tensors converts them to
    int64 first; NumPy counts them in place on a CPU)."""
    if len(masks) == 0:
        return torch.zeros(0, device=masks.device)
    if masks.device.type == "cpu":
        return torch.tensor([np.count_nonzero(mask) for mask in masks.numpy()], dtype=torch.float32)
    return torch.stack([mask.sum() for mask in masks]).to(torch.float32)
