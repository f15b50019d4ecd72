"""Backends over real model code: a tiny SAM configuration, MobileSAM and FastSAM with random weights."""

import copy
import json
import math

import numpy as np
import pytest
import torch
from support.compare_support import small_image, tiny_sam
from support.fastsam_peer import ultralytics_selection

from compare.backends import FastSamBackend, MobileSamBackend, SamBackend
from compare.fastsam_rules import select_by_box, select_by_points
from compare.models import BuildOptions, architecture_parameter_counts, build_backend
from compare.params import build_without_weights
from compare.runner import ProtocolSpec, run_comparison
from mobile_sam import sam_model_registry
from samkit.checkpoints import CheckpointError, load_ultralytics_checkpoint
from samkit.loading import ultralytics_architecture
from samkit.prompts import Prompts

IMAGE = small_image()
ONE_POINT = Prompts.from_lists([[40, 30]], [1])
TWO_POINTS = Prompts.from_lists([[40, 30], [100, 70]], [1, 0])


@pytest.fixture(scope="module")
def sam():
    backend = SamBackend("vit_b", model=tiny_sam(), device="cpu", name="tiny")
    backend.prepare(IMAGE)
    return backend


@pytest.fixture(scope="module")
def fastsam_network():
    """FastSAM-s's architecture (YOLOv8s-seg, one class) with random weights, built once from ultralytics' YAML."""
    return ultralytics_architecture("fastsam-s")


@pytest.fixture(scope="module")
def fastsam(fastsam_network):
    return FastSamBackend("s", model=fastsam_network, device="cpu", image_size=128, confidence=0.0)


def test_sam_mask_is_boolean_at_the_image_size(sam):
    result = sam.segment(TWO_POINTS)
    assert result.mask.shape == IMAGE.shape[:2] and result.mask.dtype == bool


def test_sam_one_point_keeps_the_best_of_three_masks(sam):
    masks, scores, _ = sam.predictor.predict(
        point_coords=ONE_POINT.point_coords, point_labels=ONE_POINT.point_labels, multimask_output=True
    )
    result = sam.segment(ONE_POINT)
    assert np.array_equal(result.mask, masks[np.argmax(scores)]) and result.score == pytest.approx(scores.max())


def test_sam_several_points_ask_for_a_single_mask(sam):
    masks, scores, _ = sam.predictor.predict(
        point_coords=TWO_POINTS.point_coords, point_labels=TWO_POINTS.point_labels, multimask_output=False
    )
    result = sam.segment(TWO_POINTS)
    assert np.array_equal(result.mask, masks[0]) and result.score == pytest.approx(scores[0])


def test_sam_timings_are_positive(sam):
    assert sam.prepare(IMAGE)["encoder_ms"] > 0
    assert sam.segment(ONE_POINT).timings["decoder_ms"] > 0


def test_segment_before_prepare_is_an_error():
    backend = SamBackend("vit_b", model=tiny_sam(), device="cpu")
    with pytest.raises(RuntimeError, match="prepare"):
        backend.segment(ONE_POINT)


def test_identical_sam_backends_give_miou_one():
    model = tiny_sam(seed=3)
    reference = SamBackend("vit_b", model=model, device="cpu", name="a")
    other = SamBackend("vit_b", model=copy.deepcopy(model), device="cpu", name="b")
    run = run_comparison(
        [("img.png", IMAGE)], reference, [other], ProtocolSpec("points2", distances=(30.0,), prompts_per_image=3)
    )
    assert [c.iou for c in run.result.cases if c.model == "b"] == [1.0, 1.0, 1.0]


def test_mobile_sam_backend_builds_tinyvit_with_random_weights():
    backend = MobileSamBackend(random_weights=True, device="cpu")
    counts = backend.parameter_counts()
    assert backend.name == "vit_t" and counts.unused > 0
    assert counts.encoder + counts.decoder + counts.unused == counts.total


def test_mobile_sam_backend_loads_an_explicit_checkpoint(conformance_dir):
    path = conformance_dir / "mobile_sam_vit_t_seed0.pt"
    backend = MobileSamBackend(path, device="cpu")
    expected = torch.load(path, map_location="cpu", weights_only=True)
    loaded = backend.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())


def test_missing_checkpoint_error_says_how_to_get_it(tmp_path):
    with pytest.raises(CheckpointError) as info:
        SamBackend("vit_b", checkpoint_dir=tmp_path, device="cpu")
    message = str(info.value)
    assert "sam_vit_b_01ec64.pth" in message and str(tmp_path) in message and "https://" in message


def test_checkpoint_and_random_weights_together_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="at most one"):
        SamBackend("vit_b", checkpoint=tmp_path / "x.pth", random_weights=True)


def test_fastsam_masks_are_instances_at_the_image_size(fastsam):
    fastsam.prepare(IMAGE)
    assert fastsam.instances.ndim == 3 and fastsam.instances.shape[1:] == IMAGE.shape[:2]
    assert fastsam.instances.shape[0] > 0  # confidence 0 keeps every detection


