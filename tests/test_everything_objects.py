"""ObjectAwareMaskGenerator (MobileSAMv2 box prompts): masks of the predictor, records, snapping, cap, filters."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torchvision.ops import nms

from everything import Cancelled, Detections, ObjectAwareMaskGenerator
from mobile_sam import SamPredictor

OFFICIAL_KEYS = {"segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box"}
BOXES = 2 * np.array(
    [
        [30.0, 25.0, 70.0, 50.0],
        [80.0, 55.0, 100.0, 70.0],
        [40.5, 30.2, 60.7, 80.1],
        [50.0, 40.0, 90.0, 60.0],
        [25.0, 22.0, 60.0, 60.0],
    ]
)  # for the 256 x 192 image


@pytest.fixture(scope="module")
def sam(conformance_dir: Path):
    return vit_t_with_a_cheap_encoder(conformance_dir)


@pytest.fixture(scope="module")
def image(conformance_dir: Path) -> np.ndarray:
    return np.asarray(Image.open(conformance_dir / "dogs.jpg").convert("RGB").resize((256, 192)))


@pytest.fixture(scope="module")
def unfiltered(sam, image) -> list[dict]:
    """Records of BOXES without snapping or filters (MobileSAMv2's defaults otherwise)."""
    return ObjectAwareMaskGenerator(sam, border_snap=0).generate(image, boxes=BOXES)


def reference_masks(model, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks (N, H, W) and predicted IoU (N,) of `SamPredictor.predict_torch(boxes=...)`, one mask per box."""
    predictor = SamPredictor(model)
    predictor.set_image(image)
    in_boxes = predictor.transform.apply_boxes_torch(
        torch.as_tensor(boxes, dtype=torch.float64), predictor.original_size
    )
    masks, scores, _ = predictor.predict_torch(None, None, boxes=in_boxes, multimask_output=False)
    return masks[:, 0].numpy(), scores[:, 0].numpy()


def by_prompt(records: list[dict], boxes: np.ndarray) -> list[int]:
    """The row of `boxes` that each record's prompt box came from."""
    rows = [tuple(box) for box in np.asarray(boxes, dtype=np.float64).tolist()]
    return [rows.index(tuple(record["box"])) for record in records]


def vit_t_with_a_cheap_encoder(conformance_dir: Path):
    """vit_t with the conformance weights (the real prompt encoder and mask decoder, 64x64 embedding, 256x256
    low-res masks) whose TinyViT is replaced by one strided convolution, so that encoding costs milliseconds."""
    from mobile_sam import sam_model_registry

    model = sam_model_registry["vit_t"](conformance_dir / "mobile_sam_vit_t_seed0.pt")
    torch.manual_seed(0)
    model.image_encoder = torch.nn.Conv2d(3, 256, kernel_size=16, stride=16).eval()
    return model


@pytest.mark.parametrize("upsampling", ["torch", "opencv"])
def test_boxes_decode_to_the_masks_of_predict_torch(conformance_dir: Path, upsampling: str) -> None:
    model = vit_t_with_a_cheap_encoder(conformance_dir)
    for size in [(402, 226), (226, 402)]:  # padding below, then to the right
        image = np.asarray(Image.open(conformance_dir / "dogs.jpg").convert("RGB").resize(size))
        width, height = size
        boxes = np.array(
            [
                [40.0, 30.0, 200.0, 190.0],
                [10.0, 60.0, 220.0, 220.0],
                [100.5, 80.25, 150.75, 120.5],
                [30.0, 30.0, width - 1, height - 1],
            ]
        )
        records = ObjectAwareMaskGenerator(model, border_snap=0, upsampling=upsampling).generate(image, boxes=boxes)
        masks, scores = reference_masks(model, image, boxes)
        assert len(records) == len(boxes)
        for record, row in zip(records, by_prompt(records, boxes)):
            mask, expected = record["segmentation"], masks[row]
            differing = np.count_nonzero(mask != expected)
            if upsampling == "torch":
                assert differing <= 2, (size, row, differing)  # float rounding of the shared-image decoder path only
            else:  # OpenCV's resize: logits within ~2e-5, so pixels at the threshold may flip
                assert differing <= 2 + 1e-4 * mask.size, (size, row, differing)
            ys, xs = np.nonzero(expected)
            x, y, w, h = record["bbox"]
            assert np.abs(np.array([x, y, x + w - 1, y + h - 1]) - [xs.min(), ys.min(), xs.max(), ys.max()]).max() <= 1
            assert record["predicted_iou"] == pytest.approx(float(scores[row]), abs=1e-4)
        assert sum(masks.reshape(len(boxes), -1).any(axis=1)) >= 2  # the comparison is not between empty masks


def test_opencv_upsampling_agrees_with_the_torch_postprocessing(sam, image) -> None:
    exact = ObjectAwareMaskGenerator(sam, border_snap=0, upsampling="torch").generate(image, boxes=BOXES)
    fast = ObjectAwareMaskGenerator(sam, border_snap=0, upsampling="opencv").generate(image, boxes=BOXES)
    by_box = {tuple(record["box"]): record for record in exact}
    for record in fast:
        reference = by_box[tuple(record["box"])]
        overlap = np.logical_and(record["segmentation"], reference["segmentation"]).sum()
        union = np.logical_or(record["segmentation"], reference["segmentation"]).sum()
        assert overlap / union >= 0.999
        assert record["stability_score"] == pytest.approx(reference["stability_score"], abs=1e-3)
        assert record["predicted_iou"] == reference["predicted_iou"]


def test_records_have_the_official_keys_and_types(unfiltered, image) -> None:
    records = unfiltered
    assert len(records) == len(BOXES)
    for record, row in zip(records, by_prompt(records, BOXES)):
        assert set(record) == OFFICIAL_KEYS | {"box"}
        mask = record["segmentation"]
        assert mask.shape == image.shape[:2] and mask.dtype == bool
        assert isinstance(record["area"], int) and record["area"] == int(mask.sum())
        ys, xs = np.nonzero(mask)
        x, y, w, h = record["bbox"]
        if len(xs):
            assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max(), ys.max())
        x0, y0, x1, y1 = BOXES[row]
        assert record["point_coords"] == [[(x0 + x1) / 2, (y0 + y1) / 2]]
        assert record["crop_box"] == [0, 0, 256, 192] and isinstance(record["bbox"][0], int)
        assert isinstance(record["predicted_iou"], float) and isinstance(record["stability_score"], float)


def test_masks_are_sorted_by_area_largest_first(unfiltered) -> None:
    areas = [record["area"] for record in unfiltered]
    assert areas == sorted(areas, reverse=True) and len(set(areas)) > 1


def test_output_modes_encode_the_same_masks(sam, image) -> None:
    by_mode = {
        mode: ObjectAwareMaskGenerator(sam, output_mode=mode).generate(image, boxes=BOXES[:2])
        for mode in ("binary_mask", "uncompressed_rle", "coco_rle")
    }
    for binary, uncompressed, coco in zip(*by_mode.values()):
        from_coco = mask_utils.decode(coco["segmentation"]).astype(bool)
        from_uncompressed = mask_utils.decode(mask_utils.frPyObjects(uncompressed["segmentation"], 192, 256)).astype(
            bool
        )
        np.testing.assert_array_equal(binary["segmentation"], from_coco)
        np.testing.assert_array_equal(from_uncompressed, from_coco)
        assert binary["box"] == coco["box"] and binary["area"] == coco["area"]


def test_box_sides_near_the_border_snap_to_it(sam, image) -> None:
    boxes = np.array(
        [[19.0, 21.0, 237.0, 150.0], [5.0, 30.0, 200.0, 173.0], [20.0, 20.0, 236.0, 172.0]]
    )  # image 256 x 192
    records = ObjectAwareMaskGenerator(sam, border_snap=20).generate(image, boxes=boxes)
    expected = [
        [0.0, 21.0, 256.0, 150.0],
        [0.0, 30.0, 200.0, 192.0],
        [20.0, 20.0, 236.0, 172.0],
    ]  # strictly within 20 px
    assert sorted(record["box"] for record in records) == sorted(expected)


def test_snapped_boxes_give_the_masks_of_the_snapped_prompts(sam, image) -> None:
    boxes = np.array([[10.0, 5.0, 250.0, 180.0]])
    snapped = ObjectAwareMaskGenerator(sam).generate(image, boxes=boxes)
    masks, _ = reference_masks(sam, image, np.array([[0.0, 0.0, 256.0, 192.0]]))
    assert snapped[0]["box"] == [0.0, 0.0, 256.0, 192.0]
    assert np.count_nonzero(snapped[0]["segmentation"] != masks[0]) <= 2


def test_at_most_max_boxes_are_decoded_in_the_order_given(sam, image) -> None:
    records = ObjectAwareMaskGenerator(sam, max_boxes=3, border_snap=0).generate(image, boxes=BOXES)
    assert sorted(by_prompt(records, BOXES)) == [0, 1, 2]


def test_pred_iou_thresh_keeps_the_masks_above_it(conformance_dir: Path, image) -> None:
    sam = vit_t_with_a_cheap_encoder(conformance_dir)
    with torch.no_grad():
        sam.mask_decoder.iou_prediction_head.layers[-1].bias += 1.0  # positive predicted IoUs, as trained models give
    everything = ObjectAwareMaskGenerator(sam, border_snap=0).generate(image, boxes=BOXES)
    top_two = sorted(record["predicted_iou"] for record in everything)[-2:]
    threshold = float(np.mean(top_two))
    assert threshold > 0  # 0 and below mean "no filter", as in the grid generator
    filtered = ObjectAwareMaskGenerator(sam, border_snap=0, pred_iou_thresh=threshold).generate(image, boxes=BOXES)
    expected = [record["box"] for record in everything if record["predicted_iou"] > threshold]
    assert 0 < len(filtered) < len(everything)
    assert [record["box"] for record in filtered] == expected


def test_stability_score_thresh_keeps_the_masks_at_or_above_it(sam, image, unfiltered) -> None:
    everything = unfiltered
    threshold = float(np.median([record["stability_score"] for record in everything]))
    filtered = ObjectAwareMaskGenerator(sam, border_snap=0, stability_score_thresh=threshold).generate(
        image, boxes=BOXES
    )
    assert [record["box"] for record in filtered] == [r["box"] for r in everything if r["stability_score"] >= threshold]
    assert 0 < len(filtered) < len(everything)


def test_box_nms_removes_overlapping_masks_with_lower_predicted_iou(sam, image, unfiltered) -> None:
    everything = unfiltered
    boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in everything)], dtype=torch.float32)
    scores = torch.tensor([r["predicted_iou"] for r in everything])
    kept = set(nms(boxes, scores, 0.5).tolist())
    filtered = ObjectAwareMaskGenerator(sam, border_snap=0, box_nms_thresh=0.5).generate(image, boxes=BOXES)
    assert [r["box"] for r in filtered] == [r["box"] for i, r in enumerate(everything) if i in kept]


