"""compare.prepared: comparisons on one image with prepared backends cached, cancellation and missing models."""

import threading

import numpy as np
import pytest
from support.compare_support import DiskBackend, small_image
from support.fastsam_peer import ultralytics_selection

from compare.fastsam_rules import select_by_points
from mobile_sam.utils.cancel import Cancelled
from samkit.checkpoints import CheckpointError
from samkit.prompts import Prompts
from webapp.compare_prepared import PreparedBackends, compare_on_image

RADII = {"vit_t": 10.0, "vit_b": 7.0}


def _cache(calls: list) -> PreparedBackends:
    def prepare(name, variant, image):
        if name == "vit_h":
            raise CheckpointError("sam_vit_h_4b8939.pth is missing")
        calls.append(name)
        backend = DiskBackend(name, RADII[name])
        return backend, backend.prepare(image)["encoder_ms"]

    return PreparedBackends(prepare, max_items=4)


PROMPTS = [Prompts.from_lists([[40.0, 30.0]], [1]), Prompts.from_lists(boxes=[10.0, 10.0, 50.0, 40.0])]


def test_miou_is_the_mean_iou_of_the_masks_and_a_second_run_prepares_nothing():
    calls: list = []
    cache, image = _cache(calls), small_image()
    result = compare_on_image(image, PROMPTS, "vit_t", ["vit_b"], cache)
    expected = np.mean([(a & b).sum() / (a | b).sum() for a, b in zip(result.masks["vit_b"], result.masks["vit_t"])])
    assert [row.model for row in result.rows] == ["vit_t", "vit_b"] and result.rows[0].miou is None
    assert result.rows[1].miou == pytest.approx(expected) and len(result.masks["vit_b"]) == 2
    compare_on_image(image, PROMPTS[:1], "vit_t", ["vit_b"], cache)
    assert calls == ["vit_t", "vit_b"]


def test_a_missing_compared_model_gets_a_row_saying_why():
    result = compare_on_image(small_image(), PROMPTS, "vit_t", ["vit_h"], _cache([]), unavailable=(CheckpointError,))
    assert result.rows[1].status == "sam_vit_h_4b8939.pth is missing" and result.rows[1].miou is None


def test_a_cancelled_comparison_stops_before_the_next_model():
    cancel = threading.Event()
    calls: list = []
    cache = _cache(calls)

    def progress(fraction, text):
        if calls:  # the reference is prepared: stop now
            cancel.set()

    with pytest.raises(Cancelled):
        compare_on_image(small_image(), PROMPTS, "vit_t", ["vit_b"], cache, cancel=cancel, progress=progress)
    assert calls == ["vit_t"]


def test_no_prompts_is_a_readable_error():
    with pytest.raises(ValueError, match="Add at least one point or box"):
        compare_on_image(small_image(), [], "vit_t", ["vit_b"], _cache([]))


@pytest.fixture(scope="module")
def fastsam():
    """FastSAM-s's architecture with random weights at 128 px, keeping every detection."""
    from compare.backends import FastSamBackend
    from samkit.loading import ultralytics_architecture

    return FastSamBackend("s", model=ultralytics_architecture("fastsam-s"), device="cpu", image_size=128, confidence=0)


@pytest.mark.parametrize("rules", ["original", "ultralytics"])
def test_fastsam_masks_follow_the_chosen_rules_on_a_shared_prepared_backend(fastsam, rules):
    def prepare(name, variant, image):
        backend = DiskBackend(name, RADII[name]) if name == "vit_t" else fastsam
        return backend, backend.prepare(image)["encoder_ms"]

    prompts = [Prompts.from_lists([[40.0, 30.0], [100.0, 70.0]], [1, 0]), Prompts.from_lists([[60.5, 20.5]], [1])]
    result = compare_on_image(
        small_image(), prompts, "vit_t", ["fastsam-s"], PreparedBackends(prepare), fastsam_rules=rules
    )
    instances = fastsam.instances
    assert instances.shape[0] > 0
    for prompt, mask in zip(prompts, result.masks["fastsam-s"]):
        if rules == "ultralytics":
            expected = ultralytics_selection(instances, prompt.point_coords, prompt.point_labels)
        else:
            expected = select_by_points(instances, prompt.point_coords, prompt.point_labels, "original")
        assert np.array_equal(mask, expected)
    assert fastsam.rules == "original"  # the cached backend itself is left as it was


def test_unknown_fastsam_rules_are_a_readable_error():
    with pytest.raises(ValueError, match="FastSAM rules must be one of original, ultralytics"):
        compare_on_image(small_image(), PROMPTS, "vit_t", ["vit_b"], _cache([]), fastsam_rules="paper")
