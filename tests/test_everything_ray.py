"""python -m everything --engine ray: the single-process records, failures.json, resume (one local Ray session)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from everything.__main__ import main
from everything.spec import GeneratorSpec
from samkit.images import load_image

REPO_ROOT = Path(__file__).resolve().parents[1]
CROPS = [  # (CC0 photo in assets/, left, top, width, height)
    ("coffee.jpg", 150, 40, 160, 120),
    ("cat_chelsea.jpg", 100, 20, 120, 96),
    ("astronaut.jpg", 180, 60, 96, 128),
    ("rocket.jpg", 200, 100, 64, 80),
    ("retina.jpg", 300, 300, 140, 100),
    ("coffee.jpg", 300, 200, 100, 100),
]
SETTINGS = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
# Ray Data reads its own deprecated settings when it ships its context to the workers.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray (2 CPUs) for every test here; `run_ray` uses it instead of starting its own."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for i, (name, left, top, width, height) in enumerate(CROPS):
        Image.open(REPO_ROOT / "assets" / name).convert("RGB").crop((left, top, left + width, top + height)).save(
            folder / f"img{i}.png"
        )
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def cli_args(conformance_dir: Path) -> list[str]:
    return [
        "--checkpoint",
        str(conformance_dir / "mobile_sam_vit_t_seed0.pt"),
        "--device",
        "cpu",
        "--points-per-side",
        "4",
        "--pred-iou-thresh",
        "0",
        "--stability-score-thresh",
        "0",
        "--engine",
        "ray",
        "--num-workers",
        "2",
    ]


@pytest.fixture(scope="module")
def first_run(ray_session, images: Path, conformance_dir: Path, tmp_path_factory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("out")
    return out, main([str(images), "--out", str(out), *cli_args(conformance_dir)])


def test_ray_results_are_the_single_process_records(first_run, images: Path, conformance_dir: Path) -> None:
    out, _ = first_run
    spec = GeneratorSpec(checkpoint=str(conformance_dir / "mobile_sam_vit_t_seed0.pt"), device="cpu", settings=SETTINGS)
    generator = spec.build()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each Ray worker (1 CPU each), so float sums run in the same order
    try:
        for i in range(len(CROPS)):
            expected = generator.generate(load_image(images / f"img{i}.png"))
            result = json.loads((out / "results" / f"img{i}.png.json").read_text())
            assert result["records"] == json.loads(json.dumps(expected)), i
            assert len(expected) >= 1
    finally:
        torch.set_num_threads(threads)
    coco = json.loads((out / "annotations.json").read_text())
    assert [image["file_name"] for image in coco["images"]] == [f"img{i}.png" for i in range(len(CROPS))]


def test_a_corrupt_image_is_listed_in_failures_and_the_others_complete(first_run) -> None:
    out, code = first_run
    assert code == 1
    failures = json.loads((out / "failures.json").read_text())
    assert [Path(failure["file"]).name for failure in failures] == ["broken.jpg"]
    assert "ImageLoadError" in failures[0]["error"]
    assert sorted(p.name for p in (out / "results").iterdir()) == sorted(f"img{i}.png.json" for i in range(len(CROPS)))


def test_a_rerun_recomputes_only_the_missing_result(first_run, images: Path, conformance_dir: Path, capsys) -> None:
    out, _ = first_run
    listing = images / "good.txt"
    listing.write_text("".join(f"img{i}.png\n" for i in range(len(CROPS))))  # a list file, without the broken image
    before = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    deleted = out / "results" / "img3.png.json"
    expected = deleted.read_text()
    deleted.unlink()
    capsys.readouterr()
    assert main([str(listing), "--out", str(out), *cli_args(conformance_dir)]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    assert {name for name in after if after[name] != before.get(name)} == {"img3.png.json"}
    assert json.loads(deleted.read_text())["records"] == json.loads(expected)["records"]
    assert "6 images: 1 now, 5 from earlier runs" in capsys.readouterr().err
    assert json.loads((out / "failures.json").read_text()) == []


def test_a_dataset_with_colliding_names_a_corrupt_and_an_added_file(ray_session, tmp_path: Path, capsys) -> None:
    """The dataset test of test_everything_dataset.py on Ray (random MobileSAM, a 2x2 grid): every readable image
    once under its own name, the corrupt one in failures.json, nothing rewritten by a rerun that adds an image,
    and the local engine resuming the Ray run's results."""
    data = tmp_path / "data"
    for seed, name in enumerate(("x.jpg", "x.png", "a/x.jpg")):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        Image.open(REPO_ROOT / "assets" / CROPS[seed][0]).convert("RGB").crop((0, 0, 40 + seed, 30)).save(data / name)
    (data / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    flags = ["--random-weights", "--device", "cpu", "--points-per-side", "2", "--pred-iou-thresh", "0"]
    flags += ["--stability-score-thresh", "0", "--num-workers", "2"]
    assert main([str(data), "--out", str(out), *flags, "--engine", "ray"]) == 1
    coco = json.loads((out / "annotations.json").read_text())
    assert [(i["file_name"], i["width"]) for i in coco["images"]] == [("a/x.jpg", 42), ("x.jpg", 40), ("x.png", 41)]
    assert [f["name"] for f in json.loads((out / "failures.json").read_text())] == ["broken.jpg"]
    for name in ("a/x.jpg", "x.jpg", "x.png"):
        assert (out / "masks" / name / "overlay.png").is_file() and list((out / "masks" / name).glob("mask_*.png"))
    before = {p: p.read_bytes() for p in (out / "results").rglob("*.json")}
    Image.open(REPO_ROOT / "assets" / CROPS[3][0]).convert("RGB").crop((0, 0, 30, 30)).save(data / "x_2.jpg")
    capsys.readouterr()
    assert main([str(data), "--out", str(out), *flags, "--engine", "ray"]) == 1
    assert "5 images: 1 now, 3 from earlier runs, 1 failed" in capsys.readouterr().err
    assert all(path.read_bytes() == data for path, data in before.items())
    coco = json.loads((out / "annotations.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == ["a/x.jpg", "x.jpg", "x.png", "x_2.jpg"]
    (data / "broken.jpg").unlink()
    assert main([str(data), "--out", str(out), *flags]) == 0  # the local engine takes up the Ray run's results
    assert "4 images: 0 now, 4 from earlier runs, 0 failed" in capsys.readouterr().err