def test_min_mask_region_area_leaves_no_small_holes_or_islands(sam, image) -> None:
    area = 60
    records = ObjectAwareMaskGenerator(sam, border_snap=0, min_mask_region_area=area).generate(image, boxes=BOXES)
    assert len(records) >= 1
    for record in records:
        mask = record["segmentation"].astype(np.uint8)
        for working in (mask, 1 - mask):  # islands, then holes (background components)
            count, _, stats, _ = cv2.connectedComponentsWithStats(working, connectivity=8)
            sizes = stats[1:, cv2.CC_STAT_AREA]
            assert (sizes >= area).all() or count == 2, sizes  # a lone small island is kept, as in the official code


def test_an_empty_box_list_gives_an_empty_list(sam, image) -> None:
    assert ObjectAwareMaskGenerator(sam).generate(image, boxes=np.zeros((0, 4))) == []


def test_boxes_partly_outside_the_image_are_clipped_to_it(sam, image) -> None:
    records = ObjectAwareMaskGenerator(sam, border_snap=0).generate(image, boxes=np.array([[-30.0, 40.0, 60.0, 300.0]]))
    assert records[0]["box"] == [0.0, 40.0, 60.0, 192.0]


@pytest.mark.parametrize(
    "boxes, message",
    [
        (np.array([[10.0, 10.0, 5.0, 20.0]]), "x1 >= x0"),
        (np.array([[10.0, np.nan, 20.0, 20.0]]), "finite"),
        (np.array([[300.0, 10.0, 400.0, 20.0]]), "outside"),
        (np.array([10.0, 10.0, 20.0]), "shape"),
    ],
)
def test_invalid_boxes_raise_value_error(sam, image, boxes: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ObjectAwareMaskGenerator(sam).generate(image, boxes=boxes)


def test_without_a_box_source_boxes_are_required(sam, image) -> None:
    with pytest.raises(ValueError, match="box source"):
        ObjectAwareMaskGenerator(sam).generate(image)


class FixedBoxes:
    """A synthetic box source: the same detections for every image, counting its calls."""

    def __init__(self, boxes: np.ndarray) -> None:
        self.boxes = boxes
        self.calls = 0

    def detect(self, image: np.ndarray) -> Detections:
        self.calls += 1
        return Detections(self.boxes, np.linspace(0.9, 0.5, len(self.boxes)))


def test_the_box_source_gives_the_boxes_and_passed_boxes_override_it(sam, image) -> None:
    source = FixedBoxes(BOXES[:3])
    generator = ObjectAwareMaskGenerator(sam, source, border_snap=0)
    from_source = generator.generate(image)
    assert source.calls == 1 and sorted(by_prompt(from_source, BOXES)) == [0, 1, 2]
    passed = generator.generate(image, boxes=BOXES[3:])
    assert source.calls == 1 and sorted(by_prompt(passed, BOXES)) == [3, 4]


def test_progress_increases_to_one_and_timings_cover_every_stage(sam, image) -> None:
    seen: list[float] = []
    timings: dict[str, float] = {}
    ObjectAwareMaskGenerator(sam, boxes_per_batch=2).generate(
        image, boxes=BOXES[:3], progress=seen.append, timings=timings
    )
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen) and len(seen) >= 5
    assert set(timings) == {"detector", "encoder", "decoder", "postprocess"} and all(t >= 0 for t in timings.values())


