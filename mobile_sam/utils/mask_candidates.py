"""The core that the two "segment everything" generators share: prompts decoded on one encoded image, candidate
masks filtered and encoded, and output records.

`SamAutomaticMaskGenerator` (a grid of point prompts, the official results) and
`everything.ObjectAwareMaskGenerator` (detector boxes, MobileSAMv2's mode) differ in their prompts and filters,
not in this:
  * `PromptDecoder` prepares the image side of the mask decoder once and decodes batches of point or box
    prompts, predicted IoU first and mask logits only for the prompts asked for, over the image tokens whose
    logits reach the unpadded input frame;
  * `CandidateMasks` turns the low-res logits of candidates in one crop into kept masks: upsampled exactly as
    `Sam.postprocess_masks` ("torch", in chunks of bounded memory) or with OpenCV in the same geometry
    ("opencv", one plane at a time), stability-filtered, thresholded, run-length encoded, boxed (each step over
    the window of pixels that the candidate can set, `mobile_sam.utils.mask_windows`), and dropped when their box
    touches a crop edge that is not an image edge;
  * `mask_records` writes the official output records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..modeling.mask_decoder import UPSCALE_FACTOR
from ..modeling.sam import low_res_extent, upsample_low_res
from ..predictor import SamPredictor
from .amg import (
    area_from_rle,
    box_xyxy_to_xywh,
    calculate_stability_score,
    coco_encode_rle,
    is_box_near_crop_edge,
    rle_boxes_in_crop,
    rle_to_mask,
    rle_to_uncompressed,
    threshold_to_rles,
)
from .mask_data import MaskData
from .mask_windows import WINDOWED_FRACTION, LowResWindows, lowest_threshold
from .rle import window_rle

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")
UPSAMPLING = ("torch", "opencv")


@dataclass
class DecodedBatch:
    """The decoder's answer for B prompts: predicted IoU now, mask logits on demand.

    `iou_predictions` is (B, M) for M outputs per prompt. `low_res_logits(prompts)` gives (S, M, h', w') logits
    for the prompt indices (S,): the top-left part of the (256, 256) low-res grid that upsampling to the input
    frame reads, so that mask work is spent only on the prompts that need it.
    """

    iou_predictions: torch.Tensor
    low_res_logits: Callable[[torch.Tensor], torch.Tensor]


class PromptDecoder:
    """Decodes point or box prompts on the image set on `predictor`; the image side is prepared once."""

    def __init__(self, predictor: SamPredictor) -> None:
        model = predictor.model
        self.predictor = predictor
        self.prompt_encoder, self.mask_decoder = model.prompt_encoder, model.mask_decoder
        features = predictor.features
        self.image = predictor._prepared_image()  # the predictor's, where it keeps one
        if self.image is None:
            _, dense = self.prompt_encoder(points=None, boxes=None, masks=None)
            self.image = self.mask_decoder.prepare_image(features, self.prompt_encoder.get_dense_pe(), dense)
        tokens = features.shape[-1]
        self.low_res_size = UPSCALE_FACTOR * tokens
        # Image tokens under the low-res logits that upsampling to the input frame reads (upscaling is local).
        extent = low_res_extent(predictor.input_size, model.image_size, self.low_res_size)
        self.token_extent = tuple(min(tokens, -(-side // UPSCALE_FACTOR)) for side in extent)
        # The official code passes float64 coordinates; MPS has no float64.
        self.dtype = torch.float32 if predictor.device.type == "mps" else torch.float64

    def points(self, points: np.ndarray) -> DecodedBatch:
        """One foreground point per prompt, (B, 2) XY in image pixels: the three multimask outputs each."""
        predictor = self.predictor
        coords = predictor.transform.apply_coords(points, predictor.original_size)
        coords = torch.as_tensor(coords, dtype=self.dtype, device=predictor.device)
        labels = torch.ones(coords.shape[0], 1, dtype=torch.int, device=predictor.device)
        sparse, _ = self.prompt_encoder(points=(coords[:, None, :], labels), boxes=None, masks=None)
        return self._decode(sparse, multimask_output=True, iou_first=True)

    def boxes(self, boxes: np.ndarray, iou_first: bool) -> DecodedBatch:
        """One box per prompt, (B, 4) XYXY in image pixels: the single-mask output each. `iou_first` computes the
        predicted IoU before any mask token (for an IoU filter); else every prompt is decoded in one pass."""
        predictor = self.predictor
        in_boxes = predictor.transform.apply_boxes_torch(
            torch.as_tensor(boxes, dtype=self.dtype), predictor.original_size
        )
        sparse, _ = self.prompt_encoder(points=None, boxes=in_boxes.to(predictor.device), masks=None)
        return self._decode(sparse, multimask_output=False, iou_first=iou_first)

    def _decode(self, sparse: torch.Tensor, multimask_output: bool, iou_first: bool) -> DecodedBatch:
        decoder, device = self.mask_decoder, self.predictor.device
        rows, cols = self.token_extent
        if not iou_first:
            iou_predictions, hyper_in, image_tokens = decoder.decode_prepared(self.image, sparse, multimask_output)

            def all_logits(prompts: torch.Tensor) -> torch.Tensor:
                # Every prompt in order (no IoU filter) is a slice: no copy of the prompts' image-token factors.
                every = len(prompts) == len(hyper_in) and torch.equal(prompts.cpu(), torch.arange(len(hyper_in)))
                selected = slice(None) if every else prompts.to(device)
                return decoder.upscale_masks(hyper_in[selected], image_tokens.select(selected).crop(rows, cols))

            return DecodedBatch(iou_predictions.cpu(), all_logits)
        iou_predictions, state = decoder.decode_iou(self.image, sparse)
        outputs = slice(1, None) if multimask_output else slice(0, 1)

        def chosen_logits(prompts: torch.Tensor) -> torch.Tensor:
            hyper_in, image_tokens = decoder.decode_mask_tokens(state, prompts.to(device), multimask_output)
            return decoder.upscale_masks(hyper_in, image_tokens.crop(rows, cols))

        return DecodedBatch(iou_predictions[:, outputs].cpu(), chosen_logits)


class CandidateMasks:
    """Kept masks of candidates' low-res logits in one crop of an image.

    Arguments:
      model_image_size: the model's square input frame (1024 for SAM).
      low_res_size: side of the low-res logits grid (256 for SAM).
      input_size: (h, w) of the crop resized into the input frame.
      crop_box: XYXY region of the image the logits cover (the whole image outside crop layers).
      image_size: (H, W) of the image.
      mask_threshold, stability_score_offset, stability_score_thresh: as in the generators (0 keeps all).
      upsampling: "torch" (the official `postprocess_masks` values) or "opencv" (`mobile_sam.utils.opencv_masks`).
      chunk_bytes: memory bound of the "torch" upsampling's float work done at once.
    """

    def __init__(
        self,
        model_image_size: int,
        low_res_size: int,
        input_size: tuple[int, int],
        crop_box: list[int],
        image_size: tuple[int, int],
        mask_threshold: float,
        stability_score_offset: float,
        stability_score_thresh: float,
        upsampling: str,
        chunk_bytes: int,
    ) -> None:
        if upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
        self.model_image_size, self.low_res_size = model_image_size, low_res_size
        self.input_size, self.crop_box, self.image_size = input_size, crop_box, image_size
        self.mask_threshold, self.stability_score_offset = mask_threshold, stability_score_offset
        self.stability_score_thresh = stability_score_thresh
        self.extent = low_res_extent(input_size, model_image_size, low_res_size)
        x0, y0, x1, y1 = crop_box
        self.crop_size = (y1 - y0, x1 - x0)
        self.chunk = max(1, chunk_bytes // (4 * self.crop_size[0] * self.crop_size[1]))
        scale = model_image_size // low_res_size
        self.planes, self.windows = None, None
        if upsampling == "opencv":
            from .opencv_masks import PlaneMasks

            self.planes = PlaneMasks(
                self.extent, scale, input_size, crop_box, image_size, mask_threshold, stability_score_offset
            )
        else:
            lowest = lowest_threshold(mask_threshold, stability_score_offset)
            self.windows = LowResWindows(self.extent, scale, input_size, self.crop_size, lowest)

    def keep(self, low_res: torch.Tensor, iou_preds: torch.Tensor, **fields: torch.Tensor) -> MaskData:
        """The kept masks of K candidates: low-res logits (K, h', w') (at least the top-left extent that
        upsampling reads), their predicted IoU (K,) and any per-candidate `fields` (K, ...).

        Returns a MaskData with "iou_preds", "stability_score", "boxes" (S, 4) XYXY in crop coordinates
        (inclusive maxima), "rles" (compressed, in the image) and the fields, for the S candidates kept.
        """
        low_res = low_res.cpu()
        if self.planes is not None:
            stability, kept, rles, boxes = self.planes.candidates(low_res.numpy(), self.stability_score_thresh)
        else:
            starts = range(0, len(low_res), self.chunk)
            parts = [self._torch_chunk(low_res[first : first + self.chunk]) for first in starts]
            stability = torch.cat([p[0] for p in parts] + [torch.zeros(0)])
            kept = torch.cat([p[1] + first for p, first in zip(parts, starts)] + [torch.zeros(0, dtype=torch.int64)])
            rles = [rle for p in parts for rle in p[2]]
            boxes = torch.cat([p[3] for p in parts] + [torch.zeros(0, 4, dtype=torch.int64)])
        height, width = self.image_size
        inside = ~is_box_near_crop_edge(boxes, self.crop_box, [0, 0, width, height])
        kept = kept[inside]
        return MaskData(
            iou_preds=iou_preds[kept],
            stability_score=stability[kept],
            boxes=boxes[inside],
            rles=[rle for rle, ok in zip(rles, inside.tolist()) if ok],
            **{name: value[kept] for name, value in fields.items()},
        )

    def upsample(self, low_res: torch.Tensor) -> torch.Tensor:
        """Low-res logits (K, h', w') -> (K, H, W) at the crop size, equal to the official `postprocess_masks`.

        Only the low-res rows and columns that reach the unpadded input frame are upsampled (at the same
        scale, so every value is computed exactly as in the full-frame upsampling).
        """
        scale = self.model_image_size // self.low_res_size
        return upsample_low_res(low_res[None], scale, self.input_size, self.crop_size)[0]

    def _torch_chunk(
        self, low_res: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]], torch.Tensor]:
        """Stability scores (K,), kept indices (S,), RLEs and crop boxes (S, 4) of K candidates ("torch")."""
        logits = self.upsample(low_res)
        windows = [self.windows.window(plane) for plane in low_res.numpy()]
        # Counted in each plane's window: outside it every logit is below both thresholds.
        stability = torch.stack(
            [
                calculate_stability_score(plane[rows, cols], self.mask_threshold, self.stability_score_offset)
                for plane, (rows, cols) in zip(logits, windows)
            ]
        )
        keep = torch.ones_like(stability, dtype=torch.bool)
        if self.stability_score_thresh > 0.0:
            keep = stability >= self.stability_score_thresh
        kept = torch.nonzero(keep).flatten()
        planes = logits.numpy()
        rles = [self._rle(planes[i], windows[i]) for i in kept.tolist()]
        return stability, kept, rles, rle_boxes_in_crop(rles, self.crop_box)

    def _rle(self, plane: np.ndarray, window: tuple[slice, slice]) -> dict[str, Any]:
        """The compressed RLE in the image of one crop plane's logits (h, w) above the threshold, which only pixels
        in `window` (rows, cols) can be."""
        rows, cols = window
        pixels = plane[rows, cols]
        if pixels.size > WINDOWED_FRACTION * plane.size:
            return threshold_to_rles([plane], self.mask_threshold, self.crop_box, self.image_size)[0]
        mask_t = np.ascontiguousarray(np.greater(pixels, np.float32(self.mask_threshold)).T)
        x0, y0 = self.crop_box[:2]
        return window_rle(mask_t, y0 + rows.start, x0 + cols.start, self.image_size)


def empty_mask_data(**fields: torch.Tensor) -> MaskData:
    """A MaskData with no candidate, with the columns `CandidateMasks.keep` gives plus `fields` (empty tensors)."""
    return MaskData(
        iou_preds=torch.zeros(0, dtype=torch.float32),
        stability_score=torch.zeros(0, dtype=torch.float32),
        boxes=torch.zeros(0, 4, dtype=torch.int64),
        rles=[],
        **fields,
    )


def generator_records(
    data: MaskData, output_mode: str, *, largest_first: bool = False, extra: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The generators' output records, one per mask of `data` ("rles", "boxes" XYXY in the image,
    "iou_preds", "points" (N, 2) XY, "stability_score", "crop_boxes" XYXY): `segmentation` (per output_mode),
    `area`, `bbox` (XYWH), `predicted_iou`, `point_coords` ([[x, y]]), `stability_score`, `crop_box` (XYWH),
    plus the columns named in `extra`. `largest_first` orders them by area (ties keep their order)."""
    if output_mode not in OUTPUT_MODES:
        raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
    if len(data) == 0:
        return []
    encode = {"binary_mask": rle_to_mask, "uncompressed_rle": rle_to_uncompressed, "coco_rle": coco_encode_rle}
    rles = data["rles"]
    areas = [area_from_rle(rle) for rle in rles]
    order = sorted(range(len(rles)), key=lambda i: -areas[i]) if largest_first else range(len(rles))
    boxes, crop_boxes = data["boxes"].tolist(), data["crop_boxes"].tolist()
    points, iou_preds = data["points"].tolist(), data["iou_preds"].tolist()
    stability = data["stability_score"].tolist()
    columns = {name: data[name].tolist() for name in extra}
    return [
        {
            "segmentation": encode[output_mode](rles[i]),
            "area": areas[i],
            "bbox": box_xyxy_to_xywh(boxes[i]),
            "predicted_iou": iou_preds[i],
            "point_coords": [points[i]],
            "stability_score": stability[i],
            "crop_box": box_xyxy_to_xywh(crop_boxes[i]),
            **{name: values[i] for name, values in columns.items()},
        }
        for i in order
    ]
