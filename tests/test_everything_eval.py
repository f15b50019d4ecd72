"""Mask AR@K of segment-everything results (`everything.evaluation`, `python -m everything eval`).

The reference is pycocotools' COCOeval (iouType="segm", useCats=0, maxDets=[10, 100, 1000]) on a ground truth of
shapes drawn into images with OpenCV, plus cases whose answer is known by hand.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from everything.__main__ import main
from everything.evaluation import (
    EvaluationError,
    evaluate,
    iou_matrix,
    read_ground_truth,
    read_proposals,
)
from mobile_sam.utils.rle import mask_to_rle, rle_to_mask
from samkit.writers import ImageMasks, coco_dict, mask_bbox

SIZE = (200, 260)  # H, W


def drawn_shapes(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """`count` random filled shapes (rectangles, circles, ellipses, triangles) of every COCO size range."""
    masks = []
    for i in range(count):
        canvas = np.zeros(SIZE, dtype=np.uint8)
        centre = (int(rng.integers(20, SIZE[1] - 20)), int(rng.integers(20, SIZE[0] - 20)))
        radius = int(rng.choice([8, 14, 25, 45, 70]))  # small (< 32²), medium and large (> 96²) areas
        kind = i % 4
        if kind == 0:
            cv2.rectangle(
                canvas,
                (centre[0] - radius, centre[1] - radius // 2),
                (centre[0] + radius, centre[1] + radius // 2),
                1,
                -1,
            )
        elif kind == 1:
            cv2.circle(canvas, centre, radius, 1, -1)
        elif kind == 2:
            cv2.ellipse(canvas, centre, (radius, max(radius // 3, 3)), float(rng.integers(0, 180)), 0, 360, 1, -1)
        else:
            points = np.array(
                [
                    [centre[0], centre[1] - radius],
                    [centre[0] - radius, centre[1] + radius],
                    [centre[0] + radius, centre[1] + radius // 2],
                ]
            )
            cv2.fillPoly(canvas, [points.astype(np.int32)], 1)
        masks.append(canvas.astype(bool))
    return masks


def perturbed(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A proposal near a ground-truth mask: shifted, grown or shrunk by a few pixels."""
    shifted = np.roll(mask, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(0, 1))
    size = int(rng.integers(1, 5))
    kernel = np.ones((size, size), np.uint8)
    operation = rng.integers(0, 3)
    if operation == 0:
        shifted = cv2.dilate(shifted.astype(np.uint8), kernel).astype(bool)
    elif operation == 1:
        shifted = cv2.erode(shifted.astype(np.uint8), kernel).astype(bool)
    return shifted


def ground_truth_dict(
    images: list[tuple[str, list[np.ndarray]]], crowd: dict[int, np.ndarray], polygons: bool = False
) -> dict:
    """COCO instances: `images` as (file name, masks) in RLE, with `polygons` the first mask of every third image
    as polygons (their pixels differ a little), and `crowd` ({image index: mask}) as crowd regions."""
    coco_images, annotations = [], []
    for index, (name, masks) in enumerate(images):
        coco_images.append({"id": 10 + index, "file_name": name, "height": SIZE[0], "width": SIZE[1]})
        entries = [(mask, 0) for mask in masks] + ([(crowd[index], 1)] if index in crowd else [])
        for m, (mask, iscrowd) in enumerate(entries):
            segmentation = mask_to_rle(mask)
            if polygons and m == 0 and index % 3 == 0 and not iscrowd:
                contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                segmentation = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": 10 + index,
                    "category_id": 1 + m % 3,
                    "segmentation": segmentation,
                    "area": float(mask.sum()),
                    "bbox": [float(v) for v in mask_bbox(mask)],
                    "iscrowd": iscrowd,
                }
            )
    return {
        "images": coco_images,
        "annotations": annotations,
        "categories": [{"id": i, "name": str(i)} for i in (1, 2, 3)],
    }


