"""`MaskResize` against the official resize: torch's bilinear interpolation to the input frame, the crop, then
to the original size (two `F.interpolate` calls, as the official `Sam.postprocess_masks` writes them)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mobile_sam.utils import mask_resize
from mobile_sam.utils.mask_resize import MaskResize, bilinear_matrix


def official_postprocess(low_res: torch.Tensor, frame: int, input_size, original_size) -> torch.Tensor:
    full = F.interpolate(low_res, (frame, frame), mode="bilinear", align_corners=False)
    kept = full[..., : input_size[0], : input_size[1]]
    return F.interpolate(kept, original_size, mode="bilinear", align_corners=False)


SIZES = [
    ((683, 1024), (1200, 1800)),  # landscape, upsampled
    ((1024, 576), (1920, 1080)),  # portrait
    ((576, 1024), (603, 1072)),  # the conformance photo
    ((1024, 683), (1024, 683)),  # original size = input size: the second resize is the identity
    ((1024, 1024), (300, 300)),  # downsampled
    ((1, 1024), (1, 1500)),  # one row
    ((1024, 5), (1400, 7)),  # a few columns
    ((768, 1024), (3000, 4000)),  # larger than the frame
]


@pytest.mark.parametrize(("input_size", "original_size"), SIZES)
def test_logits_and_masks_equal_the_official_resize(input_size, original_size):
    torch.manual_seed(0)
    low_res = torch.randn(2, 3, 256, 256) * 8
    expected = official_postprocess(low_res, 1024, input_size, original_size)
    resize = MaskResize(256, 4, input_size, original_size)
    logits = resize.logits(low_res)
    assert logits.shape == expected.shape
    # The same weights, summed in another order: float32 rounding of values up to ~30.
    assert (logits - expected).abs().max() <= 1e-5
    masks = torch.zeros(expected.shape, dtype=torch.bool)
    resize.masks_into(low_res, 0.0, masks)
    flipped = masks != (expected > 0)
    assert (expected[flipped].abs() <= 1e-5).all()  # only values at the threshold's rounding distance


def test_masks_are_thresholded_like_the_logits_in_any_plane_group(monkeypatch):
    torch.manual_seed(1)
    low_res = torch.randn(5, 3, 256, 256)
    resize = MaskResize(256, 4, (683, 1024), (120, 180))
    masks = torch.zeros((5, 3, 120, 180), dtype=torch.bool)
    monkeypatch.setattr(mask_resize, "PLANE_GROUP", 4)
    resize.masks_into(low_res, 0.5, masks)
    assert torch.equal(masks, resize.logits(low_res) > 0.5)


def test_the_low_res_part_the_resize_reads_is_enough():
    """Callers may pass only the top-left part of the low-res grid that `low_res_extent` names."""
    torch.manual_seed(2)
    low_res = torch.randn(1, 1, 256, 256)
    resize = MaskResize(256, 4, (683, 1024), (1200, 1800))
    part = low_res[..., :172, :256].clone()
    assert torch.equal(resize.logits(part), resize.logits(low_res))


@pytest.mark.parametrize(("in_size", "out_size"), [(256, 1024), (683, 1200), (1024, 1800), (576, 603), (300, 451)])
def test_bilinear_matrix_is_torchs_interpolation_of_unit_inputs(in_size, out_size):
    units = torch.eye(in_size).view(in_size, 1, in_size, 1)
    interpolated = F.interpolate(units, (out_size, 1), mode="bilinear", align_corners=False)[:, 0, :, 0].T
    # Equal where torch's kernel computes source coordinates with a fused multiply-add (AVX2 builds, as here);
    # rounded twice otherwise, which moves a weight by at most one float32 step at 1024.
    assert (torch.from_numpy(bilinear_matrix(in_size, out_size)).float() - interpolated).abs().max() <= 2**-13
