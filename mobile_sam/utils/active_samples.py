"""The low-res samples whose bilinear upsampling can lift a pixel above a threshold.

`Sam.postprocess_masks` (and OpenCV's resize in the same geometry) upsamples low-res logits bilinearly: every
output pixel mixes a few neighbouring low-res samples with non-negative weights summing to one, so a pixel all of
whose samples lie below a threshold stays below it. A trained decoder's mask covers part of the image, so its
full-resolution work is needed only where pixels read the samples that `active_span` names.
"""

from __future__ import annotations

import numpy as np

# Samples within this fraction of the plane's largest magnitude (plus this much) below the threshold still count as
# above it: interpolation rounds, and OpenCV may read the sample next to torch's.
WINDOW_MARGIN = 1e-4


def active_span(samples: np.ndarray, threshold: float) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The first and last row and column (inclusive) of low-res samples (h, w) that may lift a pixel above
    `threshold`: ((first row, last row), (first column, last column)); None when none can; every sample when the
    plane holds NaN or infinite logits."""
    magnitude = float(np.abs(samples).max(initial=0.0))
    if not np.isfinite(magnitude):
        return (0, samples.shape[0] - 1), (0, samples.shape[1] - 1)
    active = samples > threshold - WINDOW_MARGIN * (1.0 + magnitude)
    rows, cols = np.flatnonzero(active.any(axis=1)), np.flatnonzero(active.any(axis=0))
    if len(rows) == 0:
        return None
    return (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))
