"""`python -m compare`: end to end on small images with random weights, errors, and the parameter table."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.compare_support import small_image, tiny_sam
from support.fastsam_peer import ultralytics_selection

from compare.backends import FastSamBackend, SamBackend
from compare.cli import main
from compare.models import BuildOptions, build_backend
from compare.report import RANDOM_WEIGHTS_NOTE
from compare.results import ComparisonResult
from mobile_sam import SamPredictor

REPO_ROOT = Path(__file__).resolve().parents[1]


def small_factory(name: str, options: BuildOptions):
    """The CLI's factory with two test sizes: "vit_b" is a tiny SAM configuration, FastSAM runs at 128 px."""
    if name == "vit_b":
        return SamBackend("vit_b", model=tiny_sam(), device=options.device)
    if name == "fastsam-s":
        return FastSamBackend(
            "s",
            random_weights=options.random_weights,
            device=options.device,
            image_size=128,
            num_threads=options.num_threads,
            rules=options.fastsam_rules,
        )
    return build_backend(name, options)


@pytest.fixture
def images(tmp_path):
    paths = [tmp_path / "one.png", tmp_path / "two.png"]
    Image.fromarray(small_image(96, 128, seed=0)).save(paths[0])
    Image.fromarray(small_image(120, 90, seed=1)).save(paths[1])
    return [str(p) for p in paths]


def test_cli_runs_end_to_end_with_random_weights(images, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            *images,
            "--reference",
            "vit_b",
            "--models",
            "vit_t,fastsam-s",
            "--protocol",
            "points2",
            "--distances",
            "20,40",
            "--prompts-per-image",
            "2",
            "--seed",
            "0",
            "--warmup",
            "0",
            "--out",
            str(out),
            "--random-weights",
            "--device",
            "cpu",
        ],
        factory=small_factory,
    )
    assert code == 0
    result = ComparisonResult.load_json(out / "results.json")
    assert result.models == ["vit_b", "vit_t", "fastsam-s"]
    assert len(result.cases) == 2 * 2 * 2 * 3
    assert {r.image for r in result.encoder_runs} == {"one.png", "two.png"}
    assert result.settings["random_weights"] is True and result.settings["device"] == "cpu"
    assert result.settings["fastsam_rules"] == "original"
    for name in ("cases.csv", "encoder.csv", "latency.png", "miou_vs_distance.png", "masks.png"):
        assert (out / name).stat().st_size > 0
    assert RANDOM_WEIGHTS_NOTE in (out / "report.md").read_text()
    assert "| vit_t |" in capsys.readouterr().out
    assert "follow the 'original' prompt rules: the FastSAM authors'" in (out / "report.md").read_text()


def test_fastsam_rules_option_reaches_fastsam_and_is_recorded(images, tmp_path):
    built = []

    def factory(name: str, options: BuildOptions):
        if name == "vit_b":
            return SamBackend("vit_b", model=tiny_sam(), device=options.device)
        backend = FastSamBackend(
            "s", random_weights=True, device="cpu", image_size=128, confidence=0.0, rules=options.fastsam_rules
        )
        built.append(backend)
        return backend

    argv = [images[0], "--reference", "vit_b", "--models", "fastsam-s", "--distances", "20,40", "--warmup", "0"]
    argv += ["--prompts-per-image", "3", "--random-weights", "--device", "cpu", "--out", str(tmp_path / "out")]
    assert main([*argv, "--fastsam-rules", "ultralytics"], factory=factory) == 0
    result = ComparisonResult.load_json(tmp_path / "out" / "results.json")
    assert result.settings["fastsam_rules"] == "ultralytics"
    instances = built[0].instances
    assert instances.shape[0] > 0
    for case in (c for c in result.cases if c.model == "fastsam-s"):
        points, labels = np.array(case.prompt["points"]), np.array(case.prompt["labels"])
        assert case.mask_area == ultralytics_selection(instances, points, labels).sum()
    assert "'ultralytics' prompt rules" in (tmp_path / "out" / "report.md").read_text()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


EFFICIENTVIT = ["efficientvit_sam_l0", "efficientvit_sam_xl0"]


def test_efficientvit_sam_rows_agree_with_their_own_predictor(tmp_path):
    """EfficientViT-SAM L0 and XL0 (random weights) against a tiny SAM: every IoU, the report's mIoU, the latency
    split and the parameter totals, recomputed through mobile_sam.SamPredictor and the official state dicts."""
    path = tmp_path / "one.png"
    rgb = small_image(96, 128, seed=3)
    Image.fromarray(rgb).save(path)
    models = {}

    def factory(name: str, options: BuildOptions):
        if name == "vit_b":
            backend = SamBackend("vit_b", model=tiny_sam(), device=options.device)
        else:
            backend = build_backend(name, options)
        models[name] = backend.model
        return backend

    out = tmp_path / "out"
    argv = [str(path), "--reference", "vit_b", "--models", ",".join(EFFICIENTVIT), "--distances", "30"]
    argv += ["--prompts-per-image", "3", "--warmup", "0", "--random-weights", "--device", "cpu", "--out", str(out)]
    assert main(argv, factory=factory) == 0
    result = ComparisonResult.load_json(out / "results.json")
    assert result.models == ["vit_b", *EFFICIENTVIT]
    masks = {}
    for name in result.models:
        predictor = SamPredictor(models[name])
        predictor.set_image(rgb)
        cases = [c for c in result.cases if c.model == name]
        assert len(cases) == 3
        masks[name] = []
        for case in cases:  # two points: one mask
            points, labels = np.array(case.prompt["points"]), np.array(case.prompt["labels"])
            masks[name].append(predictor.predict(points, labels, multimask_output=False)[0][0])
    report = (out / "report.md").read_text()
    shapes = json.loads((REPO_ROOT / "tests/conformance_data/efficientvit/state_dict_shapes.json").read_text())
    for name in EFFICIENTVIT:
        ious = [_iou(mine, ref) for mine, ref in zip(masks[name], masks["vit_b"])]
        cases = [c for c in result.cases if c.model == name]
        assert [c.iou for c in cases] == pytest.approx(ious, abs=1e-9)
        assert [c.mask_area for c in cases] == [int(m.sum()) for m in masks[name]]
        assert f"| {name} | {np.mean(ious):.3f} (3) |" in report
        assert result.encoder_stats(name).median_ms > 0 and result.decoder_stats(name).median_ms > 0
        buffers = {key for key, _ in models[name].named_buffers()}
        official = shapes[name.removeprefix("efficientvit_sam_")]
        total = sum(math.prod(shape) for key, shape, _ in official if key not in buffers)
        assert result.parameters[name]["total"] == total