def result_dict(proposals: list[tuple[str, list[np.ndarray], list[float]]]) -> dict:
    """This project's COCO file of masks (`samkit.writers.coco_dict`), as `python -m everything` writes it."""
    images = []
    for name, masks, scores in proposals:
        records = [
            {"segmentation": m, "area": int(m.sum()), "bbox": mask_bbox(m), "predicted_iou": s}
            for m, s in zip(masks, scores)
        ]
        images.append(ImageMasks(name, SIZE[0], SIZE[1], records))
    return coco_dict(images)


def cocoeval(truth: dict, result: dict) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's recall, (T, A, M) for areas all/small/medium/large and maxDets 10/100/1000, and its stats."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(truth))
        gt.createIndex()
        ids = {image["file_name"]: image["id"] for image in truth["images"]}
        names = {image["id"]: image["file_name"] for image in result["images"]}
        detections = [
            {
                "image_id": ids[names[a["image_id"]]],
                "category_id": 1,
                "segmentation": a["segmentation"],
                "score": a["score"],
            }
            for a in result["annotations"]
        ]
        dt = gt.loadRes(detections) if detections else COCO()
        evaluation = COCOeval(gt, dt, iouType="segm")
        evaluation.params.useCats = 0
        evaluation.params.maxDets = [10, 100, 1000]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.eval["recall"][:, 0, :, :], np.asarray(evaluation.stats)


def ours(truth: dict, result: dict | list):
    ground_truth = read_ground_truth(truth)
    return evaluate(read_proposals(result, ground_truth), ground_truth)


@pytest.fixture(scope="module")
def drawn_case():
    """Five images of drawn shapes; many proposals each (some images beyond 100, ties in score), an image without
    proposals, an image without objects, and a crowd region."""
    rng = np.random.default_rng(7)
    images, proposals = [], []
    for index, count in enumerate((6, 14, 9, 0, 5)):
        name = f"sub/image_{index}.jpg"
        masks = drawn_shapes(rng, count)
        images.append((name, masks))
        if index == 2:
            continue  # no proposals for this image: its objects count as missed
        found = [perturbed(mask, rng) for mask in masks for _ in range(int(rng.integers(1, 4)))]
        found += [mask for mask in drawn_shapes(rng, 130 if index == 1 else 12)]  # false positives
        found += [masks[0]] if masks else []  # one exact proposal
        scores = [round(float(s), 1) for s in rng.random(len(found))]  # ties: the stable order decides
        order = rng.permutation(len(found))
        proposals.append((name, [found[i] for i in order], [scores[i] for i in order]))
    crowd = {1: drawn_shapes(rng, 1)[0]}
    return ground_truth_dict(images, crowd, polygons=True), result_dict(proposals)


def test_recall_matches_cocoeval_for_every_threshold_k_and_area_range(drawn_case):
    truth, result = drawn_case
    reference, _ = cocoeval(truth, result)
    recall = ours(truth, result).recall  # (A, K, T)
    assert np.isfinite(recall).all()
    np.testing.assert_allclose(recall.transpose(2, 0, 1), reference, rtol=0, atol=1e-12)
    assert len({round(float(v), 6) for v in recall[0, :, :].mean(axis=1)}) == 3  # K = 10, 100, 1000 differ here


def test_average_recall_matches_cocoeval_summary(drawn_case):
    truth, result = drawn_case
    _, stats = cocoeval(truth, result)
    recall = ours(truth, result)
    assert list(recall.average_recall("all").values()) == pytest.approx(stats[6:9], abs=1e-12)
    largest = [recall.average_recall(area)[1000] for area in ("small", "medium", "large")]
    assert largest == pytest.approx(stats[9:12], abs=1e-12)


