"""python -m distill: help for every option, eval against a re-derivation with SamPredictor, torchrun DDP."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support.distill_support import make_store

from distill.__main__ import build_parser, main
from distill.models import TEST_STUDENT, TEST_TEACHER, adopt_decoder, build_model
from mobile_sam import SamPredictor
from mobile_sam.build_sam import read_state_dict
from samkit.images import load_image
from samkit.metrics import mask_iou
from samkit.protocols import protocol_rng, random_point_cases

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("cli"), count=6)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_and_option_is_explained():
    subcommands = _subparsers(build_parser())
    assert set(subcommands) == {"embed", "train", "finetune-decoder", "eval", "random-teacher"}
    for name, parser in subcommands.items():
        assert parser.description, name
        for action in parser._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
    out = subprocess.run([sys.executable, "-m", "distill", "--help"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "finetune-decoder" in out.stdout and "torchrun" in out.stdout


def test_missing_store_is_a_clear_error(tmp_path, capsys):
    code = main(
        ["train", "--store", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"), "--student", TEST_STUDENT]
    )
    assert code == 2 and "no embedding store" in capsys.readouterr().err


def test_eval_matches_a_rederivation_with_the_predictor(setup, tmp_path):
    images, teacher_path, store = setup
    torch.manual_seed(1)
    teacher = build_model(TEST_TEACHER, teacher_path)
    student = adopt_decoder(build_model(TEST_STUDENT), teacher)
    torch.save(student.state_dict(), tmp_path / "student.pt")
    code = main(
        [
            "eval",
            "--store",
            str(store),
            "--student-checkpoint",
            str(tmp_path / "student.pt"),
            "--student",
            TEST_STUDENT,
            "--teacher-checkpoint",
            str(teacher_path),
            "--out",
            str(tmp_path / "report"),
            "--points",
            "4",
            "--distances",
            "20,500",
            "--pairs",
            "1",
            "--seed",
            "7",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 0
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert (tmp_path / "report" / "miou.png").read_bytes()[:4] == b"\x89PNG"
    assert "| point | all | 24 |" in (tmp_path / "report" / "report.md").read_text()
    assert results["counts"] == {"point/all": 24, "points2/d=20": 6} and results["skipped_prompts"] == 6

    ious, mses = [], []
    ours, theirs = SamPredictor(student.eval()), SamPredictor(teacher.eval())
    for i, path in enumerate(sorted(images.iterdir())):
        image = load_image(path)
        ours.set_image(image)
        theirs.set_image(image)
        mses.append(float(((ours.get_image_embedding() - theirs.get_image_embedding()) ** 2).mean()))
        for case in random_point_cases(image.shape[:2], 4, protocol_rng(7, i)):
            masks = []
            for predictor in (theirs, ours):
                m, scores, _ = predictor.predict(case.prompt.point_coords, case.prompt.point_labels)
                masks.append(m[int(np.argmax(scores))])
            ious.append(mask_iou(*masks))
    assert results["miou"]["point/all"] == pytest.approx(np.mean(ious), abs=0.03)
    assert results["embedding_mse"] == pytest.approx(np.mean(mses), rel=1e-2)


def test_torchrun_two_processes_train_with_gloo(setup, tmp_path):
    _, teacher_path, store = setup
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "distill",
        "train",
        "--store",
        str(store),
        "--out",
        str(tmp_path / "ddp"),
        "--teacher-checkpoint",
        str(teacher_path),
        "--student",
        TEST_STUDENT,
        "--steps",
        "6",
        "--batch-size",
        "1",
        "--lr",
        "3e-3",
        "--warmup",
        "1",
        "--device",
        "cpu",
        "--no-plot",
        "--no-progress",
    ]
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    written = read_state_dict(tmp_path / "ddp" / "mobile_sam.pt")
    expected = build_model(TEST_STUDENT).state_dict()
    assert {k: tuple(v.shape) for k, v in written.items()} == {k: tuple(v.shape) for k, v in expected.items()}
    losses = [float(line.split(",")[3]) for line in (tmp_path / "ddp" / "train_log.csv").read_text().splitlines()[1:]]
    assert len(losses) == 6 and np.mean(losses[-2:]) < np.mean(losses[:2])


def test_embed_of_a_file_says_it_is_not_a_folder(setup, tmp_path, capsys):
    images, teacher, _ = setup
    image = next(images.iterdir())
    code = main(["embed", str(image), "--out", str(tmp_path / "s"), "--teacher", TEST_TEACHER])
    err = capsys.readouterr().err
    assert code == 2 and "is a file, not a folder" in err and "does not exist" not in err


def test_a_teacher_checkpoint_folder_is_named_as_a_folder(setup, tmp_path, capsys):
    images, _, _ = setup
    code = main(["embed", str(images), "--out", str(tmp_path / "s"), "--teacher-checkpoint", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "is a folder" in err and "does not exist" not in err


def test_a_missing_teacher_names_distills_own_options(setup, tmp_path, monkeypatch, capsys):
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setenv("MOBILE_SAM_CACHE_DIR", str(tmp_path / "empty_cache"))
    monkeypatch.setattr("urllib.request.urlopen", offline)
    images, _, _ = setup
    code = main(["embed", str(images), "--out", str(tmp_path / "s"), "--teacher", "vit_b", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "sam_vit_b_01ec64.pth" in err
    assert "--teacher-checkpoint" in err and "--checkpoint-dir" not in err


def test_the_whole_method_runs_offline_with_a_random_teacher(tmp_path, monkeypatch, capsys):
    """The README's offline demo: no checkpoint anywhere and no network, a seeded random teacher file."""
    import urllib.error

    from support.distill_support import write_images

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network here")

    monkeypatch.setenv("MOBILE_SAM_CACHE_DIR", str(tmp_path / "empty_cache"))
    monkeypatch.setattr("urllib.request.urlopen", offline)
    write_images(tmp_path / "train", 3)
    write_images(tmp_path / "heldout", 2, seed=1)
    teacher = tmp_path / "teacher.pt"
    assert main(["random-teacher", "--teacher", TEST_TEACHER, "--seed", "3", "--out", str(teacher)]) == 0
    assert "MEANINGLESS" in capsys.readouterr().err
    torch.manual_seed(3)
    expected = build_model(TEST_TEACHER).state_dict()
    assert all(torch.equal(read_state_dict(teacher)[k], v) for k, v in expected.items())
    quiet = ["--device", "cpu", "--no-progress"]
    with_teacher = ["--teacher-checkpoint", str(teacher), *quiet]
    for images in ("train", "heldout"):
        argv = ["embed", str(tmp_path / images), "--out", str(tmp_path / f"store_{images}"), "--teacher", TEST_TEACHER]
        assert main([*argv, *with_teacher]) == 0
    train_argv = ["train", "--store", str(tmp_path / "store_train"), "--out", str(tmp_path / "run")]
    assert main([*train_argv, "--student", TEST_STUDENT, "--steps", "2", "--batch-size", "1", *with_teacher]) == 0
    eval_argv = ["eval", "--store", str(tmp_path / "store_heldout"), "--student", TEST_STUDENT, "--distances", "10"]
    eval_argv += ["--student-checkpoint", str(tmp_path / "run" / "mobile_sam.pt"), "--out", str(tmp_path / "eval")]
    assert main([*eval_argv, *with_teacher]) == 0
    assert (tmp_path / "eval" / "report.md").is_file()


def test_a_random_teacher_refuses_to_overwrite_a_file(tmp_path, capsys):
    teacher = tmp_path / "teacher.pt"
    teacher.write_bytes(b"precious")
    assert main(["random-teacher", "--teacher", TEST_TEACHER, "--out", str(teacher)]) == 2
    assert "exists" in capsys.readouterr().err and teacher.read_bytes() == b"precious"
