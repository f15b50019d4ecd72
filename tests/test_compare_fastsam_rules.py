"""FastSAM's prompt rules against their two peers: the original FastSAM code's outputs (conformance data) and
ultralytics' FastSAMPredictor.prompt (stored and live)."""

from pathlib import Path

import numpy as np
import pytest
from support.fastsam_peer import ultralytics_selection

from compare.fastsam_rules import DEFAULT_FASTSAM_RULES, FASTSAM_RULES, select_by_box, select_by_points

DATA = np.load(Path(__file__).parent / "conformance_data" / "fastsam_rules" / "fastsam_rules.npz")
INSTANCES = DATA["instances"]
POINT_CASES = sorted({key.split("/")[1] for key in DATA.files if key.startswith("points/")})
BOX_CASES = sorted({key.split("/")[1] for key in DATA.files if key.startswith("box/")})


@pytest.mark.parametrize("rules", FASTSAM_RULES)
@pytest.mark.parametrize("case", POINT_CASES)
def test_point_rule_gives_the_peer_output(case, rules):
    points, labels = DATA[f"points/{case}/points"], DATA[f"points/{case}/labels"]
    assert np.array_equal(select_by_points(INSTANCES, points, labels, rules), DATA[f"points/{case}/{rules}"])


@pytest.mark.parametrize("rules", FASTSAM_RULES)
@pytest.mark.parametrize("case", BOX_CASES)
def test_box_rule_gives_the_peer_output(case, rules):
    assert np.array_equal(select_by_box(INSTANCES, DATA[f"box/{case}/box"], rules), DATA[f"box/{case}/{rules}"])


def test_the_two_rule_sets_differ_on_the_data_and_original_is_the_default():
    differ = [
        c for c in POINT_CASES if not np.array_equal(DATA[f"points/{c}/original"], DATA[f"points/{c}/ultralytics"])
    ]
    assert {"bg_then_fg", "bg_only", "overlap_of_equal_areas"} <= set(differ)
    assert DEFAULT_FASTSAM_RULES == "original" and set(FASTSAM_RULES) == {"original", "ultralytics"}


def _random_instances(rng: np.random.Generator, k: int, h: int = 20, w: int = 28) -> np.ndarray:
    """k overlapping random rectangles and ellipses."""
    yy, xx = np.mgrid[0:h, 0:w]
    masks = np.zeros((k, h, w), dtype=bool)
    for index in range(k):
        y0, x0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
        y1, x1 = rng.integers(y0 + 1, h + 1), rng.integers(x0 + 1, w + 1)
        if index % 2:
            masks[index, y0:y1, x0:x1] = True
        else:
            cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2 + 0.5, (x1 - x0) / 2 + 0.5
            masks[index] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return masks


@pytest.mark.parametrize("seed", range(40))
def test_ultralytics_rules_match_ultralytics_live_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    instances = _random_instances(rng, int(rng.integers(1, 7)))
    _, h, w = instances.shape
    n = int(rng.integers(1, 5))
    points = rng.uniform([-3, -3], [w + 3, h + 3], (n, 2))  # fractional, some outside the image
    labels = rng.integers(0, 2, n)
    box = np.sort(rng.uniform(-4, max(h, w) + 4, (2, 2)), axis=0).T.reshape(-1)[[0, 2, 1, 3]]
    expected_points = ultralytics_selection(instances, points=points, labels=labels)
    assert np.array_equal(select_by_points(instances, points, labels, "ultralytics"), expected_points)
    expected_box = ultralytics_selection(instances, box=box)
    assert np.array_equal(select_by_box(instances, box, "ultralytics"), expected_box)


@pytest.mark.parametrize("rules", FASTSAM_RULES)
def test_no_instances_give_an_empty_mask(rules):
    empty = np.zeros((0, 20, 30), bool)
    assert not select_by_points(empty, np.array([[5, 5]]), np.array([1]), rules).any()
    out = select_by_box(empty, np.array([0, 0, 5, 5]), rules)
    assert out.shape == (20, 30) and not out.any()


def test_original_rules_clip_points_outside_the_image_to_its_edge():
    """The original code raises for points past the image and wraps negative ones around; here they are clipped."""
    outside = select_by_points(INSTANCES, np.array([[-4, 19], [40, 30]]), np.array([1, 1]), "original")
    on_edge = select_by_points(INSTANCES, np.array([[0, 19], [31, 23]]), np.array([1, 1]), "original")
    assert np.array_equal(outside, on_edge) and outside.any()


def test_original_rules_round_fractional_points_to_the_nearest_pixel():
    # (2.6, 1.6) rounds to (3, 2), inside instance 1 (rows 2..19, cols 2..21); truncated it would be (2, 1), outside
    out = select_by_points(INSTANCES, np.array([[2.6, 1.6]]), np.array([1]), "original")
    assert np.array_equal(out, INSTANCES[1])
    assert not select_by_points(INSTANCES, np.array([[2.6, 1.6]]), np.array([1]), "ultralytics").any()


def test_unknown_rules_are_refused_by_name():
    with pytest.raises(ValueError, match="original, ultralytics"):
        select_by_points(INSTANCES, np.array([[5, 5]]), np.array([1]), "fastsam")
    with pytest.raises(ValueError, match="original, ultralytics"):
        select_by_box(INSTANCES, np.array([0, 0, 5, 5]), "paper")
