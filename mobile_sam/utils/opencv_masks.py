"""Full-image masks of low-res logits with OpenCV, one candidate at a time (the generators' fast path).

`Sam.postprocess_masks` resizes low-res logits with torch's bilinear interpolation (half-pixel centres):
up by the decoder's scale, crop to the unpadded input frame, then to the image size. OpenCV's bilinear
resize has the same geometry, so it gives the same logits within about 2e-5 (a pixel whose logit lies
that close to a threshold may differ) at a fraction of the cost on a CPU. Each candidate is then resized,
counted for its stability score, thresholded, run-length encoded and boxed while its image-size plane is
still in the cache, in buffers reused from one candidate to the next.

Only the window of each plane that can hold mask pixels (`mobile_sam.utils.mask_windows`) is counted,
thresholded, boxed and, when it covers at most `WINDOWED_FRACTION` of the crop, run-length encoded: the results of
the whole crop, for the window's pixels.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from .amg import transposed_mask_boxes, transposed_masks_to_rles
from .mask_windows import WINDOWED_FRACTION, LowResWindows, lowest_threshold
from .rle import window_rle


class PlaneMasks:
    """Masks of low-res logit planes placed at `crop_box` in an image of `image_size` (H, W).

    Arguments:
      extent: (rows, cols) low-res samples that the upsampling to the input frame reads.
      scale: input-frame pixels per low-res sample (1024 / 256 in SAM).
      input_size: (h, w) unpadded input frame.
      crop_box: XYXY region of the image that the logits cover (the whole image outside crop layers).
      image_size: (H, W).
      mask_threshold, stability_offset: as in the generators.
    """

    def __init__(
        self,
        extent: tuple[int, int],
        scale: int,
        input_size: tuple[int, int],
        crop_box: list[int],
        image_size: tuple[int, int],
        mask_threshold: float,
        stability_offset: float,
    ) -> None:
        self.extent = extent
        self.scale = scale
        self.input_size = input_size
        x0, y0, x1, y1 = crop_box
        height, width = image_size
        # Transposed buffers, (W, H): the Fortran-ordered (H, W) layout that the RLE encoder reads.
        self.logits_t = np.empty((x1 - x0, y1 - y0), dtype=np.float32)
        self.scratch_t = np.empty(self.logits_t.shape, dtype=bool)
        self.mask_t = np.zeros((width, height), dtype=bool)
        self.crop_t = self.mask_t[x0:x1, y0:y1]  # a view: outside the crop the mask stays empty
        self.threshold = np.float32(mask_threshold)
        self.high = np.float32(mask_threshold + stability_offset)
        self.low = np.float32(mask_threshold - stability_offset)
        self.origin = (x0, y0)
        self.windows = LowResWindows(
            extent, scale, input_size, (y1 - y0, x1 - x0), lowest_threshold(mask_threshold, stability_offset)
        )
        self.written = (slice(0, x1 - x0), slice(0, y1 - y0))  # the part of crop_t that may hold the last mask

    def candidates(
        self, planes: np.ndarray, stability_thresh: float
    ) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]], torch.Tensor]:
        """Stability filter, RLE and box of K low-res planes (K, 4h, 4w) float32.

        Returns:
            stability scores (K,) float32 of every plane, the indices (S,) of the planes kept (stability at least
            `stability_thresh`, or all when it is 0), their compressed RLEs in the image, and their tight
            boxes (S, 4) int64 XYXY in crop coordinates (inclusive maxima; empty masks give 0s).
        """
        counts = np.zeros((len(planes), 2), dtype=np.int32)
        kept, rles, boxes = [], [], []
        for k, plane in enumerate(planes):
            window = self.window(plane)
            logits = self.logits_t[window]
            if logits.size:
                self.resize(plane)
            scratch = self.scratch_t[window]
            counts[k, 0] = np.count_nonzero(np.greater(logits, self.high, out=scratch))
            counts[k, 1] = np.count_nonzero(np.greater(logits, self.low, out=scratch))
            if stability_thresh > 0.0 and not _stability(counts[k]) >= stability_thresh:
                continue
            if not _covers(window, self.written):
                self.crop_t[self.written] = False
            np.greater(logits, self.threshold, out=self.crop_t[window])
            self.written = window
            kept.append(k)
            rles.append(self._rle(window))
            boxes.append(self._box(window))
        stability = torch.from_numpy(counts[:, 0]) / torch.from_numpy(counts[:, 1])
        boxes = torch.stack(boxes) if boxes else torch.zeros(0, 4, dtype=torch.int64)
        return stability, torch.tensor(kept, dtype=torch.int64), rles, boxes

    def window(self, plane: np.ndarray) -> tuple[slice, slice]:
        """The (columns, rows) slices of the transposed crop that can hold mask pixels of one low-res plane."""
        rows, cols = self.windows.window(plane)
        return cols, rows

    def _rle(self, window: tuple[slice, slice]) -> dict[str, Any]:
        """The compressed RLE in the image of the mask in `mask_t`, set only inside `window` of the crop."""
        pixels = self.crop_t[window]
        if pixels.size > WINDOWED_FRACTION * self.crop_t.size:
            return transposed_masks_to_rles(self.mask_t[None])[0]
        (x0, y0), (columns, rows) = self.origin, window
        return window_rle(pixels, y0 + rows.start, x0 + columns.start, self.mask_t.shape[::-1])

    def _box(self, window: tuple[slice, slice]) -> torch.Tensor:
        """The tight XYXY box (inclusive maxima) in crop coordinates of the mask in `window`; 0s if empty."""
        pixels = self.crop_t[window]
        box = transposed_mask_boxes(pixels[None])[0]
        if not pixels.any():
            return box
        left, top = window[0].start, window[1].start
        return box + torch.tensor([left, top, left, top])

    def resize(self, plane: np.ndarray) -> None:
        """Crop-size logits of one low-res plane (4h, 4w) into `logits_t` (transposed), as `Sam.postprocess_masks`."""
        (rows, cols), (input_h, input_w) = self.extent, self.input_size
        # Bilinear resizing is separable: resizing the transposed plane gives the transposed result.
        framed = cv2.resize(
            np.ascontiguousarray(plane[:rows, :cols].T),
            (self.scale * rows, self.scale * cols),
            interpolation=cv2.INTER_LINEAR,
        )
        cv2.resize(
            framed[:input_w, :input_h], self.logits_t.shape[::-1], dst=self.logits_t, interpolation=cv2.INTER_LINEAR
        )


def _covers(window: tuple[slice, slice], other: tuple[slice, slice]) -> bool:
    """Whether `window` holds every pixel of `other` (slices with explicit starts and stops)."""
    return all(outer.start <= inner.start and inner.stop <= outer.stop for outer, inner in zip(window, other))


def _stability(counts: np.ndarray) -> np.float32:
    """The stability score of (high, low) threshold pixel counts in float32, the dtype in which the generators
    compare scores with their threshold (no pixel above either threshold: NaN, which passes no filter)."""
    with np.errstate(invalid="ignore"):
        return np.float32(counts[0]) / np.float32(counts[1])
