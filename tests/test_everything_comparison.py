"""Segment everything, side by side (`everything.comparison`, `python -m everything compare`).

References: agreement is re-derived here with numpy (mask IoU, best IoU, greedy one-to-one matching in score order)
on small synthetic masks; each pipeline's masks come from its generator called directly (a second instance, the
same settings); MobileSAMv2 is the conformance data's random weights in the official formats with its random
detector (as in tests/test_everything_pipelines.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mobilesamv2_support import write_checkpoint_folder, write_truck_piece
from PIL import Image

from everything import ObjectAwareMaskGenerator, SamAutomaticMaskGenerator
from everything.__main__ import main
from everything.box_sources import ObjectAwareBoxSource, UltralyticsBoxSource
from everything.comparison import agreement, compare_pipelines, comparison_rows
from everything.pipelines import mobilesamv2_generator
from mobile_sam import build_mobilesamv2
from mobile_sam.utils.rle import mask_to_rle, rle_to_mask
from samkit.checkpoints import CheckpointNotFoundError, load_ultralytics_checkpoint
from samkit.images import load_image
from samkit.loading import load_model

GRID_SETTINGS = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}


def record(mask: np.ndarray, score: float) -> dict:
    return {"segmentation": mask_to_rle(mask), "area": int(mask.sum()), "predicted_iou": score}


def box_mask(x0: int, y0: int, x1: int, y1: int, size: tuple[int, int] = (40, 60)) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def plain_agreement(reference: list[dict], records: list[dict]) -> tuple[float, float, float]:
    """(recall at 0.5, recall at 0.75, mean best IoU) of records against the reference, re-derived with numpy."""
    truth = [rle_to_mask(r["segmentation"]).astype(bool) for r in reference]
    found = [rle_to_mask(r["segmentation"]).astype(bool) for r in records]
    ious = np.array([[(f & t).sum() / max((f | t).sum(), 1) for t in truth] for f in found]).reshape(len(found), -1)
    best = ious.max(axis=0).mean() if found else 0.0
    order = sorted(range(len(records)), key=lambda i: -records[i]["predicted_iou"])
    recalls = []
    for threshold in (0.5, 0.75):
        matched: set[int] = set()
        for p in order:
            free = [g for g in range(len(truth)) if g not in matched and ious[p, g] >= threshold]
            if free:
                matched.add(max(free, key=lambda g: ious[p, g]))
        recalls.append(len(matched) / len(truth))
    return recalls[0], recalls[1], float(best)


def test_agreement_on_synthetic_masks_is_recall_and_mean_best_iou() -> None:
    a, a_twin, b = box_mask(0, 0, 20, 20), box_mask(0, 0, 20, 18), box_mask(30, 10, 50, 30)
    c = box_mask(40, 32, 60, 40)
    reference = [record(a, 0.9), record(a_twin, 0.8), record(b, 0.7), record(c, 0.6)]
    records = [
        record(a, 0.9),  # a exactly, and a_twin at IoU 0.9: one-to-one, so it finds one of them
        record(box_mask(30, 10, 50, 24), 0.8),  # b at IoU 0.7
        record(box_mask(0, 30, 10, 40), 0.5),  # nothing
    ]
    found = agreement(reference, records)
    recall_50, recall_75, best = plain_agreement(reference, records)
    assert (recall_50, recall_75) == (0.5, 0.25)  # the case is what it says: a and b at 0.5, a at 0.75
    assert found.recall == {0.5: pytest.approx(recall_50), 0.75: pytest.approx(recall_75)}
    assert found.mean_best_iou == pytest.approx(best) == pytest.approx((1 + 0.9 + 0.7 + 0) / 4)
    nothing = agreement(reference, [])
    assert nothing.recall == {0.5: 0.0, 0.75: 0.0} and nothing.mean_best_iou == 0.0
    assert agreement([], records) is None


# -- each pipeline's numbers are its generator's ---------------------------------------------------------------
@pytest.fixture(scope="module")
def photo_path(tmp_path_factory: pytest.TempPathFactory, shared_images_dir: Path) -> Path:
    """A 120x80 piece of truck.jpg in which the random detector finds a few boxes."""
    return write_truck_piece(tmp_path_factory.mktemp("photo") / "piece.png", shared_images_dir)


@pytest.fixture(scope="module")
def v2_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint_folder(tmp_path_factory.mktemp("v2_checkpoints"))


def builders(v2_files: Path) -> dict:
    """Each pipeline's generator, built directly: random MobileSAM, MobileSAMv2's files, the small random detector."""
    mobile_sam = load_model("vit_t", random_weights=True, seed=0)
    detector = load_ultralytics_checkpoint(v2_files / "ObjectAwareModel.pt")
    v2 = build_mobilesamv2("efficientvit_l2", v2_files / "l2.pt", v2_files / "Prompt_guided_Mask_Decoder.pt")
    return {
        "grid": lambda: SamAutomaticMaskGenerator(mobile_sam, output_mode="coco_rle", **GRID_SETTINGS),
        "mobilesamv2": lambda: ObjectAwareMaskGenerator(
            v2,
            ObjectAwareBoxSource(detector, device="cpu"),
            border_snap=0,
            boxes_per_batch=320,
            upsampling="torch",
            output_mode="coco_rle",
        ),
        "mobilesam-boxes": lambda: ObjectAwareMaskGenerator(
            mobile_sam, UltralyticsBoxSource(detector, device="cpu"), output_mode="coco_rle"
        ),
    }


@pytest.fixture(scope="module")
def direct(v2_files: Path, photo_path: Path) -> dict[str, list[dict]]:
    """Each pipeline's records, its generator called directly."""
    image = load_image(photo_path)
    return {name: build().generate(image) for name, build in builders(v2_files).items()}


