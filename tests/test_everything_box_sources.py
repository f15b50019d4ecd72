"""Box sources: ultralytics detectors (FastSAM, ObjectAwareModel) as XYXY boxes in original-image pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from support.compare_support import small_image

from everything import load_box_source
from everything.box_sources import ObjectAwareBoxSource, UltralyticsBoxSource
from samkit.checkpoints import CheckpointNotFoundError
from samkit.loading import ultralytics_architecture

IMAGE_SIZE = 320  # the detector's input side (1024 by default): small to keep the test fast


def forced_fastsam() -> torch.nn.Module:
    """FastSAM-s with random weights whose class scores are forced high: random weights alone detect nothing,
    so every anchor is made a confident detection (boxes still come from the random box branch)."""
    torch.manual_seed(0)
    network = ultralytics_architecture("fastsam-s").eval()
    with torch.no_grad():
        for branch in network.model[-1].cv3:
            branch[-1].bias.fill_(8.0)
    return network


def ultralytics_segment_boxes(network: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """Boxes from ultralytics' own YOLOv8-seg predictor (the path `ultralytics.YOLO(...).predict` takes)."""
    from ultralytics.models.yolo.segment import SegmentationPredictor

    overrides = {
        "imgsz": IMAGE_SIZE,
        "conf": 0.4,
        "iou": 0.9,
        "max_det": 300,
        "rect": True,
        "device": "cpu",
        "verbose": False,
        "save": False,
    }
    threads = torch.get_num_threads()  # ultralytics' device selection changes torch's thread count
    try:
        predictor = SegmentationPredictor(overrides=overrides)
        predictor.setup_model(network, verbose=False)
        result = predictor(np.ascontiguousarray(image[..., ::-1]))[0]
    finally:
        torch.set_num_threads(threads)
    return result.boxes.xyxy.double().numpy()


def test_fastsam_boxes_are_ultralytics_boxes_in_original_image_pixels(tmp_path: Path) -> None:
    network = forced_fastsam()
    torch.save({"model": network}, tmp_path / "FastSAM-s.pt")
    image = small_image(150, 230)
    source = load_box_source(tmp_path / "FastSAM-s.pt", device="cpu", image_size=IMAGE_SIZE)
    detections = source.detect(image)
    expected = ultralytics_segment_boxes(network, image)
    assert 1 <= len(expected) <= 300
    np.testing.assert_allclose(detections.boxes, expected, atol=1e-3)
    assert detections.scores.shape == (len(expected),) and (np.diff(detections.scores) <= 0).all()
    boxes = detections.boxes
    assert (
        (boxes[:, 0] >= 0).all()
        and (boxes[:, 2] <= 230).all()
        and (boxes[:, 1] >= 0).all()
        and (boxes[:, 3] <= 150).all()
    )


@pytest.mark.parametrize("source_class", [UltralyticsBoxSource, ObjectAwareBoxSource])
def test_a_box_source_runs_the_network_it_is_given_not_a_copy(source_class: type) -> None:
    """ultralytics' `setup_model` deep-copies the network: a source holding both kept the weights twice."""
    network = ultralytics_architecture("fastsam-s")
    source = source_class(network, device="cpu", image_size=IMAGE_SIZE)
    run = {parameter.data_ptr() for parameter in source._predictor.model.model.parameters()}  # AutoBackend.model
    assert run == {parameter.data_ptr() for parameter in network.parameters()}


def test_max_detections_caps_the_boxes() -> None:
    from everything.box_sources import UltralyticsBoxSource

    source = UltralyticsBoxSource(forced_fastsam(), device="cpu", image_size=IMAGE_SIZE, max_detections=5)
    assert source.detect(small_image(150, 230)).boxes.shape == (5, 4)


def test_a_named_detector_missing_from_the_cache_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="ObjectAwareModel.pt"):
        load_box_source("objectaware", checkpoint_dir=tmp_path, download=True)  # no direct link: never downloaded


def test_an_unknown_detector_name_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fastsam-s"):
        load_box_source(tmp_path / "missing.pt")
