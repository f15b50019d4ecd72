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


def localized_planes() -> torch.Tensor:
    """Low-res planes (K, 256, 256) as a trained decoder gives them: cones of positive logits (tiny, wide, at the
    frame's corners and at the edge of the part the resize reads), strongly negative far from them; plus one all
    negative, one a float step below the threshold, one with a single positive sample, one just under the largest
    magnitude's rounding margin, one holding NaN and one infinite."""
    rows, cols = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    centres = [(40, 60), (0, 0), (171, 255), (5, 130), (100, 3), (90, 200), (150, 20)]
    radii = [12, 6, 9, 1.5, 20, 60, 0.7]
    planes = [2.5 * (r - torch.hypot(rows - y, cols - x)) for (y, x), r in zip(centres, radii)]
    planes.append(torch.full((256, 256), -30.0))
    planes.append(torch.full((256, 256), -1e-7))
    single = torch.full((256, 256), -4.0)
    single[77, 201] = 0.25
    planes.append(single)
    margin = torch.full((256, 256), -20.0)
    margin[30:40, 50:60] = -1e-5  # within the margin: the window keeps it; still below the threshold
    planes.append(margin)
    nan, inf = torch.full((256, 256), -3.0), torch.full((256, 256), -3.0)
    nan[10, 10], inf[200, 100] = float("nan"), float("inf")
    return torch.stack(planes + [nan, inf])


@pytest.mark.parametrize(("input_size", "original_size"), SIZES)
@pytest.mark.parametrize("threshold", [0.0, 1.0, -1.0])
def test_masks_of_localized_logits_equal_the_official_resize(input_size, original_size, threshold):
    """Each plane is computed only where its pixels read samples near or above the threshold; the masks are the
    official ones (up to the threshold's rounding distance), and False everywhere else. (Finite planes: where an
    infinite sample meets a zero weight, the official resize makes NaN of 0 * inf and this one does not.)"""
    low_res = localized_planes()[:-2, None]
    expected = official_postprocess(low_res, 1024, input_size, original_size)
    masks = torch.ones(expected.shape, dtype=torch.bool)  # every pixel must be written
    MaskResize(256, 4, input_size, original_size).masks_into(low_res, threshold, masks)
    flipped = masks != (expected > threshold)
    assert ((expected[flipped] - threshold).abs() <= 1e-5).all()
    assert int(masks[:7].sum()) > 0 or original_size == (1, 1500)  # the cones do set pixels


def test_windowed_masks_equal_the_whole_planes_logits():
    """Computing a window of blocks rounds as the whole plane does: the same masks bit for bit (non-finite planes
    included: they are computed whole)."""
    low_res = localized_planes()[:, None]
    resize = MaskResize(256, 4, (683, 1024), (1200, 1800))
    masks = torch.zeros((len(low_res), 1, 1200, 1800), dtype=torch.bool)
    resize.masks_into(low_res, 0.0, masks)
    assert torch.equal(masks, resize.logits(low_res) > 0.0)
