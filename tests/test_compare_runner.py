"""The comparison runner, on model-free fake backends."""

import numpy as np
import pytest
from support.compare_support import DiskBackend, small_image

from compare.runner import ProtocolSpec, run_comparison
from samkit.prompts import Prompts

IMAGES = [("a.png", small_image(seed=0)), ("b.png", small_image(seed=1))]


def _run(spec, reference=None, models=None, **kwargs):
    reference = reference or DiskBackend("ref", 20)
    models = models if models is not None else [DiskBackend("same", 20), DiskBackend("small", 8)]
    return run_comparison(IMAGES, reference, models, spec, **kwargs)


def test_identical_models_agree_perfectly():
    run = _run(ProtocolSpec("points2", distances=(20.0, 40.0), prompts_per_image=3))
    assert all(c.iou == 1.0 for c in run.result.cases if c.model == "same")


def test_different_models_agree_less():
    run = _run(ProtocolSpec("point", prompts_per_image=3))
    assert all(c.iou < 1.0 for c in run.result.cases if c.model == "small")


def test_every_model_answers_every_prompt():
    run = _run(ProtocolSpec("points2", distances=(20.0, 40.0), prompts_per_image=3))
    for model in ("ref", "same", "small"):
        assert len([c for c in run.result.cases if c.model == model]) == 2 * 2 * 3


def test_points2_records_carry_the_distance():
    run = _run(ProtocolSpec("points2", distances=(20.0, 40.0), prompts_per_image=2))
    for case in run.result.cases:
        (fx, fy), (bx, by) = case.prompt["points"]
        assert np.hypot(fx - bx, fy - by) == pytest.approx(case.distance)
        assert case.condition == f"d={case.distance:g}"


def test_prompts_are_reproducible_for_a_seed():
    a = _run(ProtocolSpec("points2", distances=(30.0,), prompts_per_image=4), seed=3)
    b = _run(ProtocolSpec("points2", distances=(30.0,), prompts_per_image=4), seed=3)
    assert [c.prompt for c in a.result.cases] == [c.prompt for c in b.result.cases]


def test_prompts_change_with_the_seed():
    a = _run(ProtocolSpec("point", prompts_per_image=4), seed=0)
    b = _run(ProtocolSpec("point", prompts_per_image=4), seed=1)
    assert [c.prompt for c in a.result.cases] != [c.prompt for c in b.result.cases]


def test_encoder_is_timed_once_per_image():
    reference, model = DiskBackend("ref", 20), DiskBackend("m", 10)
    run = _run(ProtocolSpec("point", prompts_per_image=5), reference, [model], warmup=2)
    for name in ("ref", "m"):
        assert [r.image for r in run.result.encoder_runs if r.model == name] == ["a.png", "b.png"]
    assert model.prepare_calls == 2 + 2  # two warm-up runs on the first image, then one per image


def test_repeats_time_the_encoder_several_times_per_image():
    run = _run(ProtocolSpec("point", prompts_per_image=1), repeats=3, warmup=0)
    assert len([r for r in run.result.encoder_runs if r.model == "ref"]) == 2 * 3


def test_box_prompts_are_jittered_around_the_reference_mask():
    reference = DiskBackend("ref", 15)
    run = _run(ProtocolSpec("box", prompts_per_image=4), reference, [DiskBackend("m", 15)])
    boxes = [c for c in run.result.cases if c.model == "ref"]
    assert len(boxes) == 2 * 4 and all(not c.prompt["points"] for c in boxes)
    for case in boxes:
        (box,) = np.array(case.prompt["boxes"])
        assert box[0] <= box[2] and box[1] <= box[3]
        assert box[2] - box[0] <= 2 * 15 + 2 * 20  # the disk's box, each side moved at most 20 px


def test_user_prompts_are_used_per_image():
    prompts = {"a.png": [Prompts.from_lists([[30, 30]], [1])], "b.png": [Prompts.from_lists(boxes=[5, 5, 40, 30])]}
    run = _run(ProtocolSpec("user", user_prompts=prompts))
    ref = [c for c in run.result.cases if c.model == "ref"]
    assert [c.prompt for c in ref] == [prompts["a.png"][0].to_dict(), prompts["b.png"][0].to_dict()]


def test_missing_user_prompts_for_an_image_is_an_error():
    with pytest.raises(ValueError, match="b.png"):
        _run(ProtocolSpec("user", user_prompts={"a.png": [Prompts.from_lists(boxes=[5, 5, 40, 30])]}))


def test_user_prompts_go_through_the_click_validator():
    height, width = IMAGES[0][1].shape[:2]
    outside = {name: [Prompts.from_lists([[width + 5, 10]], [1])] for name, _ in IMAGES}
    with pytest.raises(ValueError, match="outside"):
        _run(ProtocolSpec("user", user_prompts=outside))
    overhanging = {name: [Prompts.from_lists(boxes=[-10, 5, width + 30, 30])] for name, _ in IMAGES}
    run = _run(ProtocolSpec("user", user_prompts=overhanging))
    assert {tuple(c.prompt["boxes"][0]) for c in run.result.cases} == {(0.0, 5.0, float(width), 30.0)}


def test_duplicate_model_names_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        _run(ProtocolSpec("point", prompts_per_image=1), DiskBackend("x", 5), [DiskBackend("x", 6)])


def test_one_mask_example_per_image_with_every_model():
    run = _run(ProtocolSpec("point", prompts_per_image=2))
    assert [e.image for e in run.examples] == ["a.png", "b.png"]
    assert all(set(e.masks) == {"ref", "same", "small"} for e in run.examples)


def test_progress_is_reported_per_image_and_model():
    seen = []
    _run(ProtocolSpec("point", prompts_per_image=1), progress=seen.append)
    assert len(seen) == 2 * 3


def test_unknown_protocol_is_rejected():
    with pytest.raises(ValueError, match="unknown protocol"):
        ProtocolSpec("three-points")
