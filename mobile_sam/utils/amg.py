"""Small pure functions for automatic mask generation: point grids, crops, boxes, stability, RLE, cleanup.

Every name of the official `segment_anything.utils.amg` / `mobile_sam.utils.amg` is here with its signature
and results, plus a few fused helpers that the generator's fast path uses.

Conventions: boxes are XYXY with inclusive integer maxima (a one-pixel mask at (x, y) has the box
(x, y, x, y)); sizes are (H, W); points are XY. RLEs come in three forms, all accepted wherever an RLE is
read: pycocotools' compressed RLE (`{"size": [H, W], "counts": bytes}`), COCO RLE (counts as str) and the
official uncompressed RLE (counts as a list of column-major runs, starting with background). The RLE codec
itself lives in `mobile_sam.utils.rle`. OpenCV and pycocotools are imported by the functions that use them, as in
the official module.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from copy import deepcopy
from itertools import product
from typing import Any

import numpy as np
import torch

from .mask_data import MaskData
from .rle import compressed_rle, encode_rle, rle_area, rle_to_json, rle_to_mask

__all__ = [
    "MaskData",
    "area_from_rle",
    "batch_iterator",
    "batched_mask_to_box",
    "box_xyxy_to_xywh",
    "build_all_layer_point_grids",
    "build_point_grid",
    "calculate_stability_score",
    "coco_encode_rle",
    "generate_crop_boxes",
    "is_box_near_crop_edge",
    "mask_to_rle_pytorch",
    "remove_small_regions",
    "rle_to_mask",
    "uncrop_boxes_xyxy",
    "uncrop_masks",
    "uncrop_points",
]


def build_point_grid(n_per_side: int) -> np.ndarray:
    """An evenly spaced n x n grid of points in [0, 1] x [0, 1], cell centres, row-major: (n*n, 2) XY."""
    offset = 1.0 / (2 * n_per_side)
    points_one_side = np.linspace(offset, 1.0 - offset, n_per_side)
    points_x = np.tile(points_one_side[None, :], (n_per_side, 1))
    points_y = np.tile(points_one_side[:, None], (1, n_per_side))
    return np.stack([points_x, points_y], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """Point grids for crop layers 0..n_layers; layer i has int(n_per_side / scale_per_layer**i) per side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer**i))) for i in range(n_layers + 1)]


