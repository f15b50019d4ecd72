"""Exports of interactive results: COCO RLE, mask PNG, RGBA cut-out, COCO JSON, atomic writes."""

import json
import os
import stat

import numpy as np
import pytest
from PIL import Image

from mobile_sam.utils.atomic import atomic_write_bytes
from mobile_sam.utils.rle import compressed_rle, encode_rle, mask_to_rle, rle_to_json, rle_to_mask
from samkit.writers import (
    ImageMasks,
    mask_bbox,
    mask_records,
    save_cutout_png,
    save_mask_png,
    write_coco_json,
)


def _mask() -> np.ndarray:
    mask = np.zeros((20, 30), bool)
    mask[4:9, 10:25] = True
    mask[15, 2] = True
    return mask


def test_rle_round_trips_and_is_json_ready():
    rle = mask_to_rle(_mask())
    assert rle["size"] == [20, 30] and isinstance(rle["counts"], str)
    np.testing.assert_array_equal(rle_to_mask(json.loads(json.dumps(rle))), _mask())


def test_mask_bbox_is_xywh_of_the_tight_box():
    assert mask_bbox(_mask()) == [2, 4, 23, 12]
    assert mask_bbox(np.zeros((3, 3), bool)) == [0, 0, 0, 0]


def test_mask_records_hold_area_bbox_and_score():
    (record,) = mask_records([_mask()], [0.75])
    assert record["area"] == int(_mask().sum()) and record["bbox"] == mask_bbox(_mask())
    assert record["predicted_iou"] == 0.75


def test_mask_png_is_255_inside_and_0_outside(tmp_path):
    path = save_mask_png(_mask(), tmp_path / "mask.png")
    np.testing.assert_array_equal(np.array(Image.open(path)), _mask() * 255)


def test_cutout_png_is_rgba_with_the_mask_as_alpha(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    with Image.open(save_cutout_png(image, _mask(), tmp_path / "cut.png")) as saved:
        assert saved.mode == "RGBA"
        pixels = np.array(saved)
    np.testing.assert_array_equal(pixels[..., 3], _mask() * 255)
    np.testing.assert_array_equal(pixels[..., :3], image)


def test_coco_json_lists_the_image_and_numbered_annotations(tmp_path):
    records = mask_records([_mask(), _mask()], [0.5, 0.6])
    path = write_coco_json(tmp_path / "m.json", [ImageMasks("x.png", 20, 30, records)])
    document = json.loads(path.read_text())
    assert document["images"] == [{"id": 1, "file_name": "x.png", "height": 20, "width": 30}]
    assert [a["id"] for a in document["annotations"]] == [1, 2]
    assert [a["score"] for a in document["annotations"]] == [0.5, 0.6]
    np.testing.assert_array_equal(rle_to_mask(document["annotations"][1]["segmentation"]), _mask())


def test_rle_to_mask_decodes_bytes_str_and_uncompressed_counts():
    rle = encode_rle(_mask())
    uncompressed = {"size": [20, 30], "counts": [int(n) for n in _uncompressed_runs(_mask())]}
    for form in (rle, rle_to_json(rle), uncompressed):
        np.testing.assert_array_equal(rle_to_mask(form), _mask())


def test_compressed_rle_rejects_a_dict_without_counts():
    with pytest.raises(ValueError, match="counts"):
        compressed_rle({"size": [2, 2]})


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "annotations.json"
    path.write_text('{"old": true}')

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("mobile_sam.utils.atomic.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b'{"new": tru')
    assert json.loads(path.read_text()) == {"old": True}
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_gives_the_permissions_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        written = atomic_write_bytes(tmp_path / "a.json", b"{}")
        with open(tmp_path / "b.json", "wb"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE((tmp_path / "b.json").stat().st_mode)
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask


def _uncompressed_runs(mask: np.ndarray) -> list[int]:
    """Alternating background/foreground run lengths in column-major order, starting with background."""
    flat = mask.ravel(order="F").astype(np.int8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0] + runs if flat[0] else runs
