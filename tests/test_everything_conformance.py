"""The generator gives the official SamAutomaticMaskGenerator's records (synthetic decoder, three configurations).

The opt-in `upsampling="opencv"` path is held to the same agreement figures (conformance README).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from everything import SamAutomaticMaskGenerator

CONFIG_NAMES = ["default", "grid16_crops1_minarea", "grid12_loose_nms05"]
CASES = [(upsampling, name) for upsampling in ("torch", "opencv") for name in CONFIG_NAMES]


def load_synthetic_decoder(conformance_dir: Path):
    """`synthetic_low_res_masks` from the conformance folder (imported in place, never copied)."""
    spec = importlib.util.spec_from_file_location("synthetic_decoder", conformance_dir / "synthetic_decoder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.synthetic_low_res_masks


@pytest.fixture(scope="module")
def official(conformance_dir: Path) -> dict:
    return json.loads((conformance_dir / "amg_synthetic.json").read_text())


@pytest.fixture(scope="module")
def dogs(conformance_dir: Path) -> np.ndarray:
    return np.asarray(Image.open(conformance_dir / "dogs.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def ours(conformance_dir: Path, official: dict, dogs: np.ndarray) -> dict[tuple[str, str], list[dict]]:
    decode = load_synthetic_decoder(conformance_dir)
    results = {}
    for upsampling, name in CASES:
        config = official["configs"][name]["config"]
        generator = SamAutomaticMaskGenerator(None, decode_points=decode, upsampling=upsampling, **config)
        results[upsampling, name] = generator.generate(dogs)
    return results


def best_matches(official_records: list[dict], our_records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """For each official record: the index of our record with the highest mask IoU, and that IoU."""
    ious = mask_utils.iou(
        [r["segmentation"] for r in official_records],
        [r["segmentation"] for r in our_records],
        [0] * len(our_records),
    )
    ious = np.asarray(ious).reshape(len(official_records), len(our_records))
    return ious.argmax(axis=1), ious.max(axis=1)


@pytest.mark.parametrize("upsampling, name", CASES)
def test_record_count_matches_official(upsampling: str, name: str, official: dict, ours: dict) -> None:
    expected = len(official["configs"][name]["records"])
    assert abs(len(ours[upsampling, name]) - expected) <= max(1, round(0.01 * expected))


@pytest.mark.parametrize("upsampling, name", CASES)
def test_every_official_mask_is_matched_with_iou_099(upsampling: str, name: str, official: dict, ours: dict) -> None:
    _, ious = best_matches(official["configs"][name]["records"], ours[upsampling, name])
    assert ious.min() >= 0.99


@pytest.mark.parametrize("upsampling, name", CASES)
def test_matched_records_agree_on_box_scores_and_point(upsampling: str, name: str, official: dict, ours: dict) -> None:
    records = official["configs"][name]["records"]
    index, _ = best_matches(records, ours[upsampling, name])
    for expected, i in zip(records, index):
        got = ours[upsampling, name][i]
        assert np.abs(np.subtract(got["bbox"], expected["bbox"])).max() <= 1
        assert got["predicted_iou"] == pytest.approx(expected["predicted_iou"], abs=1e-3)
        assert got["stability_score"] == pytest.approx(expected["stability_score"], abs=1e-3)
        assert got["crop_box"] == expected["crop_box"]
        np.testing.assert_allclose(got["point_coords"], expected["point_coords"], atol=1e-6)


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_coco_rle_records_are_json_ready(name: str, ours: dict) -> None:
    record = ours["torch", name][0]
    assert isinstance(record["segmentation"]["counts"], str)
    assert record["area"] == int(mask_utils.area(record["segmentation"]))
    json.dumps(ours["torch", name])