def test_setting_cancel_stops_generation(sam, image) -> None:
    cancel = threading.Event()

    def progress(fraction: float) -> None:
        if fraction > 0.1:
            cancel.set()

    with pytest.raises(Cancelled):
        ObjectAwareMaskGenerator(sam, boxes_per_batch=1).generate(image, boxes=BOXES, progress=progress, cancel=cancel)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_boxes": -1},
        {"boxes_per_batch": 0},
        {"border_snap": -1},
        {"output_mode": "png"},
        {"upsampling": "nearest"},
        {"box_nms_thresh": 2.0},
    ],
)
def test_invalid_settings_raise_value_error(sam, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ObjectAwareMaskGenerator(sam, **kwargs)


def test_segmenting_from_boxes_does_not_import_torchvision(conformance_dir: Path) -> None:
    """Importing torchvision loads torch._dynamo and triton: a large share of a CPU process's memory, which box
    prompts without NMS never need (MobileSAMv2's pipeline)."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np, torch\n"
        "from everything import ObjectAwareMaskGenerator\n"
        "from mobile_sam import sam_model_registry\n"
        f"model = sam_model_registry['vit_t'](r'{conformance_dir / 'mobile_sam_vit_t_seed0.pt'}')\n"
        "model.image_encoder = torch.nn.Conv2d(3, 256, kernel_size=16, stride=16).eval()\n"
        "image = np.zeros((96, 128, 3), dtype=np.uint8)\n"
        "records = ObjectAwareMaskGenerator(model, output_mode='coco_rle').generate(image, boxes=[[10, 10, 60, 50]])\n"
        "assert len(records) == 1\n"
        "print(sorted(name for name in ('torchvision', 'triton', 'torch._dynamo') if name in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300, check=True
    )
    assert run.stdout.strip().splitlines()[-1] == "[]"