def test_a_results_list_with_ground_truth_ids_scores_the_same_as_the_coco_file(drawn_case):
    truth, result = drawn_case
    ids = {image["file_name"]: image["id"] for image in truth["images"]}
    names = {image["id"]: image["file_name"] for image in result["images"]}
    listed = [
        {"image_id": ids[names[a["image_id"]]], "segmentation": a["segmentation"], "score": a["score"]}
        for a in result["annotations"]
    ]
    np.testing.assert_array_equal(ours(truth, listed).recall, ours(truth, result).recall)


def test_iou_matrix_is_the_iou_of_the_decoded_masks(drawn_case):
    truth, result = drawn_case
    ground_truth = read_ground_truth(truth)
    image_id = next(i for i, image in ground_truth.items() if image.name == "sub/image_1.jpg")
    proposals = read_proposals(result, ground_truth)[image_id].masks[:20]
    ious = iou_matrix(proposals, ground_truth[image_id].masks)
    decoded_p = [rle_to_mask(p) for p in proposals]
    decoded_g = [rle_to_mask(g) for g in ground_truth[image_id].masks]
    expected = [[(p & g).sum() / (p | g).sum() for g in decoded_g] for p in decoded_p]
    np.testing.assert_allclose(ious, expected, rtol=0, atol=1e-12)


def squares(count: int) -> list[np.ndarray]:
    """`count` disjoint 10x10 squares in a 200x260 image."""
    masks = []
    for i in range(count):
        mask = np.zeros(SIZE, dtype=bool)
        row, column = divmod(i, 12)
        mask[20 * row + 5 : 20 * row + 15, 20 * column + 5 : 20 * column + 15] = True
        masks.append(mask)
    return masks


def test_perfect_proposals_give_recall_one():
    masks = squares(5)
    truth = ground_truth_dict([("a.png", masks)], {})
    recall = ours(truth, result_dict([("a.png", masks, [0.9] * 5)]))
    assert recall.average_recall() == {10: 1.0, 100: 1.0, 1000: 1.0}


def test_no_proposals_give_recall_zero():
    truth = ground_truth_dict([("a.png", squares(5))], {})
    assert ours(truth, result_dict([("a.png", [], [])])).average_recall() == {10: 0.0, 100: 0.0, 1000: 0.0}
    assert ours(truth, []).average_recall() == {10: 0.0, 100: 0.0, 1000: 0.0}


def test_a_half_overlap_is_found_only_at_iou_one_half():
    truth_mask = squares(1)[0]
    half = truth_mask.copy()
    half[:, 10:] = False  # the left 10x5 half: IoU 50 / 100
    recall = ours(ground_truth_dict([("a.png", [truth_mask])], {}), result_dict([("a.png", [half], [1.0])]))
    assert recall.recall[0, 0].tolist() == [1.0] + [0.0] * 9
    assert recall.average_recall()[10] == pytest.approx(0.1)


def test_only_the_top_k_by_score_count():
    masks = squares(12)
    scores = [1.0] * 10 + [0.1, 0.2]  # two objects found only by the two lowest-ranked proposals
    recall = ours(ground_truth_dict([("a.png", masks)], {}), result_dict([("a.png", masks, scores)]))
    assert recall.average_recall() == pytest.approx({10: 10 / 12, 100: 1.0, 1000: 1.0})


def test_one_object_is_found_once_however_many_proposals_cover_it():
    mask = squares(1)[0]
    truth = ground_truth_dict([("a.png", [mask, squares(2)[1]])], {})
    recall = ours(truth, result_dict([("a.png", [mask, mask, mask], [0.9, 0.8, 0.7])]))
    assert recall.average_recall()[10] == 0.5


def test_masks_of_another_size_are_refused_with_a_clear_error():
    truth = ground_truth_dict([("a.png", squares(1))], {})
    small = [
        {
            "file_name": "a.png",
            "height": 100,
            "width": 130,
            "records": [{"segmentation": mask_to_rle(np.ones((100, 130), bool)), "predicted_iou": 1.0}],
        }
    ]
    with pytest.raises(EvaluationError, match="100x130 .* 200x260"):
        read_proposals(small[0], read_ground_truth(truth))


