"""Seeded prompt protocols: the paper's two-point pairs, random points, jittered boxes, user prompts."""

import json

import numpy as np
import pytest

from samkit.prompts import Prompts
from samkit.protocols import (
    jittered_box,
    load_user_prompts,
    mask_box,
    point_pair_cases,
    protocol_rng,
    random_point_cases,
    sample_point_pair,
)

SIZE = (603, 1072)  # (H, W) of a typical photo


def _inside(xy, size):
    h, w = size
    return 0 <= xy[0] <= w - 1 and 0 <= xy[1] <= h - 1


@pytest.mark.parametrize("distance", [100, 200, 300, 400, 500])
def test_point_pairs_are_the_requested_distance_apart(distance):
    rng = protocol_rng(0, 0)
    for _ in range(50):
        p = sample_point_pair(SIZE, distance, rng)
        assert np.linalg.norm(p.point_coords[0] - p.point_coords[1]) == pytest.approx(distance)


def test_point_pairs_lie_inside_the_image():
    rng = protocol_rng(1, 0)
    for distance in (100, 500, 1000):
        for _ in range(50):
            p = sample_point_pair(SIZE, distance, rng)
            assert _inside(p.point_coords[0], SIZE) and _inside(p.point_coords[1], SIZE)


def test_point_pairs_are_one_foreground_then_one_background_point():
    p = sample_point_pair(SIZE, 200, protocol_rng(0, 0))
    assert p.point_labels.tolist() == [1, 0]


def test_point_pairs_are_reproducible_for_a_seed():
    a = point_pair_cases(SIZE, [100, 300], 5, protocol_rng(7, 2))
    b = point_pair_cases(SIZE, [100, 300], 5, protocol_rng(7, 2))
    assert all(np.array_equal(x.prompt.point_coords, y.prompt.point_coords) for x, y in zip(a, b))


def test_point_pairs_differ_between_seeds():
    a = sample_point_pair(SIZE, 100, protocol_rng(0, 0))
    b = sample_point_pair(SIZE, 100, protocol_rng(1, 0))
    assert not np.array_equal(a.point_coords, b.point_coords)


def test_point_pair_cases_group_by_distance():
    cases = point_pair_cases(SIZE, [100, 500], 3, protocol_rng(0, 0))
    assert [c.condition for c in cases] == ["d=100"] * 3 + ["d=500"] * 3
    assert [c.distance for c in cases] == [100.0] * 3 + [500.0] * 3


def test_distance_longer_than_the_diagonal_is_rejected():
    with pytest.raises(ValueError, match="do not fit"):
        sample_point_pair((50, 60), 100, protocol_rng(0, 0))


def test_random_points_are_single_foreground_points_inside_the_image():
    for case in random_point_cases(SIZE, 20, protocol_rng(0, 0)):
        assert case.prompt.point_labels.tolist() == [1]
        assert _inside(case.prompt.point_coords[0], SIZE)


def test_mask_box_is_the_tight_box():
    mask = np.zeros((20, 30), bool)
    mask[5:9, 10:21] = True
    assert mask_box(mask).tolist() == [10, 5, 20, 8]


def test_mask_box_of_empty_mask_is_none():
    assert mask_box(np.zeros((5, 5), bool)) is None


def test_jittered_box_stays_near_the_mask_and_inside_the_image():
    mask = np.zeros((200, 300), bool)
    mask[50:150, 100:250] = True
    rng = protocol_rng(0, 0)
    for _ in range(100):
        box = jittered_box(mask, rng)
        assert np.all(np.abs(box - mask_box(mask)) <= 20.0)
        assert 0 <= box[0] <= box[2] <= 299 and 0 <= box[1] <= box[3] <= 199


def test_jittered_box_moves_the_tight_box():
    mask = np.zeros((200, 300), bool)
    mask[50:150, 100:250] = True
    assert not np.array_equal(jittered_box(mask, protocol_rng(0, 0)), mask_box(mask))


def test_user_prompts_load_from_json(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"a.jpg": [{"points": [[3, 4]], "labels": [1]}, {"boxes": [[1, 2, 30, 40]]}]}))
    prompts = load_user_prompts(path)
    assert prompts["a.jpg"][0].point_labels.tolist() == [1]
    assert prompts["a.jpg"][1].box.tolist() == [1, 2, 30, 40]


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ({"points": [[3, 4]]}, "1 points but 0 labels"),
        ({"boxes": [[1, 2, 30, 40], [5, 6, 7, 8]]}, "several boxes"),
        ({"box": [1, 2, 30, 40]}, "Unknown prompt keys"),
    ],
)
def test_user_prompts_follow_the_one_prompt_schema(tmp_path, prompt, message):
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"a.jpg": [prompt]}))
    with pytest.raises(ValueError, match=message):
        load_user_prompts(path)


def test_user_prompts_with_unknown_keys_are_rejected(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"a.jpg": [{"pointz": [[3, 4]]}]}))
    with pytest.raises(ValueError, match="Unknown prompt keys"):
        load_user_prompts(path)


def test_prompt_round_trips_through_a_dict():
    p = Prompts.from_lists([[1.5, 2.0], [3, 4]], [1, 0], [0, 0, 5, 6])
    q = Prompts.from_json(p.to_dict())
    assert q.to_dict() == p.to_dict()


def test_prompt_needs_points_or_a_box():
    with pytest.raises(ValueError, match="at least one point or box"):
        Prompts.from_lists().checked((10, 10))
