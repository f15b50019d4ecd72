"""Display helpers: overlays, contours, prompt markers and cut-outs never touch their input."""

import numpy as np
import pytest

from samkit.drawing import cutout_rgba, draw_prompts, mask_colors, mask_contours, overlay_masks, paint_masks


def _image() -> np.ndarray:
    return np.full((40, 60, 3), 100, dtype=np.uint8)


def _square_mask() -> np.ndarray:
    mask = np.zeros((40, 60), dtype=bool)
    mask[10:30, 20:40] = True
    return mask


def test_mask_colors_are_reproducible_per_seed_and_distinct():
    first, again, other = mask_colors(6, seed=3), mask_colors(6, seed=3), mask_colors(6, seed=4)
    assert first.shape == (6, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert len({tuple(c) for c in first}) == 6


def test_overlay_changes_only_pixels_inside_the_mask_when_contours_are_off():
    image, mask = _image(), _square_mask()
    out = overlay_masks(image, [mask], colors=np.array([[255, 0, 0]], np.uint8), alpha=0.5, contour_thickness=0)
    assert (out[mask] != image[mask]).any(axis=-1).all()
    np.testing.assert_array_equal(out[~mask], image[~mask])
    np.testing.assert_array_equal(out[20, 30], [178, 50, 50])  # 100 * 0.5 + (255, 0, 0) * 0.5, rounded


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_one_mask_is_blended_as_float32_then_rounded(alpha):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)  # every value of every channel occurs
    mask = rng.random((60, 80)) > 0.4
    color = np.array([30, 144, 255], np.uint8)
    out = paint_masks(image, [mask], color[None], alpha, contour_thickness=0)
    blended = image.astype(np.float32) * np.float32(1.0 - alpha) + color.astype(np.float32) * np.float32(alpha)
    expected = np.where(mask[..., None], np.rint(blended).astype(np.uint8), image)
    np.testing.assert_array_equal(out, expected)


def test_overlay_draws_the_contour_on_the_mask_boundary():
    image, mask = _image(), _square_mask()
    out = overlay_masks(image, [mask], alpha=0.0, contour_thickness=1)
    assert (out[10, 25] > 200).all()  # top edge of the square is outlined in (anti-aliased) white
    np.testing.assert_array_equal(out[20, 30], image[20, 30])  # inside, away from the edge: untouched


def test_overlay_does_not_modify_the_input_image():
    image = _image()
    before = image.copy()
    overlay_masks(image, [_square_mask()])
    np.testing.assert_array_equal(image, before)


def test_overlay_rejects_a_mask_of_another_size():
    with pytest.raises(ValueError, match="does not match"):
        overlay_masks(_image(), [np.zeros((10, 10), bool)])


def test_mask_contours_finds_the_outer_boundary_and_the_hole():
    mask = _square_mask()
    mask[18:22, 28:32] = False
    assert len(mask_contours(mask)) == 2


def test_draw_prompts_marks_points_and_boxes_on_a_copy():
    image = _image()
    before = image.copy()
    out = draw_prompts(image, [[10, 10]], [1], [[20, 5, 50, 35]])
    np.testing.assert_array_equal(image, before)
    assert (out[10, 10] != image[10, 10]).any()  # the point marker
    assert (out[5, 35] != image[5, 35]).any()  # the box's top edge
    np.testing.assert_array_equal(out[20, 35], image[20, 35])  # inside the box: untouched


def test_draw_prompts_uses_different_colours_for_foreground_and_background():
    image = _image()
    fg = draw_prompts(image, [[30, 20]], [1])[20, 30]
    bg = draw_prompts(image, [[30, 20]], [0])[20, 30]
    assert not np.array_equal(fg, bg)


def test_draw_prompts_rejects_a_label_count_mismatch():
    with pytest.raises(ValueError, match="labels"):
        draw_prompts(_image(), [[1, 1], [2, 2]], [1])


def test_cutout_is_transparent_outside_the_mask_and_keeps_the_pixels_inside():
    image, mask = _image(), _square_mask()
    rgba = cutout_rgba(image, mask)
    assert rgba.shape == (40, 60, 4)
    np.testing.assert_array_equal(rgba[..., 3], mask * 255)
    np.testing.assert_array_equal(rgba[..., :3], image)


def test_paint_masks_draws_later_masks_on_top():
    image, big = _image(), np.ones((40, 60), dtype=bool)
    small = _square_mask()
    colors = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    out = paint_masks(image, iter([big, small]), colors, alpha=1.0, contour_thickness=0)
    assert out[20, 30].tolist() == [0, 0, 255] and out[0, 0].tolist() == [255, 0, 0]


def test_paint_masks_rejects_more_masks_than_colors():
    with pytest.raises(ValueError):
        paint_masks(_image(), [_square_mask(), _square_mask()], np.zeros((1, 3), np.uint8))