def generate_crop_boxes(
    im_size: tuple[int, ...], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes (XYXY, exclusive maxima) of every layer and each box's layer index.

    Layer 0 is the whole image; layer i >= 1 is a 2**i x 2**i grid of overlapping crops whose overlap is
    `overlap_ratio` of the image's short side scaled by 2 / 2**i. Crops that would be empty (possible for
    images only a few pixels wide, where the official code fails on them later) are left out.
    """
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    crop_boxes, layer_idxs = [[0, 0, im_w, im_h]], [0]

    def crop_len(orig_len: int, n_crops: int, overlap: int) -> int:
        return int(math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops))

    for i_layer in range(n_layers):
        n_crops_per_side = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n_crops_per_side))
        crop_w = crop_len(im_w, n_crops_per_side, overlap)
        crop_h = crop_len(im_h, n_crops_per_side, overlap)
        crop_box_x0 = [int((crop_w - overlap) * i) for i in range(n_crops_per_side)]
        crop_box_y0 = [int((crop_h - overlap) * i) for i in range(n_crops_per_side)]
        for x0, y0 in product(crop_box_x0, crop_box_y0):
            box = [x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)]
            if box[2] > box[0] and box[3] > box[1]:
                crop_boxes.append(box)
                layer_idxs.append(i_layer + 1)
    return crop_boxes, layer_idxs


def batch_iterator(batch_size: int, *args: Sequence[Any]) -> Generator[list[Any], None, None]:
    """Yield `[arg[i:i + batch_size] for arg in args]` for consecutive batches of equally long sequences."""
    if not args or any(len(arg) != len(args[0]) for arg in args):
        raise ValueError("batch_iterator needs at least one sequence, all of the same length")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(args[0]), batch_size):
        yield [arg[start : start + batch_size] for arg in args]


def calculate_stability_score(masks: torch.Tensor, mask_threshold: float, threshold_offset: float) -> torch.Tensor:
    """IoU of the masks thresholded at `mask_threshold + offset` and `- offset`: (..., H, W) -> (...,) float32.

    The high mask lies inside the low one, so the IoU is a ratio of pixel counts. On the CPU the counts are
    taken one (H, W) float plane at a time with one reused buffer (cheaper than the vectorised form there,
    and no (..., H, W) temporaries); elsewhere with the vectorised form, accumulated in int16 along rows then
    int32 as the official code does (exact for rows shorter than 32768 pixels).
    """
    if masks.device.type != "cpu" or masks.dtype not in (torch.float32, torch.float64):
        intersections = (
            (masks > (mask_threshold + threshold_offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
        )
        unions = (masks > (mask_threshold - threshold_offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
        return intersections / unions
    planes = masks.detach().reshape(math.prod(masks.shape[:-2]), *masks.shape[-2:]).numpy()  # an empty plane too
    high = np.asarray(mask_threshold + threshold_offset).astype(planes.dtype)
    low = np.asarray(mask_threshold - threshold_offset).astype(planes.dtype)
    buffer = np.empty(planes.shape[1:], dtype=bool)
    intersections = np.empty(planes.shape[0], dtype=np.int32)
    unions = np.empty(planes.shape[0], dtype=np.int32)
    for k, plane in enumerate(planes):
        intersections[k] = np.count_nonzero(np.greater(plane, high, out=buffer))
        unions[k] = np.count_nonzero(np.greater(plane, low, out=buffer))
    return (torch.from_numpy(intersections) / torch.from_numpy(unions)).reshape(masks.shape[:-2])


def batched_mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """Tight boxes of bool masks: (..., H, W) -> (..., 4) int64 XYXY, inclusive maxima; empty masks give 0s.

    As in the official code, an input with no elements gives float zeros.
    """
    height, width = masks.shape[-2:]
    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4, device=masks.device)
    rows = masks.any(dim=-1)
    cols = masks.any(dim=-2)
    top = _first_true(rows)
    bottom = height - 1 - _first_true(rows.flip(-1))
    left = _first_true(cols)
    right = width - 1 - _first_true(cols.flip(-1))
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    empty = ~rows.any(dim=-1)
    return boxes.masked_fill(empty.unsqueeze(-1), 0)


def _first_true(flags: torch.Tensor) -> torch.Tensor:
    """Index of the first True along the last dimension (0 where there is none): (..., N) -> (...,) int64."""
    return flags.to(torch.uint8).argmax(dim=-1)


def is_box_near_crop_edge(
    boxes: torch.Tensor, crop_box: list[int], orig_box: list[int], atol: float = 20.0
) -> torch.Tensor:
    """Whether boxes (N, 4) in crop coordinates touch the crop's edge but not the image's edge: (N,) bool."""
    crop_box_t = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    orig_box_t = torch.as_tensor(orig_box, dtype=torch.float, device=boxes.device)
    boxes = uncrop_boxes_xyxy(boxes, crop_box).float()
    near_crop_edge = torch.isclose(boxes, crop_box_t[None, :], atol=atol, rtol=0)
    near_image_edge = torch.isclose(boxes, orig_box_t[None, :], atol=atol, rtol=0)
    return torch.any(near_crop_edge & ~near_image_edge, dim=1)


def box_xyxy_to_xywh(box_xyxy: Any) -> Any:
    """One box XYXY -> XYWH, as a copy of the same type (tensor, array or list); W = x1 - x0 as officially."""
    box_xywh = deepcopy(box_xyxy)
    box_xywh[2] = box_xywh[2] - box_xywh[0]
    box_xywh[3] = box_xywh[3] - box_xywh[1]
    return box_xywh


def uncrop_boxes_xyxy(boxes: torch.Tensor, crop_box: list[int]) -> torch.Tensor:
    """Boxes (..., 4) XYXY in crop coordinates -> image coordinates."""
    x0, y0 = crop_box[0], crop_box[1]
    return boxes + torch.tensor([x0, y0, x0, y0], device=boxes.device)


def uncrop_points(points: torch.Tensor, crop_box: list[int]) -> torch.Tensor:
    """Points (..., 2) XY in crop coordinates -> image coordinates."""
    return points + torch.tensor([crop_box[0], crop_box[1]], device=points.device)


def uncrop_masks(masks: torch.Tensor, crop_box: list[int], orig_h: int, orig_w: int) -> torch.Tensor:
    """Crop masks (..., h, w) placed at `crop_box` in an all-background (..., orig_h, orig_w) frame."""
    x0, y0, x1, y1 = crop_box
    if (x0, y0, x1, y1) == (0, 0, orig_w, orig_h):
        return masks
    pad = (x0, orig_w - x1, y0, orig_h - y1)
    return torch.nn.functional.pad(masks, pad, value=0)


def mask_to_rle_pytorch(tensor: torch.Tensor) -> list[dict[str, Any]]:
    """Uncompressed RLEs of bool masks (B, H, W): `{"size": [H, W], "counts": [run, ...]}` per mask.

    Runs alternate background/foreground in column-major order, starting with background (a leading 0 when
    the first pixel is foreground); computed on the masks' device.
    """
    batch, height, width = tensor.shape
    flat = tensor.permute(0, 2, 1).flatten(1)
    changes = (flat[:, 1:] != flat[:, :-1]).nonzero()
    out = []
    for i in range(batch):
        inner = changes[changes[:, 0] == i, 1] + 1
        bounds = torch.cat([inner.new_zeros(1), inner, inner.new_full((1,), height * width)])
        counts = torch.diff(bounds).tolist()
        if height * width and bool(flat[i, 0]):
            counts = [0] + counts
        out.append({"size": [height, width], "counts": counts})
    return out


def rle_to_uncompressed(rle: dict[str, Any]) -> dict[str, Any]:
    """Any RLE -> the official uncompressed RLE (`mask_to_rle_pytorch` of its mask)."""
    return mask_to_rle_pytorch(torch.from_numpy(rle_to_mask(rle))[None])[0]


def area_from_rle(rle: dict[str, Any]) -> int:
    """Number of foreground pixels of an RLE in any form."""
    return rle_area(rle)


def coco_encode_rle(uncompressed_rle: dict[str, Any]) -> dict[str, Any]:
    """An RLE (the official uncompressed form, or any other) -> COCO RLE with counts as str (JSON-ready)."""
    return rle_to_json(compressed_rle(uncompressed_rle))


def threshold_to_rles(
    logits: Sequence[np.ndarray], mask_threshold: float, crop_box: list[int], orig_size: tuple[int, int]
) -> list[dict[str, Any]]:
    """Compressed RLEs of `logits > mask_threshold` for K crop logits (h, w) float32, placed at `crop_box`
    in an all-background (H, W) image (threshold, `uncrop_masks` and encoding fused, for the generator).

    Masks are written transposed into a (K, W, H) buffer, which is the (H, W, K) Fortran-ordered layout
    that pycocotools encodes.
    """
    import cv2
    from pycocotools import mask as mask_utils

    if len(logits) == 0:
        return []
    orig_h, orig_w = orig_size
    x0, y0, x1, y1 = crop_box
    threshold = np.float32(mask_threshold)
    buffer = np.zeros((len(logits), orig_w, orig_h), dtype=np.uint8)
    mask = np.empty(logits[0].shape, dtype=bool)
    for k, plane in enumerate(logits):
        np.greater(plane, threshold, out=mask)
        buffer[k, x0:x1, y0:y1] = cv2.transpose(mask.view(np.uint8))
    return mask_utils.encode(buffer.transpose(2, 1, 0))


def transposed_masks_to_rles(masks_t: np.ndarray) -> list[dict[str, Any]]:
    """Compressed RLEs of K transposed full-image masks (K, W, H) bool.

    A C-ordered (K, W, H) buffer is the (H, W, K) Fortran-ordered layout that pycocotools encodes, so
    transposed masks are encoded without a copy.
    """
    from pycocotools import mask as mask_utils

    if len(masks_t) == 0:
        return []
    return mask_utils.encode(np.ascontiguousarray(masks_t).view(np.uint8).transpose(2, 1, 0))


def transposed_mask_boxes(masks_t: np.ndarray) -> torch.Tensor:
    """Tight boxes of K transposed masks (K, W, H) bool: (K, 4) int64 XYXY, inclusive maxima; empty masks give 0s."""
    import cv2

    boxes = torch.zeros(len(masks_t), 4, dtype=torch.int64)
    for k, mask_t in enumerate(masks_t):
        y, x, h, w = cv2.boundingRect(np.ascontiguousarray(mask_t).view(np.uint8))
        if w > 0:
            boxes[k] = torch.tensor([x, y, x + w - 1, y + h - 1])
    return boxes


def uncropped_mask_rles(masks: torch.Tensor, crop_box: list[int], orig_size: tuple[int, int]) -> list[dict[str, Any]]:
    """Compressed RLEs of crop masks (K, h, w) bool placed at `crop_box` in an all-background (H, W) image."""
    from pycocotools import mask as mask_utils

    if masks.shape[0] == 0:
        return []
    full = uncrop_masks(masks.cpu(), crop_box, *orig_size)
    # (K, W, H) in C order is (H, W, K) in Fortran order: the layout pycocotools encodes.
    buffer = full.transpose(1, 2).contiguous().numpy()
    return mask_utils.encode(buffer.view(np.uint8).transpose(2, 1, 0))


def rle_boxes_in_crop(rles: list[dict[str, Any]], crop_box: list[int]) -> torch.Tensor:
    """Tight boxes of full-image RLEs in the crop's coordinates: (N, 4) int64 XYXY, inclusive maxima.

    Empty masks give 0s, as `batched_mask_to_box` does for the cropped mask.
    """
    from pycocotools import mask as mask_utils

    if not rles:
        return torch.zeros(0, 4, dtype=torch.int64)
    xywh = torch.from_numpy(mask_utils.toBbox(rles)).round().to(torch.int64).reshape(-1, 4)
    x0, y0 = crop_box[0], crop_box[1]
    boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:] - 1], dim=1) - torch.tensor([[x0, y0, x0, y0]])
    return boxes.masked_fill((xywh[:, 2] == 0).unsqueeze(1), 0)


def encode_like(mask: np.ndarray, rle: dict[str, Any]) -> dict[str, Any]:
    """Encode an (H, W) bool mask in the form of `rle` (uncompressed, COCO str counts or compressed bytes)."""
    counts = rle["counts"]
    if isinstance(counts, list):
        return mask_to_rle_pytorch(torch.from_numpy(mask)[None])[0]
    compressed = encode_rle(mask)
    return rle_to_json(compressed) if isinstance(counts, str) else compressed


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes ("holes") or drop islands ("islands") smaller than `area_thresh` in an (H, W) bool mask.

    Connected components use 8-connectivity. If every island is small, the largest one is kept.
    Returns the new mask and whether it changed.
    """
    import cv2

    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    correct_holes = mode == "holes"
    working_mask = (correct_holes ^ mask).astype(np.uint8)
    n_labels, regions, stats, _ = cv2.connectedComponentsWithStats(working_mask, 8)
    sizes = stats[1:, -1]
    small_regions = [i + 1 for i, s in enumerate(sizes) if s < area_thresh]
    if not small_regions:
        return mask, False
    fill_labels = [0] + small_regions
    if not correct_holes:
        fill_labels = [i for i in range(n_labels) if i not in fill_labels]
        if not fill_labels:
            fill_labels = [int(np.argmax(sizes)) + 1]
    return np.isin(regions, fill_labels), True