def test_the_comparisons_numbers_are_each_pipelines_own(v2_files: Path, photo_path: Path, direct: dict) -> None:
    image = load_image(photo_path)
    assert all(direct.values()), "every pipeline finds masks on this piece"
    build = builders(v2_files)
    published = build["mobilesamv2"]()  # "mobilesamv2" as the pipelines module sets it up, from the same parts
    build["mobilesamv2"] = lambda: mobilesamv2_generator(published.model, published.box_source, output_mode="coco_rle")
    fractions: list[float] = []
    runs = compare_pipelines(image, list(direct), lambda name: build[name](), progress=fractions.append)
    assert fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    for run in runs:
        mine = [rle_to_mask(r["segmentation"]) for r in run.records]
        assert np.array_equal(mine, [rle_to_mask(r["segmentation"]) for r in direct[run.pipeline]]), run.pipeline
        assert run.seconds["encoder"] > 0 and run.seconds["decoder"] > 0
        assert sum(run.seconds[stage] for stage in ("detector", "encoder", "decoder")) <= run.seconds["total"] * 1.001
    assert runs[0].seconds["detector"] == 0.0 and runs[1].seconds["detector"] > 0
    rows = comparison_rows(runs, "grid")
    assert [(row["pipeline"], row["status"], row["masks"]) for row in rows] == [
        (name, "reference" if name == "grid" else "ok", len(found)) for name, found in direct.items()
    ]
    for reference in direct:
        for row in comparison_rows(runs, reference):
            expected = plain_agreement(direct[reference], direct[row["pipeline"]])
            assert (row["recall_50"], row["recall_75"], row["mean_best_iou"]) == pytest.approx(expected)
    assert [row["total_ms"] for row in rows] == pytest.approx([1000 * run.seconds["total"] for run in runs])


def test_a_pipeline_without_its_files_is_skipped_naming_them(tmp_path: Path) -> None:
    def build(name: str):
        raise CheckpointNotFoundError("not found")

    runs = compare_pipelines(np.zeros((8, 8, 3), np.uint8), ["mobilesamv2"], build, checkpoint_dir=tmp_path)
    assert runs[0].records == [] and runs[0].skipped.startswith("missing ")
    for name in ("l2.pt", "Prompt_guided_Mask_Decoder.pt", "ObjectAwareModel.pt"):
        assert str(tmp_path / name) in runs[0].skipped
    assert comparison_rows(runs, "mobilesamv2")[0]["masks"] is None


# -- the command line ---------------------------------------------------------------------------------------------
def test_the_cli_writes_the_comparison_and_skips_what_it_cannot_run(
    v2_files: Path, photo_path: Path, direct: dict, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    argv = ["compare", str(photo_path), "--out", str(out), "--pipelines", "grid,mobilesamv2", "--reference"]
    folder = ["--checkpoint-dir", str(v2_files), "--no-download", "--device", "cpu"]
    assert main([*argv, "mobilesamv2", *folder]) == 0
    printed = capsys.readouterr().out
    assert "skipped: missing" in printed and "mobile_sam.pt" in printed
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json", "masks_mobilesamv2.json", "side_by_side.png"]
    report = json.loads((out / "comparison.json").read_text())
    grid, v2 = report["rows"]
    assert grid["status"] == f"skipped: missing {v2_files / 'mobile_sam.pt'}" and grid["masks"] is None
    found = direct["mobilesamv2"]
    assert (v2["status"], v2["masks"], v2["recall_50"], v2["mean_best_iou"]) == ("reference", len(found), 1.0, 1.0)
    coco = json.loads((out / "masks_mobilesamv2.json").read_text())
    assert coco["info"]["pipeline"] == "mobilesamv2" and coco["images"][0]["file_name"] == photo_path.name
    written = [rle_to_mask(a["segmentation"]) for a in coco["annotations"]]
    assert np.array_equal(written, [rle_to_mask(r["segmentation"]) for r in found])
    assert Image.open(out / "side_by_side.png").format == "PNG"


def test_the_cli_reports_when_nothing_could_run(tmp_path: Path, photo_path: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["compare", str(photo_path), "--out", str(out), "--pipelines", "mobilesamv2", "--reference", "mobilesamv2"]
    assert main([*argv, "--checkpoint-dir", str(tmp_path), "--no-download"]) == 1
    assert "l2.pt" in capsys.readouterr().out
    assert [p.name for p in out.iterdir()] == ["comparison.json"]
    with pytest.raises(SystemExit) as refused:
        main(["compare", str(photo_path), "--out", str(out), "--pipelines", "grid", "--reference", "mobilesamv2"])
    assert refused.value.code == 2
    assert main(["compare", str(photo_path), "--out", str(out), "--device", "tpu"]) == 2
    assert "Unknown device 'tpu'" in capsys.readouterr().err
