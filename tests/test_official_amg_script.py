"""The official `scripts/amg.py` call sequence runs on this package unchanged.

The script is not vendored: this test makes the same calls in the same order (`sam_model_registry[...]
(checkpoint=...)`, `.to(device=...)`, `SamAutomaticMaskGenerator(sam, output_mode=..., **amg_kwargs)`,
`generate` on a `cv2.imread` + BGR->RGB image, then one PNG per mask (`mask * 255`) with `metadata.csv`,
or `json.dump(masks)` with `--convert-to-rle`) and checks what it writes against the masks themselves.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mobile_sam import SamAutomaticMaskGenerator, sam_model_registry

# Random weights: thresholds at 0 so that masks survive; a small grid keeps it quick.
AMG_KWARGS = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "min_mask_region_area": 20}
HEADER = (
    "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou,stability_score,"
    "crop_box_x0,crop_box_y0,crop_box_w,crop_box_h"
)


def _write_masks_to_folder(masks: list[dict], path: Path) -> None:
    """The official script's output for one image: `{i}.png` per mask and `metadata.csv`."""
    rows = [HEADER]
    for i, record in enumerate(masks):
        cv2.imwrite(str(path / f"{i}.png"), record["segmentation"] * 255)
        fields = [
            i,
            record["area"],
            *record["bbox"],
            *record["point_coords"][0],
            record["predicted_iou"],
            record["stability_score"],
            *record["crop_box"],
        ]
        rows.append(",".join(str(x) for x in fields))
    (path / "metadata.csv").write_text("\n".join(rows))


def _run_script(checkpoint: Path, image_path: Path, output: Path, convert_to_rle: bool) -> None:
    sam = sam_model_registry["vit_t"](checkpoint=str(checkpoint))
    _ = sam.to(device="cpu")
    output_mode = "coco_rle" if convert_to_rle else "binary_mask"
    generator = SamAutomaticMaskGenerator(sam, output_mode=output_mode, **AMG_KWARGS)
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    masks = generator.generate(image)
    save_base = output / image_path.stem
    if output_mode == "binary_mask":
        save_base.mkdir(parents=True)
        _write_masks_to_folder(masks, save_base)
    else:
        output.mkdir(parents=True, exist_ok=True)
        with open(f"{save_base}.json", "w") as file:
            json.dump(masks, file)


@pytest.fixture(scope="module")
def outputs(conformance_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("amg")
    image = cv2.imread(str(conformance_dir / "dogs.jpg"))
    image_path = root / "dogs_small.png"
    cv2.imwrite(str(image_path), cv2.resize(image, (160, 90), interpolation=cv2.INTER_AREA))
    checkpoint = conformance_dir / "mobile_sam_vit_t_seed0.pt"
    _run_script(checkpoint, image_path, root / "png", convert_to_rle=False)
    _run_script(checkpoint, image_path, root / "rle", convert_to_rle=True)
    return root / "png" / "dogs_small", root / "rle" / "dogs_small.json"


def test_png_folder_and_metadata_describe_each_mask(outputs: tuple[Path, Path]) -> None:
    folder, _ = outputs
    with open(folder / "metadata.csv") as file:
        rows = list(csv.DictReader(file))
    assert rows and len(rows) == len(list(folder.glob("*.png")))
    for row in rows:
        png = cv2.imread(str(folder / f"{row['id']}.png"), cv2.IMREAD_UNCHANGED)
        assert png.shape == (90, 160) and set(np.unique(png)) <= {0, 255}
        mask = png == 255
        ys, xs = np.nonzero(mask)
        assert int(row["area"]) == mask.sum() > 0
        assert [int(float(row[k])) for k in ("bbox_x0", "bbox_y0", "bbox_w", "bbox_h")] == [
            xs.min(),
            ys.min(),
            xs.max() - xs.min(),
            ys.max() - ys.min(),
        ]
        assert [int(float(row[k])) for k in ("crop_box_x0", "crop_box_y0", "crop_box_w", "crop_box_h")] == [
            0,
            0,
            160,
            90,
        ]
        assert 0 <= float(row["point_input_x"]) < 160 and 0 <= float(row["point_input_y"]) < 90
        assert 0.0 <= float(row["stability_score"]) <= 1.0


def test_convert_to_rle_writes_the_same_masks_as_json(outputs: tuple[Path, Path]) -> None:
    folder, json_path = outputs
    records = json.loads(json_path.read_text())
    with open(folder / "metadata.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(records) == len(rows)
    for record, row in zip(records, rows):
        mask = mask_utils.decode(record["segmentation"]).astype(bool)
        np.testing.assert_array_equal(mask, cv2.imread(str(folder / f"{row['id']}.png"), cv2.IMREAD_UNCHANGED) == 255)
        assert record["area"] == int(row["area"])
        assert record["predicted_iou"] == pytest.approx(float(row["predicted_iou"]), abs=1e-6)
        assert record["stability_score"] == pytest.approx(float(row["stability_score"]), abs=1e-6)
        assert record["point_coords"][0] == pytest.approx([float(row["point_input_x"]), float(row["point_input_y"])])
