"""MobileSAMv2's ObjectAwareModel as published: `ObjectAwareBoxSource` against the official predictor's boxes.

`objectaware_seed0.pt` (tests/conformance_data/mobilesamv2) is a random detector saved by the ultralytics 8.0.120
bundled with MobileSAMv2, in the layout of ObjectAwareModel.pt; `detector.json` holds the boxes that the official
`ObjectAwareModel` predictor finds with it on truck.jpg, called as Inference.py calls it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mobilesamv2_support import DATA_DIR, read_rgb

from everything import load_box_source
from everything.box_sources import (
    ObjectAwareBoxSource,
    UltralyticsBoxSource,
    official_nms,
    official_scale_boxes,
    snap_to_border,
)
from samkit.checkpoints import load_ultralytics_checkpoint

CHECKPOINT = DATA_DIR / "objectaware_seed0.pt"
BOX_ATOL = 0.1  # pixels of a 1800x1200 photo
SCORE_ATOL = 1e-4


@pytest.fixture(scope="module")
def official() -> dict:
    return json.loads((DATA_DIR / "detector.json").read_text())


@pytest.fixture(scope="module")
def truck(shared_images_dir: Path) -> np.ndarray:
    return read_rgb(shared_images_dir / "truck.jpg")


@pytest.fixture(scope="module")
def source() -> ObjectAwareBoxSource:
    return ObjectAwareBoxSource(load_ultralytics_checkpoint(CHECKPOINT), device="cpu")


def test_the_pinned_ultralytics_reads_the_old_checkpoint() -> None:
    """Read with the pinned ultralytics' restricted loader (weights_only): the 8.0.120 module paths resolve, and
    the Segment head has no mask prototypes (MobileSAMv2 removed them from its ultralytics)."""
    from ultralytics.nn.tasks import SegmentationModel

    network = load_ultralytics_checkpoint(CHECKPOINT)
    assert isinstance(network, SegmentationModel)
    assert network.names == {0: "object"}
    assert next(network.parameters()).dtype == torch.float32
    assert not hasattr(network.model[-1], "proto")


def test_boxes_are_the_official_predictors(source: ObjectAwareBoxSource, truck: np.ndarray, official: dict) -> None:
    detections = source.detect(truck)
    expected = official["detections"]
    assert len(expected["xyxy"]) == 300  # the max_det cap: more than 300 boxes pass NMS
    # The same boxes in the same order, up to float32 rounding of the convolutions (CPU kernels differ between
    # machines: up to 0.033 px seen on an AMD EPYC, equal on the machine that recorded them).
    np.testing.assert_allclose(detections.boxes, np.array(expected["xyxy"]), rtol=0, atol=BOX_ATOL)
    np.testing.assert_allclose(detections.scores, np.array(expected["conf"]), rtol=0, atol=SCORE_ATOL)


def test_the_objectaware_name_gives_the_official_detector(tmp_path: Path, truck: np.ndarray, official: dict) -> None:
    shutil.copy(CHECKPOINT, tmp_path / "ObjectAwareModel.pt")
    source = load_box_source("objectaware", checkpoint_dir=tmp_path, device="cpu")
    assert isinstance(source, ObjectAwareBoxSource)
    boxes = source.detect(truck).boxes
    np.testing.assert_allclose(boxes, np.array(official["detections"]["xyxy"]), rtol=0, atol=BOX_ATOL)


def test_the_official_boxes_come_from_the_swapped_channels(truck: np.ndarray, official: dict) -> None:
    """Official quirk: Inference.py gives the detector RGB where ultralytics expects BGR; the other order differs."""
    source = ObjectAwareBoxSource(load_ultralytics_checkpoint(CHECKPOINT), device="cpu", swap_channels=False)
    boxes = source.detect(truck).boxes
    assert boxes.shape != (300, 4) or not np.array_equal(boxes, np.array(official["detections"]["xyxy"]))


def test_the_plain_ultralytics_path_runs_a_head_without_prototypes(truck: np.ndarray) -> None:
    """The generic box source runs the same file (the pinned ultralytics alone would call the missing prototypes)."""
    source = UltralyticsBoxSource(load_ultralytics_checkpoint(CHECKPOINT), device="cpu")
    detections = source.detect(truck)
    assert detections.boxes.shape[1] == 4 and len(detections.boxes) > 0


def test_nothing_detected_is_an_empty_result(truck: np.ndarray) -> None:
    """The official predictor returns None then (and Inference.py fails); here the result is empty."""
    source = ObjectAwareBoxSource(load_ultralytics_checkpoint(CHECKPOINT), device="cpu", confidence=1.0)
    detections = source.detect(truck)
    assert detections.boxes.shape == (0, 4) and detections.scores.shape == (0,)


def test_snap_is_in_the_letterboxed_frame_and_the_pad_is_rounded_as_8_0_120() -> None:
    """1800 x 1200 letterboxed to 1024 x 704: scale 1024 / 1800, 683 rows of image between 10 rows of padding
    above and 11 below; 8.0.120's scale_boxes removes round(10.67 - 0.1) = 11 rows."""
    gain = 1024 / 1800
    boxes = torch.tensor(
        [
            [19.0, 19.0, 1004.5, 684.5],  # every side within 20 px of the 1024 x 704 frame: snapped
            [21.0, 110.0, 1003.0, 683.0],  # none within 20 px: kept
        ]
    )
    snap_to_border(boxes, (704, 1024), 20)
    assert boxes[0].tolist() == [0.0, 0.0, 1024.0, 704.0]
    assert boxes[1].tolist() == [21.0, 110.0, 1003.0, 683.0]
    scaled = official_scale_boxes((704, 1024), boxes, (1200, 1800))
    assert scaled[0].tolist() == [0.0, 0.0, 1800.0, 1200.0]  # clipped to the image
    expected = [21 / gain, (110 - 11) / gain, 1003 / gain, (683 - 11) / gain]
    np.testing.assert_allclose(scaled[1].numpy(), expected, rtol=1e-6)
    assert (110 - 10) / gain - scaled[1, 1].item() == pytest.approx(1 / gain, rel=1e-5)  # 1.76 px above the letterbox


def test_nms_keeps_the_best_of_overlapping_boxes_per_class() -> None:
    """Rows (4 + nc + nm, anchors) of centre-size boxes and class scores, nc = 2, one mask coefficient."""
    anchors = [
        # cx, cy, w, h, class 0, class 1, coefficient
        [50, 50, 20, 20, 0.9, 0.1, 7.0],  # kept: best of class 0
        [50, 50, 20, 19.5, 0.8, 0.1, 7.0],  # IoU 0.975 with the first, same class: suppressed
        [50, 50, 20, 19.9, 0.1, 0.85, 7.0],  # class 1: not compared with class 0, kept
        [200, 200, 10, 10, 0.3, 0.35, 7.0],  # under the confidence threshold
        [120, 40, 30, 10, 0.5, 0.45, 7.0],  # kept (class 0, alone)
    ]
    prediction = torch.tensor(anchors).T
    kept = official_nms(prediction, confidence=0.4, iou=0.9, max_det=300, nc=2)
    assert kept[:, 4].tolist() == pytest.approx([0.9, 0.85, 0.5])
    assert kept[:, 5].tolist() == [0.0, 1.0, 0.0]
    assert kept[0, :4].tolist() == [40.0, 40.0, 60.0, 60.0]
    assert kept[:, 6].tolist() == [7.0, 7.0, 7.0]
    assert len(official_nms(prediction, confidence=0.4, iou=0.9, max_det=2, nc=2)) == 2