def test_fastsam_point_prompt_follows_the_point_rule(fastsam):
    fastsam.prepare(IMAGE)
    expected = select_by_points(fastsam.instances, TWO_POINTS.point_coords, TWO_POINTS.point_labels)
    assert np.array_equal(fastsam.segment(TWO_POINTS).mask, expected)


def test_fastsam_answers_under_the_chosen_rules(fastsam):
    fastsam.prepare(IMAGE)
    instances, box = fastsam.instances, np.array([10.5, 10.5, 60.0, 50.0])
    assert fastsam.rules == "original"
    original = select_by_points(instances, TWO_POINTS.point_coords, TWO_POINTS.point_labels, "original")
    assert np.array_equal(fastsam.segment(TWO_POINTS).mask, original)
    view = fastsam.with_rules("ultralytics")
    by_ultralytics = ultralytics_selection(instances, TWO_POINTS.point_coords, TWO_POINTS.point_labels)
    assert np.array_equal(view.segment(TWO_POINTS).mask, by_ultralytics)
    assert np.array_equal(view.segment(Prompts.from_lists(boxes=box)).mask, ultralytics_selection(instances, box=box))
    assert np.array_equal(fastsam.segment(Prompts.from_lists(boxes=box)).mask, select_by_box(instances, box))
    assert fastsam.rules == "original" and view.instances is instances


def test_fastsam_unknown_rules_are_refused(fastsam_network, fastsam):
    with pytest.raises(ValueError, match="original, ultralytics"):
        FastSamBackend("s", model=fastsam_network, device="cpu", image_size=64, rules="paper")
    with pytest.raises(ValueError, match="original, ultralytics"):
        fastsam.with_rules("Original")


def test_fastsam_finding_nothing_gives_an_empty_mask(fastsam_network):
    backend = FastSamBackend("s", model=fastsam_network, device="cpu", image_size=128, confidence=1.0)
    backend.prepare(IMAGE)
    result = backend.segment(ONE_POINT)
    assert backend.instances.shape[0] == 0
    assert result.mask.shape == IMAGE.shape[:2] and not result.mask.any() and result.score == 0.0


def test_fastsam_timings_are_positive(fastsam):
    assert fastsam.prepare(IMAGE)["encoder_ms"] > 0
    assert fastsam.segment(Prompts.from_lists(boxes=[10, 10, 60, 50])).timings["decoder_ms"] > 0


def test_fastsam_builds_from_the_ultralytics_yaml_with_random_weights():
    backend = FastSamBackend("s", random_weights=True, device="cpu", image_size=64)
    assert backend.name == "fastsam-s" and backend.parameter_counts().total > 10_000_000


def test_fastsam_keeps_the_configured_thread_count(fastsam_network):
    from ultralytics.utils import NUM_THREADS

    before = torch.get_num_threads()
    wanted = NUM_THREADS + 1  # differs from what ultralytics sets
    try:
        torch.set_num_threads(wanted)
        backend = FastSamBackend("s", model=fastsam_network, device="cpu", image_size=64)
        backend.prepare(IMAGE)
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)


def test_fastsam_loads_an_ultralytics_checkpoint_from_an_explicit_path(tmp_path):
    from ultralytics.nn.tasks import SegmentationModel

    network = SegmentationModel("yolov8n-seg.yaml", nc=1, verbose=False)
    torch.save({"model": network}, tmp_path / "tiny.pt")
    loaded = load_ultralytics_checkpoint(tmp_path / "tiny.pt")
    expected = network.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


def test_fastsam_variant_must_be_s_or_x():
    with pytest.raises(ValueError, match="variant"):
        FastSamBackend("m", random_weights=True)


def test_build_backend_gives_fastsam_the_chosen_rules():
    options = BuildOptions(device="cpu", random_weights=True, fastsam_rules="ultralytics")
    assert build_backend("fastsam-s", options).rules == "ultralytics"


def test_build_backend_knows_aliases():
    backend = build_backend("mobile_sam", BuildOptions(device="cpu", random_weights=True))
    assert isinstance(backend, MobileSamBackend)


def _official_parameter_total(conformance_dir, model_type, buffer_names):
    shapes = json.loads((conformance_dir / "official_state_dict_shapes.json").read_text())[model_type]
    return sum(math.prod(shape) for key, shape in shapes.items() if key not in buffer_names)


@pytest.mark.parametrize("model_type", ["vit_b", "vit_h", "vit_t"])
def test_architecture_counts_match_the_official_checkpoint(conformance_dir, model_type):
    model = build_without_weights(lambda: sam_model_registry[model_type](None))
    buffers = {name for name, _ in model.named_buffers()}
    counts = architecture_parameter_counts(model_type)
    assert counts.total == _official_parameter_total(conformance_dir, model_type, buffers)


def test_tinyvit_classifier_head_is_counted_as_unused():
    counts = architecture_parameter_counts("vit_t")
    assert counts.unused == 320 * 1000 + 1000 + 2 * 320  # Linear(320, 1000) and LayerNorm(320)
