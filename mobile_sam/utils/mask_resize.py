"""`Sam.postprocess_masks` as one banded matrix product per axis.

The official resize is two bilinear upsamplings: by the low-res grid's scale to the square input frame, a crop
to the resized image, then to the original size. Along each axis both are linear, so together they are one
(output, low-res) matrix with at most three nonzero weights per row. Its weights are computed as torch's CPU
kernel computes them (half-pixel centres, border clamping, float32 source coordinates; the tests compare them with
torch's interpolation of unit inputs). Applied in blocks of output samples, each reading a narrow band of low-res
samples, it writes every output value once with no full-size intermediate: a fraction of the two interpolations'
time on a CPU.
Values agree with `postprocess_masks` to float32 rounding (the sums are taken in another order). Thresholded masks
are computed, on a CPU, only in the blocks that read low-res samples able to lift a pixel above the threshold
(`mobile_sam.utils.active_samples`); the rest of each mask is False.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..modeling.sam import low_res_extent
from .active_samples import active_span

# Output rows and columns per block: each block reads a band of about block / 7 + 3 low-res samples (for a
# 1024 frame and 256 low-res samples), so smaller blocks do less arithmetic and more, smaller products.
ROW_BLOCK = 40
COLUMN_BLOCK = 60
# Planes whose column pass is held at once by `MaskResize.masks_into` (each about 1.2 MB for a 1800x1200 image).
PLANE_GROUP = 8


@dataclass(frozen=True)
class BandedAxis:
    """One axis of the resize, blocked: output sample `b * block + i` is
    `sum_j weights[b, i, j] * low_res[bands[b, j]]` (rows past `size` in the last block are padding)."""

    weights: torch.Tensor  # (blocks, block, band) float32
    bands: torch.Tensor  # (blocks, band) int64 low-res indices
    size: int

    def to(self, device: torch.device | str) -> BandedAxis:
        return BandedAxis(self.weights.to(device), self.bands.to(device), self.size)

    @property
    def reach(self) -> int:
        """Low-res samples read: indices below this."""
        return int(self.bands.max()) + 1

    def blocks_reading(self, first: int, last: int) -> slice | None:
        """The blocks from the first to the last whose band holds a low-res sample in [first, last] (None: none)."""
        reading = torch.nonzero((self.bands[:, -1] >= first) & (self.bands[:, 0] <= last)).flatten()
        return slice(int(reading[0]), int(reading[-1]) + 1) if len(reading) else None

    def samples(self, blocks: slice) -> slice:
        """The output samples of some blocks (padding excluded)."""
        block = self.weights.shape[1]
        return slice(blocks.start * block, min(blocks.stop * block, self.size))


def bilinear_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """torch's bilinear interpolation (align_corners=False) of float32 values along one axis, `in_size` samples
    to `out_size`: output i is `w0[i] * input[i0[i]] + w1[i] * input[i1[i]]`. Computed as torch's CPU kernel
    does: float32 source coordinates `scale * (i + 0.5) - 0.5` rounded once (a fused multiply-add), clamped at
    0; with an integer upsampling factor the scale is its exact inverse."""
    if in_size == out_size:
        index = np.arange(out_size)
        return index, index, np.ones(out_size), np.zeros(out_size)
    scale = np.float64(np.float32(in_size) / np.float32(out_size))
    source = (scale * (np.arange(out_size) + 0.5) - 0.5).astype(np.float32)
    source = np.maximum(source, np.float32(0))
    i0 = np.minimum(np.floor(source).astype(np.int64), in_size - 1)
    w1 = np.clip(source - i0.astype(np.float32), 0, 1).astype(np.float32)
    w0 = np.float32(1) - w1
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, w0.astype(np.float64), w1.astype(np.float64)


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """`bilinear_weights` as an (out_size, in_size) float64 matrix."""
    i0, i1, w0, w1 = bilinear_weights(in_size, out_size)
    matrix = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, i0), w0)
    np.add.at(matrix, (rows, i1), w1)
    return matrix


def resize_matrix(low_res_size: int, scale: int, kept: int, out_size: int) -> np.ndarray:
    """`postprocess_masks` along one axis: (out_size, low_res_size) float64, upsampling by `scale`, keeping the
    first `kept` samples, then resizing those to `out_size`."""
    to_frame = bilinear_matrix(low_res_size, low_res_size * scale)[:kept]
    j0, j1, u0, u1 = bilinear_weights(kept, out_size)
    return u0[:, None] * to_frame[j0] + u1[:, None] * to_frame[j1]


def banded_axis(matrix: np.ndarray, block: int) -> BandedAxis:
    """Blocks of `block` rows of a banded (out, in) matrix, each with the narrowest band of columns (the same
    width for all blocks) that holds its nonzero weights."""
    matrix = torch.from_numpy(matrix)
    out_size, in_size = matrix.shape
    blocks = -(-out_size // block)
    padded = torch.cat([matrix, matrix.new_zeros(blocks * block - out_size, in_size)]).view(blocks, block, in_size)
    used = padded.ne(0).any(dim=1)  # (blocks, in)
    columns = torch.arange(in_size)
    first = torch.where(used, columns, in_size).amin(dim=1)
    last = torch.where(used, columns, -1).amax(dim=1)
    first = torch.where(last < 0, 0, first)  # an all-padding block
    band = int((last - first).max()) + 1
    bands = first.clamp(max=in_size - band)[:, None] + torch.arange(band)
    weights = torch.gather(padded, 2, bands[:, None, :].expand(blocks, block, band))
    return BandedAxis(weights=weights.float(), bands=bands, size=out_size)


class MaskResize:
    """`Sam.postprocess_masks` for one input size and original size, as banded products.

    Arguments are those of `postprocess_masks` plus the low-res grid: `low_res_size` samples per side over a
    square input frame of `low_res_size * scale` pixels.
    """

    def __init__(
        self,
        low_res_size: int,
        scale: int,
        input_size: tuple[int, ...],
        original_size: tuple[int, ...],
        device: torch.device | str = "cpu",
    ) -> None:
        self.key = self.key_of(low_res_size, scale, input_size, original_size, device)
        row_reach, column_reach = low_res_extent(input_size, low_res_size * scale, low_res_size)
        rows = resize_matrix(low_res_size, scale, input_size[0], original_size[0])[:, :row_reach]
        columns = resize_matrix(low_res_size, scale, input_size[1], original_size[1])[:, :column_reach]
        self.rows = banded_axis(rows, ROW_BLOCK).to(device)
        self.columns = banded_axis(columns, COLUMN_BLOCK).to(device)

    @staticmethod
    def key_of(
        low_res_size: int,
        scale: int,
        input_size: tuple[int, ...],
        original_size: tuple[int, ...],
        device: torch.device | str,
    ) -> tuple:
        """What a `MaskResize` is built from: equal keys, equal resizes."""
        return (low_res_size, scale, tuple(input_size[:2]), tuple(original_size[:2]), torch.device(device))

    def _across(self, low_res: torch.Tensor, blocks: slice = slice(None)) -> torch.Tensor:
        """(N, r, w) low-res logits -> (N, r, W'): the columns of some column blocks resized (W' their output
        columns; all: W), on the low-res rows given (the first `rows.reach` of them)."""
        bands, weights = self.columns.bands[blocks], self.columns.weights[blocks]
        first = blocks.start or 0
        columns = self.columns.samples(slice(first, first + len(bands)))
        banded = low_res[:, : self.rows.reach].index_select(-1, bands.flatten()).unflatten(-1, bands.shape)
        resized = torch.matmul(banded.transpose(1, 2), weights.to(low_res.dtype).transpose(1, 2))  # (N, B, r, block)
        return resized.transpose(1, 2).flatten(2)[..., : columns.stop - columns.start]

    def _down(
        self, across: torch.Tensor, out: torch.Tensor | None = None, blocks: slice = slice(None), first_row: int = 0
    ) -> torch.Tensor:
        """(..., r, W) -> (..., row blocks * block, W): the rows of some row blocks resized (padding rows at the end),
        from low-res rows that start at `first_row`. index_select gathers whole rows (advanced indexing is several
        times slower here)."""
        bands = self.rows.bands[blocks] - first_row
        banded = across.index_select(-2, bands.flatten()).unflatten(-2, bands.shape)  # (..., row blocks, band, W)
        resized = torch.matmul(self.rows.weights[blocks].to(across.dtype), banded, out=out)  # (..., blocks, block, W)
        return resized.flatten(-3, -2)

    def logits(self, low_res: torch.Tensor) -> torch.Tensor:
        """Low-res logits (B, C, h, w) -> logits (B, C, H, W), as `postprocess_masks` (each (H, W) plane is
        contiguous; planes lie a few padding rows apart)."""
        planes = self._down(self._across(low_res.flatten(0, 1)))[:, : self.rows.size]
        return planes.unflatten(0, low_res.shape[:2])

    @torch.no_grad()  # thresholded masks carry no gradient
    def masks_into(self, low_res: torch.Tensor, threshold: float, out: torch.Tensor) -> None:
        """out (B, C, H, W) bool = `postprocess_masks(low_res) > threshold`, one plane at a time (its logits stay in
        the caches). On a CPU each plane computes only the window of blocks that read a low-res sample able to lift a
        pixel above the threshold; elsewhere `PLANE_GROUP` planes' column pass at a time."""
        planes = low_res.flatten(0, 1)
        targets = out.flatten(0, 1)
        blocks, block = self.rows.weights.shape[:2]
        buffer = planes.new_empty(blocks * block * self.columns.size)
        if planes.device.type == "cpu":
            samples = planes[:, : self.rows.reach, : self.columns.reach].detach().numpy()
            for plane, plane_samples, target in zip(planes, samples, targets):
                self._window_into(plane, active_span(plane_samples, threshold), threshold, target, buffer)
            return
        whole = buffer.view(blocks, block, self.columns.size)
        for first in range(0, len(planes), PLANE_GROUP):
            across = self._across(planes[first : first + PLANE_GROUP])
            for plane, target in zip(across, targets[first : first + PLANE_GROUP]):
                threshold_into(self._down(plane, out=whole)[: self.rows.size], threshold, target)

    def _window_into(
        self,
        plane: torch.Tensor,
        span: tuple[tuple[int, int], tuple[int, int]] | None,
        threshold: float,
        target: torch.Tensor,
        buffer: torch.Tensor,
    ) -> None:
        """target (H, W) bool = the resized plane (h, w) > threshold, computed in the blocks that read the low-res
        samples of `span` (`active_span`) and False elsewhere; buffer: room for the whole plane's logits."""
        row_blocks = None if span is None else self.rows.blocks_reading(*span[0])
        column_blocks = None if span is None else self.columns.blocks_reading(*span[1])
        if row_blocks is None or column_blocks is None:
            target.zero_()
            return
        rows, columns = self.rows.samples(row_blocks), self.columns.samples(column_blocks)
        bands = self.rows.bands[row_blocks]
        first_row, last_row = int(bands[0, 0]), int(bands[-1, -1])
        across = self._across(plane[None, first_row : last_row + 1], column_blocks)[0]  # (rows read, W')
        width = columns.stop - columns.start
        logits = buffer[: (row_blocks.stop - row_blocks.start) * self.rows.weights.shape[1] * width]
        logits = self._down(across, logits.view(-1, self.rows.weights.shape[1], width), row_blocks, first_row)
        if rows.stop - rows.start < target.shape[0] or width < target.shape[1]:
            target.zero_()
        threshold_into(logits[: rows.stop - rows.start], threshold, target[rows, columns])


def threshold_into(logits: torch.Tensor, threshold: float, out: torch.Tensor) -> None:
    """out (bool, the shape of logits; may be a strided view) = logits > threshold. On a CPU through NumPy, whose
    comparison into bool is vectorised (torch's is not there)."""
    if out.device.type == "cpu" and logits.device.type == "cpu":
        np.greater(logits.detach().numpy(), threshold, out=out.numpy())
    else:
        torch.gt(logits, threshold, out=out)
