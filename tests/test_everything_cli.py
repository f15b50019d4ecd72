"""python -m everything: folders, outputs, skipped unreadable images, exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from everything.__main__ import main
from everything.inputs import list_inputs

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST = ["--random-weights", "--points-per-side", "2", "--device", "cpu"]


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (30, 20), dtype=np.uint8)).save(folder / "b.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folders_expand_to_their_images_in_order(images: Path) -> None:
    assert [item.name for item in list_inputs([images])] == ["a.png", "b.jpg"]


def test_cli_writes_coco_json_mask_pngs_and_overlays(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main([str(images), "--out", str(out), *FAST, "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]) == 0
    coco = json.loads((out / "annotations.json").read_text())
    assert [image["file_name"] for image in coco["images"]] == ["a.png", "b.jpg"]  # relative to the folder given
    assert (coco["images"][0]["height"], coco["images"][0]["width"]) == (40, 60)
    for name, image_id in (("a.png", 1), ("b.jpg", 2)):
        assert Image.open(out / "masks" / name / "overlay.png").size == Image.open(images / name).size
        n_masks = sum(1 for a in coco["annotations"] if a["image_id"] == image_id)
        assert len(list((out / "masks" / name).glob("mask_*.png"))) == n_masks


def test_unreadable_image_is_skipped_and_the_exit_status_is_1(images: Path, tmp_path: Path, capsys) -> None:
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    assert main([str(images), "--out", str(out), "--format", "coco", *FAST]) == 1
    assert "broken.jpg" in capsys.readouterr().err
    coco = json.loads((out / "annotations.json").read_text())
    assert len(coco["images"]) == 2


def test_random_weights_print_a_warning(images: Path, tmp_path: Path, capsys) -> None:
    main([str(images / "a.png"), "--out", str(tmp_path / "out"), "--format", "coco", "--no-overlay", *FAST])
    assert "MEANINGLESS" in capsys.readouterr().err


def test_missing_checkpoint_is_reported_without_traceback(images: Path, tmp_path: Path, capsys) -> None:
    code = main([str(images), "--out", str(tmp_path / "out"), "--checkpoint", str(tmp_path / "missing.pt")])
    assert code == 2
    assert "missing.pt" in capsys.readouterr().err


def test_help_explains_the_generator_knobs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "everything", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert "--pred-iou-thresh" in result.stdout and "--min-mask-region-area" in result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning exists on Linux only")
def test_keep_freed_memory_is_accepted_by_glibc() -> None:
    from samkit.allocator import keep_freed_memory

    assert keep_freed_memory() is True


def test_objects_mode_defaults_to_mobilesamv2_filters_and_grid_to_the_official_ones() -> None:
    from everything.__main__ import build_parser, generator_spec

    boxes = ["--prompts", "objects", "--pipeline", "mobilesam-boxes"]  # whatever the checkpoint cache holds
    objects = generator_spec(build_parser().parse_args(["x.jpg", "--out", "o", *boxes])).settings
    grid = generator_spec(build_parser().parse_args(["x.jpg", "--out", "o"])).settings
    assert (objects["pred_iou_thresh"], objects["stability_score_thresh"], objects["box_nms_thresh"]) == (
        0.0,
        0.0,
        None,
    )
    assert (objects["max_boxes"], objects["border_snap"]) == (300, 20.0)
    assert (grid["pred_iou_thresh"], grid["stability_score_thresh"], grid["box_nms_thresh"]) == (0.88, 0.95, 0.7)
    explicit = generator_spec(build_parser().parse_args(["x.jpg", "--out", "o", *boxes, "--pred-iou-thresh", "0.5"]))
    assert explicit.settings["pred_iou_thresh"] == 0.5


def test_upsampling_flag_reaches_the_generator_and_defaults_per_mode() -> None:
    from everything.__main__ import build_parser, generator_spec

    def spec(*flags: str):
        return generator_spec(build_parser().parse_args(["x.jpg", "--out", "o", "--random-weights", *flags]))

    assert spec().build().upsampling == "torch"  # the grid's official values unless asked
    assert spec("--upsampling", "opencv").build().upsampling == "opencv"
    boxes = ("--prompts", "objects", "--pipeline", "mobilesam-boxes")
    assert spec(*boxes).settings["upsampling"] == "opencv"  # the object-aware generator's default
    assert spec(*boxes, "--upsampling", "torch").settings["upsampling"] == "torch"
    with pytest.raises(SystemExit):
        spec("--upsampling", "nearest")


def test_objects_mode_segments_the_boxes_of_a_detector_file(images: Path, tmp_path: Path, capsys) -> None:
    import torch
    from test_everything_box_sources import forced_fastsam

    torch.save({"model": forced_fastsam()}, tmp_path / "detector.pt")
    out = tmp_path / "out"
    code = main(
        [
            str(images / "a.png"),
            "--out",
            str(out),
            "--random-weights",
            "--device",
            "cpu",
            "--format",
            "coco",
            "--no-overlay",
            "--prompts",
            "objects",
            "--detector",
            str(tmp_path / "detector.pt"),
            "--max-boxes",
            "3",
        ]
    )
    assert code == 0
    annotations = json.loads((out / "annotations.json").read_text())["annotations"]
    assert len(annotations) == 3  # one mask per box, no filter
    assert "different algorithm" in capsys.readouterr().err


def test_help_says_that_objects_mode_is_a_different_algorithm() -> None:
    text = " ".join(build_help().split())
    assert "--prompts" in text and "DIFFERENT algorithm" in text and "--engine" in text and "--ray-address" in text


def build_help() -> str:
    from everything.__main__ import build_parser

    return build_parser().format_help()


def test_num_workers_below_one_is_refused_before_ray_starts(monkeypatch, images: Path, tmp_path: Path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # starting Ray would fail otherwise: the refusal must come first
    with pytest.raises(SystemExit) as exit_info:
        main([str(images), "--out", str(tmp_path / "out"), "--engine", "ray", "--num-workers", "-2"])
    assert exit_info.value.code == 2 and "--num-workers: must be an integer >= 1, got '-2'" in capsys.readouterr().err
    from samkit.ray_map import ray_map

    with pytest.raises(ValueError, match="workers must be at least 1"), ray_map([{"x": 1}], object, {}, workers=0):
        pass
