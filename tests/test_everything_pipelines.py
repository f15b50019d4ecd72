"""python -m everything --prompts objects runs MobileSAMv2 when its files are there, else object-aware boxes with
MobileSAM's decoder; the pipeline is recorded.

MobileSAMv2's files are the conformance data's random weights in the official formats (l2.pt and
Prompt_guided_Mask_Decoder.pt from `mobilesamv2_support.write_official_files`, ObjectAwareModel.pt the random
detector saved by MobileSAMv2's own ultralytics). The reference masks come from `build_mobilesamv2` and
`ObjectAwareMaskGenerator` with `ObjectAwareBoxSource`, called directly at the published settings.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from mobilesamv2_support import DATA_DIR, write_checkpoint_folder, write_truck_piece

from everything import ObjectAwareMaskGenerator
from everything.__main__ import build_parser, generator_spec, main
from everything.box_sources import ObjectAwareBoxSource
from mobile_sam import build_mobilesamv2
from mobile_sam.utils.rle import rle_to_mask
from samkit.checkpoints import load_ultralytics_checkpoint
from samkit.images import load_image
from samkit.knobs import KnobError

CPU = ["--device", "cpu", "--format", "coco", "--no-overlay", "--prompts", "objects"]


@pytest.fixture(scope="module")
def v2_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder holding MobileSAMv2's three files under their official names."""
    return write_checkpoint_folder(tmp_path_factory.mktemp("v2_checkpoints"))


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory, shared_images_dir: Path) -> Path:
    """A 120x80 piece of truck.jpg in which the random detector finds a few boxes (6)."""
    return write_truck_piece(tmp_path_factory.mktemp("photo") / "piece.png", shared_images_dir)


@pytest.fixture(scope="module")
def direct_records(v2_files: Path, photo: Path) -> list[dict]:
    """MobileSAMv2 called directly, as its Inference.py runs: the builder, the detector, the published settings."""
    model = build_mobilesamv2("efficientvit_l2", v2_files / "l2.pt", v2_files / "Prompt_guided_Mask_Decoder.pt")
    detector = ObjectAwareBoxSource(load_ultralytics_checkpoint(v2_files / "ObjectAwareModel.pt"), device="cpu")
    generator = ObjectAwareMaskGenerator(
        model, detector, max_boxes=300, border_snap=0, boxes_per_batch=320, upsampling="torch", output_mode="coco_rle"
    )
    return generator.generate(load_image(photo))


def masks(records: list[dict]) -> np.ndarray:
    return np.stack([rle_to_mask(record["segmentation"]) for record in records])


def spec(*flags: str):
    return generator_spec(build_parser().parse_args(["x.jpg", "--out", "o", "--prompts", "objects", *flags]))