def test_result_images_missing_from_the_ground_truth_are_refused():
    truth = ground_truth_dict([("a.png", squares(1))], {})
    with pytest.raises(EvaluationError, match="does not have .*b.png"):
        read_proposals(result_dict([("b.png", squares(1), [1.0])]), read_ground_truth(truth))


def write_output_folder(folder: Path, result: dict, prompts: str) -> None:
    folder.mkdir(parents=True)
    (folder / "annotations.json").write_text(json.dumps(result))
    (folder / "run.json").write_text(json.dumps({"version": 1, "settings": {"model": "m", "prompts": prompts}}))


def test_cli_scores_each_mode_and_writes_json_and_plot(drawn_case, tmp_path: Path, capsys):
    truth, result = drawn_case
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    write_output_folder(tmp_path / "grid", result, "grid")
    perfect = result_dict([(name, masks, [1.0] * len(masks)) for name, masks in ground_truth_images(truth)])
    write_output_folder(tmp_path / "objects", perfect, "objects")
    out = tmp_path / "eval"
    argv = ["eval", str(tmp_path / "grid"), str(tmp_path / "objects"), str(tmp_path / "gt.json"), "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "eval.json").read_text())
    _, stats = cocoeval(truth, result)
    grid, objects = report["results"]
    assert (grid["label"], objects["label"]) == ("grid m", "objects m")
    assert list(grid["average_recall"]["all"].values()) == pytest.approx(stats[6:9], abs=1e-12)
    # the exact masks: all 34 objects found, except 4 of the image with 14 at K = 10
    assert objects["average_recall"]["all"] == pytest.approx({"10": 30 / 34, "100": 1.0, "1000": 1.0})
    assert grid["images_without_proposals"] == 1  # image_2
    assert Image.open(out / "recall.png").format == "PNG"
    assert "AR@1000" in capsys.readouterr().out


def ground_truth_images(truth: dict) -> list[tuple[str, list[np.ndarray]]]:
    ground_truth = read_ground_truth(truth)
    return [(image.name, [rle_to_mask(m) for m in image.masks]) for image in ground_truth.values()]


def test_cli_reports_a_size_mismatch_and_exits_2(tmp_path: Path, capsys):
    (tmp_path / "gt.json").write_text(json.dumps(ground_truth_dict([("a.png", squares(1))], {})))
    record = {"segmentation": mask_to_rle(np.ones((100, 130), bool)), "predicted_iou": 1.0}
    (tmp_path / "a.png.json").write_text(
        json.dumps({"file_name": "a.png", "height": 100, "width": 130, "records": [record]})
    )
    assert main(["eval", str(tmp_path / "a.png.json"), str(tmp_path / "gt.json")]) == 2
    assert "resized copy" in capsys.readouterr().err


def test_a_path_named_eval_is_still_an_input_when_written_dot_slash(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("eval").mkdir()
    assert main(["./eval", "--out", "out", "--random-weights", "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "eval" in error and "GROUND_TRUTH" not in error


def test_the_score_option_chooses_what_ranks_the_top_k():
    objects, junk = squares(12)[:2], squares(12)[2:]  # ten proposals that find nothing
    truth = read_ground_truth(ground_truth_dict([("a.png", objects)], {}))
    result = result_dict([("a.png", objects + junk, [0.1, 0.1] + [1.0] * 10)])
    for annotation in result["annotations"]:
        annotation["stability_score"] = 0.9 if annotation["id"] <= 2 else 0.5

    def at_ten(score: str) -> float:
        return evaluate(read_proposals(result, truth, score), truth).average_recall()[10]

    assert at_ten("auto") == at_ten("predicted_iou") == 0.0  # the two finds are ranked 11th and 12th
    assert at_ten("order") == at_ten("stability_score") == 1.0
    del result["annotations"][0]["stability_score"]
    with pytest.raises(EvaluationError, match="no numeric stability_score"):
        read_proposals(result, truth, "stability_score")