def test_unknown_fastsam_rules_are_refused(images, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*images, "--fastsam-rules", "paper", "--out", str(tmp_path)])
    assert info.value.code == 2 and "--fastsam-rules" in capsys.readouterr().err


def _tiny_unseeded_factory(name: str, options: BuildOptions):
    return SamBackend(name, model=tiny_sam(seed=None), device=options.device)


def test_random_weights_are_the_same_for_a_seed(images, tmp_path):
    args = [
        "--reference",
        "vit_b",
        "--models",
        "vit_l",
        "--protocol",
        "point",
        "--prompts-per-image",
        "3",
        "--warmup",
        "0",
        "--random-weights",
        "--device",
        "cpu",
        "--seed",
        "5",
    ]
    for run in ("a", "b"):
        assert main([*images, *args, "--out", str(tmp_path / run)], factory=_tiny_unseeded_factory) == 0
    a, b = (ComparisonResult.load_json(tmp_path / run / "results.json") for run in ("a", "b"))
    assert [(c.iou, c.mask_area) for c in a.cases] == [(c.iou, c.mask_area) for c in b.cases]


def test_missing_checkpoint_says_where_to_get_it(images, tmp_path, capsys):
    empty = tmp_path / "checkpoints"
    empty.mkdir()
    code = main([*images, "--out", str(tmp_path / "out"), "--checkpoint-dir", str(empty), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "sam_vit_h_4b8939.pth" in err and str(empty) in err and "https://" in err and "--random-weights" in err


def test_reference_listed_among_the_models_is_rejected(images, tmp_path):
    with pytest.raises(SystemExit) as info:
        main([*images, "--reference", "vit_t", "--models", "vit_t", "--out", str(tmp_path)])
    assert info.value.code == 2


def test_unknown_model_is_rejected(images, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*images, "--models", "vit_x", "--out", str(tmp_path)])
    assert "unknown model 'vit_x'" in capsys.readouterr().err


def test_user_protocol_needs_a_prompts_file(images, tmp_path):
    with pytest.raises(SystemExit):
        main([*images, "--protocol", "user", "--out", str(tmp_path)])


def test_params_prints_counts_matching_the_official_checkpoint(conformance_dir, capsys):
    assert main(["params", "--models", "vit_b"]) == 0
    shapes = json.loads((conformance_dir / "official_state_dict_shapes.json").read_text())["vit_b"]
    buffers = ("pixel_mean", "pixel_std", "positional_encoding_gaussian_matrix")
    total = sum(math.prod(s) for k, s in shapes.items() if not k.endswith(buffers))
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| vit_b |"))
    assert f"| {total / 1e6:.3f}M |" in row


def test_module_entry_point_prints_help():
    done = subprocess.run(
        [sys.executable, "-m", "compare", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "--random-weights" in done.stdout


def _two_tiny_sams(name: str, options: BuildOptions):
    return SamBackend(name, model=tiny_sam(), device=options.device)


def test_distances_that_do_not_fit_a_small_photo_are_left_out_with_a_note(tmp_path, capsys):
    """A 225x400 photo (diagonal 458 px) with the default distances, up to 500 px: 500 is left out, and said so."""
    small = tmp_path / "small.jpg"
    Image.fromarray(small_image(225, 400, seed=2)).save(small)
    out = tmp_path / "out"
    argv = [str(small), "--reference", "vit_b", "--models", "vit_l", "--random-weights", "--device", "cpu"]
    assert main([*argv, "--prompts-per-image", "1", "--warmup", "0", "--out", str(out)], factory=_two_tiny_sams) == 0
    result = ComparisonResult.load_json(out / "results.json")
    assert sorted({c.distance for c in result.cases}) == [100.0, 200.0, 300.0, 400.0]
    assert result.settings["skipped_distances"] == {"small.jpg": [500.0]}
    note = "left out: small.jpg (400x225): 500 px"
    assert note in (out / "report.md").read_text() and note in capsys.readouterr().err


def test_no_distance_fitting_any_image_is_an_error(tmp_path, capsys):
    small = tmp_path / "small.png"
    Image.fromarray(small_image(20, 30, seed=2)).save(small)
    argv = [str(small), "--reference", "vit_b", "--models", "vit_l", "--random-weights", "--device", "cpu"]
    assert main([*argv, "--distances", "100", "--out", str(tmp_path / "out")], factory=_two_tiny_sams) == 2
    assert "no distance fits" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("distances", ["nan", "inf", "100,nan", "-5", "0", "abc", ""])
def test_bad_distances_are_refused(tmp_path, capsys, distances):
    with pytest.raises(SystemExit) as exit_info:
        main(["x.png", "--distances", distances, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "argument --distances" in capsys.readouterr().err
