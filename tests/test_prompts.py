"""Interactive prompts: parsing, validation and grouping into predictor calls."""

import numpy as np
import pytest

from samkit.prompts import Prompts


def test_from_json_parses_points_labels_and_boxes():
    prompts = Prompts.from_json('{"points": [[1, 2], [3, 4]], "labels": [1, 0], "boxes": [[5, 6, 7, 8]]}')
    np.testing.assert_array_equal(prompts.points, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(prompts.labels, [1, 0])
    np.testing.assert_array_equal(prompts.boxes, [[5, 6, 7, 8]])


def test_box_corners_in_any_order_are_normalised_to_xyxy():
    prompts = Prompts.from_lists(boxes=[[30, 40, 10, 5]])
    np.testing.assert_array_equal(prompts.boxes, [[10, 5, 30, 40]])


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"point": [[1, 2]]}', "Unknown prompt keys"),
        ('{"points": [[1, 2]], "labels": []}', "one label per point"),
        ('{"points": [[1, 2]], "labels": [2]}', "must be 1"),
        ('{"points": [[1, 2, 3]], "labels": [1]}', "form"),
        ('{"boxes": [["a", 1, 2, 3]]}', "list of numbers"),
    ],
)
def test_malformed_json_prompts_raise_a_readable_value_error(text, message):
    with pytest.raises(ValueError, match=message):
        Prompts.from_json(text)


def test_validate_rejects_empty_prompts():
    with pytest.raises(ValueError, match="at least one point or box"):
        Prompts.from_lists().validate((10, 10))


def test_validate_rejects_a_zero_area_box():
    with pytest.raises(ValueError, match="zero area"):
        Prompts.from_lists(boxes=[[5, 5, 5, 9]]).validate((10, 10))


def test_validate_rejects_a_point_outside_the_image():
    with pytest.raises(ValueError, match="outside"):
        Prompts.from_lists([[10, 3]], [1]).validate((10, 10))


def test_validate_rejects_only_background_points():
    with pytest.raises(ValueError, match="Only background"):
        Prompts.from_lists([[1, 1]], [0]).validate((10, 10))


def test_points_and_a_single_box_form_one_group():
    groups, unused = Prompts.from_lists([[1, 1], [50, 50]], [1, 0], [[0, 0, 5, 5]]).groups()
    assert len(groups) == 1 and len(groups[0].points) == 2 and groups[0].box is not None and len(unused) == 0


def test_several_boxes_give_one_group_each_with_the_points_inside_them():
    prompts = Prompts.from_lists([[2, 2], [22, 22], [50, 50]], [1, 0, 1], [[0, 0, 10, 10], [20, 20, 30, 30]])
    groups, unused = prompts.groups()
    assert len(groups) == 2
    np.testing.assert_array_equal(groups[0].points, [[2, 2]])
    np.testing.assert_array_equal(groups[1].labels, [0])
    np.testing.assert_array_equal(unused, [2])


def test_to_dict_round_trips_through_from_json():
    prompts = Prompts.from_lists([[1.5, 2]], [1], [[0, 0, 4, 4]])
    again = Prompts.from_json(prompts.to_dict())
    np.testing.assert_array_equal(again.points, prompts.points)
    np.testing.assert_array_equal(again.boxes, prompts.boxes)


def test_checked_clips_boxes_to_the_image_and_keeps_points():
    prompts = Prompts.from_lists([[3, 4]], [1], [[-5, 2, 30, 8], [8, -1, 2, 40]]).checked((10, 20))
    np.testing.assert_array_equal(prompts.boxes, [[0, 2, 20, 8], [2, 0, 8, 10]])
    np.testing.assert_array_equal(prompts.points, [[3, 4]])
    np.testing.assert_array_equal(prompts.labels, [1])


@pytest.mark.parametrize(
    "points, labels, boxes, message",
    [
        ([[20, 3]], [1], [], "outside"),
        ([[-0.5, 3]], [1], [], "outside"),
        ([], [], [[21, 0, 30, 5]], "outside"),
        ([], [], [[4, 4, 4, 9]], "zero area"),
        ([], [], [], "at least one"),
    ],
)
def test_checked_rejects_what_validate_rejects(points, labels, boxes, message):
    with pytest.raises(ValueError, match=message):
        Prompts.from_lists(points, labels, boxes).checked((10, 20))
