"""python -m everything on a dataset folder: nothing lost, nothing duplicated, nothing overwritten.

A folder with colliding stems (x.jpg, x.png, x_2.jpg and a/x.jpg: folders recurse, names are paths relative to
the folder given, extension included), a corrupt file and a file added between runs: every readable image is
segmented exactly once, the corrupt one is in failures.json, earlier results are never rewritten, a rerun with
other settings or other files under the same names is refused (or starts over with --restart). The model is a
tiny SAM (`support.compare_support.tiny_sam`) so that the tests run in seconds; the Ray engine's run of the
same dataset, with the real architecture, is in test_everything_ray.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.compare_support import tiny_sam

from everything.__main__ import main
from everything.inputs import InputError, list_inputs

BASE = ["--random-weights", "--device", "cpu"]
FLAGS = [*BASE, "--points-per-side", "2"]
FILTERS_OFF = ["--pred-iou-thresh", "0", "--stability-score-thresh", "0"]
DATASET = ("x.jpg", "x.png", "x_2.jpg", "a/x.jpg")


@pytest.fixture(autouse=True)
def tiny_model(monkeypatch):
    """Every generator the CLI builds runs on a tiny random SAM (256 px input) instead of MobileSAM."""
    from everything.objects import ObjectAwareMaskGenerator
    from everything.spec import GRID, GeneratorSpec
    from mobile_sam import SamAutomaticMaskGenerator

    def build(spec: GeneratorSpec):
        if spec.prompts == GRID:
            return SamAutomaticMaskGenerator(tiny_sam(), output_mode="coco_rle", **spec.settings)
        return ObjectAwareMaskGenerator(tiny_sam(), None, output_mode="coco_rle", **spec.settings)

    monkeypatch.setattr(GeneratorSpec, "build", build)


def write_image(path: Path, seed: int, size: tuple[int, int] = (24, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    for seed, name in enumerate(DATASET):
        write_image(folder / name, seed, (24 + 2 * seed, 32))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def annotations(out: Path) -> dict:
    return json.loads((out / "annotations.json").read_text())


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_names_are_paths_relative_to_the_root_with_their_extension(dataset: Path) -> None:
    names = [item.name for item in list_inputs([dataset])]
    assert names == ["a/x.jpg", "broken.jpg", "x.jpg", "x.png", "x_2.jpg"]
    listing = dataset / "list.txt"
    listing.write_text("x.png\n# a comment\n\na/x.jpg\n")
    assert [item.name for item in list_inputs([listing])] == ["x.png", "a/x.jpg"]
    assert [item.name for item in list_inputs([dataset / "a" / "x.jpg"])] == ["x.jpg"]


def test_the_output_folder_inside_an_input_folder_is_not_read_as_input(dataset: Path) -> None:
    write_image(dataset / "out" / "masks" / "x.jpg" / "mask_0000.png", 9)
    assert "out/masks/x.jpg/mask_0000.png" not in [i.name for i in list_inputs([dataset], out=dataset / "out")]


def test_different_files_under_one_name_are_refused_with_both_named(dataset: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(InputError, match=r"a/x\.jpg.*x\.jpg"):
        list_inputs([dataset / "x.jpg", dataset / "a" / "x.jpg"])
    write_image(dataset / "X.JPG", 7)  # the same name on a case-insensitive disk
    with pytest.raises(InputError, match="X.JPG"):
        list_inputs([dataset])
    assert main([str(dataset / "x.jpg"), str(dataset / "a"), "--out", str(tmp_path / "out"), *FLAGS]) == 2
    assert "would overwrite" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_same_file_given_twice_is_segmented_once(dataset: Path) -> None:
    assert len(list_inputs([dataset / "x.png", dataset / "x.png"])) == 1


def test_every_readable_image_once_the_corrupt_one_in_failures(dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main([str(dataset), "--out", str(out), *FLAGS, *FILTERS_OFF]) == 1
    coco = annotations(out)
    assert [image["file_name"] for image in coco["images"]] == ["a/x.jpg", "x.jpg", "x.png", "x_2.jpg"]
    assert [(image["height"], image["width"]) for image in coco["images"]] == [(30, 32), (24, 32), (26, 32), (28, 32)]
    assert [f["name"] for f in json.loads((out / "failures.json").read_text())] == ["broken.jpg"]
    for image_id, name in enumerate(["a/x.jpg", *DATASET[:3]], start=1):
        count = sum(1 for a in coco["annotations"] if a["image_id"] == image_id)
        assert count >= 1
        assert len(list((out / "masks" / name).glob("mask_*.png"))) == count, name
        assert Image.open(out / "masks" / name / "overlay.png").size == (32, coco["images"][image_id - 1]["height"])
        assert json.loads((out / "results" / f"{name}.json").read_text())["file_name"] == name
    assert "5 images: 4 now, 0 from earlier runs, 1 failed" in capsys.readouterr().err


def test_an_image_added_between_runs_is_segmented_and_nothing_is_rewritten(
    dataset: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    main([str(dataset), "--out", str(out), *FLAGS, *FILTERS_OFF])
    before = snapshot(out)
    write_image(dataset / "x.jpeg", 11)  # a new stem twin
    capsys.readouterr()
    assert main([str(dataset), "--out", str(out), *FLAGS, *FILTERS_OFF]) == 1  # broken.jpg still fails
    assert "6 images: 1 now, 4 from earlier runs, 1 failed" in capsys.readouterr().err
    after = snapshot(out)
    changed = {name for name in before if after[name] != before[name]}
    assert changed == {"annotations.json", "run.json"}
    names = [image["file_name"] for image in annotations(out)["images"]]
    assert names == ["a/x.jpg", "x.jpeg", "x.jpg", "x.png", "x_2.jpg"]
    assert "results/x.jpeg.json" in after and "masks/x.jpeg/overlay.png" in after


def test_a_rerun_with_other_settings_is_refused_with_what_differs(dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    main([str(dataset / "x.png"), "--out", str(out), *FLAGS, *FILTERS_OFF])
    before = snapshot(out)
    capsys.readouterr()
    assert main([str(dataset / "x.png"), "--out", str(out), *FLAGS, "--points-per-side", "3", *FILTERS_OFF]) == 2
    err = capsys.readouterr().err
    assert "points_per_side: 2 -> 3" in err and "--restart" in err
    assert main([str(dataset / "x.png"), "--out", str(out), *FLAGS, "--format", "coco", *FILTERS_OFF]) == 2
    assert "format: 'both' -> 'coco'" in capsys.readouterr().err
    assert snapshot(out) == before
    assert main([str(dataset / "x.png"), "--out", str(out), *FLAGS, "--points-per-side", "3", "--restart"]) == 0
    assert json.loads((out / "run.json").read_text())["settings"]["points_per_side"] == 3


def test_other_weights_are_other_settings(dataset: Path, tmp_path: Path, capsys) -> None:
    import torch

    from samkit.loading import load_model

    checkpoint = tmp_path / "weights.pt"
    torch.save(load_model("vit_t", random_weights=True, seed=1).state_dict(), checkpoint)
    out = tmp_path / "out"
    main([str(dataset / "x.png"), "--out", str(out), *FLAGS])
    capsys.readouterr()
    flags = [flag for flag in FLAGS if flag != "--random-weights"]
    assert main([str(dataset / "x.png"), "--out", str(out), "--checkpoint", str(checkpoint), *flags]) == 2
    assert "weights: 'random (seed 0)' -> '" in capsys.readouterr().err


def test_a_name_made_from_another_file_is_refused(dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    main([str(dataset / "x.png"), "--out", str(out), *FLAGS])
    capsys.readouterr()
    other = write_image(tmp_path / "elsewhere" / "x.png", 5)
    assert main([str(other), "--out", str(out), *FLAGS]) == 2
    err = capsys.readouterr().err
    assert str(dataset / "x.png") in err and str(other) in err


def test_results_without_a_record_are_not_reused(dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    (out / "results" / "x.png.json").write_text("{}")
    assert main([str(dataset / "x.png"), "--out", str(out), *FLAGS]) == 2
    assert "no run.json" in capsys.readouterr().err


def test_a_boxes_file_gives_one_mask_per_box(dataset: Path, tmp_path: Path, capsys) -> None:
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"x.png": {"boxes": [[2, 2, 20, 20], [0, 0, 31, 25]]}, "a/x.jpg": {"boxes": []}}))
    out = tmp_path / "out"
    listing = dataset / "two.txt"
    listing.write_text("x.png\na/x.jpg\n")
    flags = [*BASE, "--border-snap", "0", "--format", "coco"]
    assert main([str(listing), "--out", str(out), "--boxes", str(boxes), *flags]) == 0
    coco = annotations(out)
    assert [image["file_name"] for image in coco["images"]] == ["x.png", "a/x.jpg"]
    assert sorted(a["box"] for a in coco["annotations"]) == [[0.0, 0.0, 31.0, 25.0], [2.0, 2.0, 20.0, 20.0]]
    # other boxes for an image already done are not silently ignored
    boxes.write_text(json.dumps({"x.png": {"boxes": [[1, 1, 9, 9]]}, "a/x.jpg": {"boxes": []}}))
    capsys.readouterr()
    assert main([str(listing), "--out", str(out), "--boxes", str(boxes), *flags]) == 2
    assert "other boxes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"x.png": {"boxes": [[1, 1, 9, 9]]}}, "no boxes for 1 input"),
        ({"x.png": {"boxes": []}, "a/x.jpg": {"boxes": []}, "y.png": {"boxes": []}}, "not inputs: y.png"),
        ({"x.png": {"points": [[1, 1]], "labels": [1]}, "a/x.jpg": {"boxes": []}}, "boxes only"),
        ({"x.png": {"boxes": [[1, 1, "nan", 9]]}, "a/x.jpg": {"boxes": []}}, "NaN or infinite"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_a_bad_boxes_file_is_refused_before_any_work(dataset, tmp_path, capsys, content, message) -> None:
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps(content).replace('"nan"', "NaN"))
    listing = dataset / "two.txt"
    listing.write_text("x.png\na/x.jpg\n")
    assert main([str(listing), "--out", str(tmp_path / "out"), "--boxes", str(boxes), *BASE]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_boxes_and_the_grid_are_refused_together(dataset: Path, tmp_path: Path, capsys) -> None:
    boxes = tmp_path / "boxes.json"
    boxes.write_text("{}")
    args = [str(dataset / "x.png"), "--out", str(tmp_path / "out"), "--boxes", str(boxes), *BASE]
    assert main([*args, "--prompts", "grid"]) == 2
    assert "--prompts objects" in capsys.readouterr().err