def test_the_cli_runs_mobilesamv2_when_its_files_are_there(
    v2_files: Path, photo: Path, direct_records: list[dict], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    assert main([str(photo), "--out", str(out), "--checkpoint-dir", str(v2_files), *CPU]) == 0
    assert "runs the mobilesamv2 pipeline (its files are in the checkpoint folder)" in capsys.readouterr().err
    coco = json.loads((out / "annotations.json").read_text())
    assert coco["info"]["pipeline"] == "mobilesamv2"
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert (settings["pipeline"], settings["model"], settings["upsampling"], settings["border_snap"]) == (
        "mobilesamv2",
        "mobilesamv2",
        "torch",
        0.0,
    )
    assert set(settings["weights"]) == {"l2.pt", "Prompt_guided_Mask_Decoder.pt"}
    annotations = coco["annotations"]
    assert 0 < len(annotations) == len(direct_records)
    assert [a["box"] for a in annotations] == [r["box"] for r in direct_records]
    assert np.array_equal(masks(annotations), masks(direct_records))


def test_without_v2s_files_objects_mode_is_boxes_with_mobilesams_decoder(tmp_path: Path) -> None:
    shutil.copy(DATA_DIR / "objectaware_seed0.pt", tmp_path / "ObjectAwareModel.pt")  # the detector alone
    chosen = spec("--checkpoint-dir", str(tmp_path))
    assert (chosen.pipeline, chosen.model, chosen.detector) == ("mobilesam-boxes", "vit_t", "fastsam-s")
    assert chosen.settings["border_snap"] == 20.0  # the object-aware generator's own defaults


def test_asking_for_the_other_pipelines_model_or_knobs_keeps_boxes(v2_files: Path) -> None:
    folder = ["--checkpoint-dir", str(v2_files)]
    assert spec(*folder).pipeline == "mobilesamv2"
    assert spec(*folder, "--boxes-per-batch", "8").pipeline == "mobilesamv2"  # memory only: v2 takes it
    assert spec(*folder, "--model", "vit_b").pipeline == "mobilesam-boxes"
    assert spec(*folder, "--detector", "fastsam-x").pipeline == "mobilesam-boxes"
    assert spec(*folder, "--max-boxes", "10").pipeline == "mobilesam-boxes"
    assert spec(*folder, "--pipeline", "mobilesam-boxes").pipeline == "mobilesam-boxes"


def test_mobilesamv2_refuses_knobs_it_does_not_have(v2_files: Path, tmp_path: Path, capsys) -> None:
    code = main(["x.jpg", "--out", str(tmp_path), *CPU, "--pipeline", "mobilesamv2", "--max-boxes", "10"])
    assert code == 2
    assert "max_boxes: not a setting of the mobilesamv2 pipeline" in capsys.readouterr().err


def test_an_explicit_mobilesamv2_names_every_missing_file(photo: Path, tmp_path: Path, capsys) -> None:
    folder = ["--checkpoint-dir", str(tmp_path), "--no-download"]
    assert main([str(photo), "--out", str(tmp_path / "out"), *CPU, "--pipeline", "mobilesamv2", *folder]) == 2
    err = capsys.readouterr().err
    assert "2 missing" in err
    for name in ("l2.pt", "Prompt_guided_Mask_Decoder.pt", "ObjectAwareModel.pt"):
        assert f"save it as\n  {tmp_path / name}" in err


def test_random_weights_run_mobilesamv2_with_the_warning_and_record_it(
    v2_files: Path, photo: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    detector = ["--detector", str(v2_files / "ObjectAwareModel.pt")]
    assert main([str(photo), "--out", str(out), *CPU, "--pipeline", "mobilesamv2", "--random-weights", *detector]) == 0
    assert "MEANINGLESS" in capsys.readouterr().err
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert (settings["pipeline"], settings["weights"]) == ("mobilesamv2", "random (seed 0)")
    assert len(json.loads((out / "annotations.json").read_text())["annotations"]) > 0


def test_the_grid_records_its_pipeline(photo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main([str(photo), "--out", str(out), "--random-weights", "--points-per-side", "2", "--device", "cpu"]) == 0
    assert json.loads((out / "annotations.json").read_text())["info"]["pipeline"] == "grid"
    assert json.loads((out / "run.json").read_text())["settings"]["pipeline"] == "grid"


@pytest.fixture(scope="module")
def app_parts(v2_files: Path):
    """The app's handlers on a server whose checkpoint folder holds MobileSAMv2's files."""
    import app
    from webapp.model_store import ModelStore
    from webapp.parts import Parts

    config = app.AppConfig(random_weights=False, max_image_side=512, download=False)
    return Parts.create(config, ModelStore("cpu", checkpoint_dir=v2_files, download=False))


def test_the_apps_objects_mode_runs_mobilesamv2_when_its_files_are_there(
    app_parts, photo: Path, direct_records: list[dict]
) -> None:
    import asyncio

    from webapp.everything_jobs import EverythingSettings

    answer = asyncio.run(app_parts.everything.answer(str(photo), EverythingSettings(), False, None, mode="objects"))
    assert answer.result.pipeline == "mobilesamv2" and "MobileSAMv2" in answer.summary()
    assert answer.coco()["info"]["pipeline"] == "mobilesamv2"
    assert [record["box"] for record in answer.result.records] == [record["box"] for record in direct_records]
    assert np.array_equal(masks(answer.result.records), masks(direct_records))


def test_the_apps_pipeline_choice(app_parts, tmp_path: Path) -> None:
    from webapp.model_store import ModelStore
    from webapp.parts import Parts

    assert app_parts.everything.pipeline("objects") == "mobilesamv2"
    assert app_parts.everything.pipeline("objects", "mobilesam-boxes") == "mobilesam-boxes"
    assert app_parts.everything.pipeline("grid", "mobilesamv2") == "grid"
    bare = Parts.create(app_parts.config, ModelStore("cpu", checkpoint_dir=tmp_path, download=False))
    assert bare.everything.pipeline("objects") == "mobilesam-boxes"  # nothing of MobileSAMv2's there
    with pytest.raises(ValueError, match="Unknown pipeline"):
        bare.everything.pipeline("objects", "mobilesamv3")


def test_mobilesamv2s_encoder_file_may_be_given_by_path(v2_files: Path, tmp_path: Path) -> None:
    shutil.copy(v2_files / "Prompt_guided_Mask_Decoder.pt", tmp_path / "Prompt_guided_Mask_Decoder.pt")
    flags = ["--pipeline", "mobilesamv2", "--checkpoint", str(v2_files / "l2.pt"), "--checkpoint-dir", str(tmp_path)]
    resolved = spec(*flags, "--boxes", "boxes.json").resolved()  # caller boxes: no detector file needed
    assert (resolved.checkpoint, resolved.detector) == (str(v2_files / "l2.pt"), None)
    assert set(resolved.record()["weights"]) == {"l2.pt", "Prompt_guided_Mask_Decoder.pt"}
    with pytest.raises(KnobError, match="--model applies to"):
        spec(*flags, "--model", "vit_b")
