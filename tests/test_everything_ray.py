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
            result = json.loads((out / "results" / f"img{i}.json").read_text())
            assert result["records"] == json.loads(json.dumps(expected)), i
            assert len(expected) >= 1
    finally:
        torch.set_num_threads(threads)
    coco = json.loads((out / "annotations.json").read_text())
    assert [Path(image["file_name"]).name for image in coco["images"]] == [f"img{i}.png" for i in range(len(CROPS))]


def test_a_corrupt_image_is_listed_in_failures_and_the_others_complete(first_run) -> None:
    out, code = first_run
    assert code == 1
    failures = json.loads((out / "failures.json").read_text())
    assert [Path(failure["file"]).name for failure in failures] == ["broken.jpg"]
    assert "ImageLoadError" in failures[0]["error"]
    assert sorted(p.name for p in (out / "results").iterdir()) == sorted(f"img{i}.json" for i in range(len(CROPS)))


def test_a_rerun_recomputes_only_the_missing_result(first_run, images: Path, conformance_dir: Path, capsys) -> None:
    out, _ = first_run
    listing = images / "good.txt"
    listing.write_text("".join(f"img{i}.png\n" for i in range(len(CROPS))))  # a list file, without the broken image
    before = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    deleted = out / "results" / "img3.json"
    expected = deleted.read_text()
    deleted.unlink()
    capsys.readouterr()
    assert main([str(listing), "--out", str(out), *cli_args(conformance_dir)]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    assert {name for name in after if after[name] != before.get(name)} == {"img3.json"}
    assert json.loads(deleted.read_text())["records"] == json.loads(expected)["records"]
    assert "1 now, 5 from earlier runs" in capsys.readouterr().err
    assert json.loads((out / "failures.json").read_text()) == []
