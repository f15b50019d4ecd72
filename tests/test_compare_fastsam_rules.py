"""FastSAM's prompt rules on hand-built instance masks."""

import numpy as np

from compare.fastsam_rules import select_by_box, select_by_points

H, W = 20, 30


def _instances():
    """0: a large rectangle; 1: a small square inside 0; 2: a separate blob; 3: a bar overlapping 0's corner."""
    masks = np.zeros((4, H, W), bool)
    masks[0, 2:18, 2:16] = True
    masks[1, 5:10, 5:10] = True
    masks[2, 4:12, 20:28] = True
    masks[3, 14:18, 12:24] = True
    return masks


def test_point_inside_two_instances_selects_their_union():
    masks = _instances()
    out = select_by_points(masks, np.array([[7, 7]]), np.array([1]))
    assert np.array_equal(out, masks[0] | masks[1])


def test_foreground_points_in_separate_instances_select_both():
    masks = _instances()
    out = select_by_points(masks, np.array([[3, 15], [24, 8]]), np.array([1, 1]))
    assert np.array_equal(out, masks[0] | masks[2])


def test_negative_point_removes_the_pixels_of_the_instance_containing_it():
    masks = _instances()
    out = select_by_points(masks, np.array([[3, 3], [20, 15]]), np.array([1, 0]))
    assert np.array_equal(out, masks[0] & ~masks[3])


def test_instance_containing_both_a_positive_and_a_negative_point_is_not_selected():
    masks = _instances()
    out = select_by_points(masks, np.array([[3, 3], [12, 4]]), np.array([1, 0]))
    assert not out.any()


def test_point_outside_every_instance_gives_an_empty_mask():
    out = select_by_points(_instances(), np.array([[29, 19]]), np.array([1]))
    assert out.shape == (H, W) and not out.any()


def test_points_with_no_instances_give_an_empty_mask():
    out = select_by_points(np.zeros((0, H, W), bool), np.array([[5, 5]]), np.array([1]))
    assert out.shape == (H, W) and not out.any()


def test_box_selects_the_instance_with_the_highest_iou():
    masks = _instances()
    assert np.array_equal(select_by_box(masks, np.array([5, 5, 9, 9])), masks[1])
    assert np.array_equal(select_by_box(masks, np.array([2, 2, 15, 17])), masks[0])


def test_box_over_no_instance_gives_an_empty_mask():
    masks = np.zeros((1, H, W), bool)
    masks[0, 0:3, 0:3] = True
    assert not select_by_box(masks, np.array([20, 10, 29, 19])).any()


def test_box_with_no_instances_gives_an_empty_mask():
    out = select_by_box(np.zeros((0, H, W), bool), np.array([0, 0, 5, 5]))
    assert out.shape == (H, W) and not out.any()
