"""samkit.writers and samkit.drawing.overlay_records: COCO JSON, mask PNGs, overlays of generator records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from samkit.drawing import overlay_records
from samkit.writers import ImageMasks, coco_dict, record_mask, write_coco_json, write_mask_pngs


def make_record(mask: np.ndarray, mode: str = "binary_mask") -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    ys, xs = np.nonzero(mask)
    segmentation = {
        "binary_mask": mask,
        "coco_rle": {"size": list(mask.shape), "counts": rle["counts"].decode()},
    }[mode]
    return {
        "segmentation": segmentation,
        "area": int(mask.sum()),
        "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min())],
        "predicted_iou": 0.9,
        "point_coords": [[1.5, 2.5]],
        "stability_score": 0.97,
        "crop_box": [0, 0, mask.shape[1], mask.shape[0]],
    }


def square(height: int, width: int, top: int, left: int, size: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def test_record_mask_decodes_every_output_mode() -> None:
    mask = square(9, 11, 2, 3, 4)
    # Column-major runs: 3 empty columns and 2 rows, then 4 columns of 4 pixels separated by 5.
    uncompressed = {"size": [9, 11], "counts": [3 * 9 + 2, 4, 5, 4, 5, 4, 5, 4, 9 * 11 - (3 * 9 + 2) - 4 * 4 - 3 * 5]}
    assert np.array_equal(record_mask(make_record(mask, "binary_mask")), mask)
    assert np.array_equal(record_mask(make_record(mask, "coco_rle")), mask)
    assert np.array_equal(record_mask({"segmentation": uncompressed}), mask)


def test_coco_dict_has_images_annotations_and_categories() -> None:
    records = [make_record(square(20, 30, 1, 1, 5)), make_record(square(20, 30, 10, 10, 8), "coco_rle")]
    coco = coco_dict([ImageMasks("a.jpg", 20, 30, records), ImageMasks("b.jpg", 20, 30, records[:1])])
    assert [image["id"] for image in coco["images"]] == [1, 2]
    assert [a["id"] for a in coco["annotations"]] == [1, 2, 3]
    assert [a["image_id"] for a in coco["annotations"]] == [1, 1, 2]
    assert coco["categories"] == [{"id": 1, "name": "object", "supercategory": "object"}]
    annotation = coco["annotations"][1]
    assert isinstance(annotation["segmentation"]["counts"], str)
    assert annotation["area"] == 64 and annotation["bbox"] == [10, 10, 7, 7] and annotation["score"] == 0.9
    assert np.array_equal(
        mask_utils.decode({**annotation["segmentation"], "counts": annotation["segmentation"]["counts"].encode()}),
        square(20, 30, 10, 10, 8),
    )


def test_coco_json_is_readable_by_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    path = write_coco_json(
        tmp_path / "out" / "annotations.json", [ImageMasks("a.jpg", 20, 30, [make_record(square(20, 30, 2, 2, 6))])]
    )
    coco = COCO(str(path))
    assert coco.annToMask(coco.loadAnns(1)[0]).sum() == 36


def test_one_png_per_mask_with_255_inside(tmp_path: Path) -> None:
    masks = [square(12, 14, 0, 0, 3), square(12, 14, 5, 6, 4)]
    paths = write_mask_pngs(tmp_path, [make_record(m) for m in masks])
    assert [p.name for p in paths] == ["mask_0000.png", "mask_0001.png"]
    for path, mask in zip(paths, masks):
        assert np.array_equal(np.asarray(Image.open(path)), mask.astype(np.uint8) * 255)


def test_overlay_colours_are_seeded_and_small_masks_stay_on_top() -> None:
    image = np.full((20, 20, 3), 100, dtype=np.uint8)
    big, small = square(20, 20, 0, 0, 20), square(20, 20, 8, 8, 3)
    records = [make_record(small), make_record(big)]
    first = overlay_records(image, records, seed=3, contours=False)
    assert np.array_equal(first, overlay_records(image, records, seed=3, contours=False))
    assert not np.array_equal(first, overlay_records(image, records, seed=4, contours=False))
    only_big = overlay_records(image, [records[1]], seed=3, contours=False)
    assert not np.array_equal(first[9, 9], only_big[9, 9])  # the small mask is drawn over the big one
    assert np.array_equal(first[0, 0], first[19, 19])  # the big mask's colour elsewhere


def test_overlay_contours_outline_masks_in_white() -> None:
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    result = overlay_records(image, [make_record(square(20, 20, 5, 5, 8))], contours=True)
    assert result[5, 5].tolist() == [255, 255, 255]
    assert result[9, 9].tolist() != [255, 255, 255]
