"""The window of a crop outside which a low-res plane's upsampled logits stay below a threshold.

The window holds every pixel that reads a low-res sample that may lift it above the lowest threshold a generator
applies (the stability score's low count; `mobile_sam.utils.active_samples`); outside it the mask is empty and no
count changes. A trained decoder's masks cover part of the image, so counting, thresholding and encoding the window
alone gives the same results for a fraction of the pixels.
"""

from __future__ import annotations

import numpy as np

from .active_samples import active_span
from .mask_resize import resize_matrix

# A window of at most this fraction of the crop is run-length encoded alone; a larger one with the whole image.
WINDOWED_FRACTION = 0.5


class LowResWindows:
    """Windows for one geometry: low-res `extent` (rows, cols) upsampled by `scale` to the input frame, cropped to
    `input_size` (h, w), resized to `crop_size` (H, W); pixels above `threshold` only inside a window."""

    def __init__(
        self,
        extent: tuple[int, int],
        scale: int,
        input_size: tuple[int, int],
        crop_size: tuple[int, int],
        threshold: float,
    ) -> None:
        self.extent = extent
        self.threshold = threshold
        self.crop_size = crop_size
        # The low-res rows (columns) that each crop row (column) reads, one more on each side for OpenCV's rounding.
        self.row_reach = _reach(resize_matrix(extent[0], scale, input_size[0], crop_size[0]))
        self.col_reach = _reach(resize_matrix(extent[1], scale, input_size[1], crop_size[1]))

    def window(self, plane: np.ndarray) -> tuple[slice, slice]:
        """(rows, cols) slices of the crop outside which the upsampled low-res plane (4h, 4w) stays below the
        threshold: empty slices if no pixel reaches it, the whole crop if the plane holds NaN or infinite logits."""
        span = active_span(plane[: self.extent[0], : self.extent[1]], self.threshold)
        if span is None:
            return slice(0, 0), slice(0, 0)
        (first_row, last_row), (first_col, last_col) = span
        return _reaching(self.row_reach, first_row, last_row), _reaching(self.col_reach, first_col, last_col)


def lowest_threshold(mask_threshold: float, stability_offset: float) -> float:
    """The lowest of a generator's thresholds: the mask's and the stability score's two."""
    return min(mask_threshold, mask_threshold + stability_offset, mask_threshold - stability_offset)


def _reach(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and last input sample (non-decreasing) that each output sample of a resize matrix (out, in) reads,
    widened by one on each side."""
    used = matrix != 0
    first = used.argmax(axis=1)
    last = matrix.shape[1] - 1 - used[:, ::-1].argmax(axis=1)
    return first - 1, last + 1


def _reaching(reach: tuple[np.ndarray, np.ndarray], first: int, last: int) -> slice:
    """The output samples that read any input sample in [first, last]."""
    lowest, highest = reach
    return slice(int(np.searchsorted(highest, first)), int(np.searchsorted(lowest, last, side="right")))
