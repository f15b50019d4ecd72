"""Every file the products write gets the umask's permissions (0666 less the umask), as `open(path, "w")` gives.

The one atomic writer (`mobile_sam.utils.atomic`) writes through a temporary file; a temporary made with
`mkstemp` would keep its 0600 and make every output readable by its owner only, whatever the umask.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.compare_support import tiny_sam
from support.distill_support import save_teacher, write_images

UMASKS = (0o022, 0o027, 0o002)


@pytest.fixture(params=UMASKS, ids=lambda m: f"umask{m:03o}")
def umask(request) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def file_modes(folder: Path) -> dict[str, str]:
    """{relative path: octal permission bits} of every file under `folder`."""
    return {
        p.relative_to(folder).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in folder.rglob("*") if p.is_file()
    }


def assert_umask_modes(folder: Path, umask: int) -> None:
    modes = file_modes(folder)
    assert modes, f"nothing written under {folder}"
    expected = oct(0o666 & ~umask)
    assert {path: mode for path, mode in modes.items() if mode != expected} == {}, f"expected {expected}"


def test_everything_outputs_follow_the_umask(umask: int, tmp_path: Path) -> None:
    from everything.__main__ import main

    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    flags = ["--random-weights", "--device", "cpu", "--points-per-side", "2", "--pred-iou-thresh", "0"]
    assert main([str(image), "--out", str(out), *flags, "--stability-score-thresh", "0"]) == 0
    assert_umask_modes(out, umask)


def test_distill_outputs_follow_the_umask(umask: int, tmp_path: Path) -> None:
    from distill.__main__ import main

    write_images(tmp_path / "images", 2)
    teacher = save_teacher(tmp_path / "teacher.pt")
    store, run = tmp_path / "store", tmp_path / "run"
    common = ["--device", "cpu", "--no-progress"]
    assert main(["embed", str(tmp_path / "images"), "--out", str(store), "--teacher", "test_vit"]
                + ["--teacher-checkpoint", str(teacher), *common]) == 0  # fmt: skip
    assert (
        main(
            ["train", "--store", str(store), "--out", str(run), "--teacher-checkpoint", str(teacher)]
            + ["--student", "test_tinyvit", "--steps", "1", "--batch-size", "1", "--warmup", "0", *common]
        )
        == 0
    )
    assert_umask_modes(store, umask)
    assert_umask_modes(run, umask)


def test_compare_outputs_follow_the_umask(umask: int, tmp_path: Path) -> None:
    from compare.backends import SamBackend
    from compare.cli import main

    image = tmp_path / "one.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"

    def factory(name, options):
        return SamBackend(name, model=tiny_sam(), device=options.device)

    argv = [str(image), "--reference", "vit_b", "--models", "vit_l", "--random-weights", "--device", "cpu"]
    argv += ["--distances", "20", "--prompts-per-image", "1", "--warmup", "0", "--out", str(out)]
    assert main(argv, factory=factory) == 0
    assert_umask_modes(out, umask)


def test_onnx_export_follows_the_umask(tmp_path: Path) -> None:
    from mobile_sam.onnx.__main__ import main

    previous = os.umask(0o027)
    try:
        assert main(["export", "--random-weights", "--out", str(tmp_path / "onnx")]) == 0
    finally:
        os.umask(previous)
    assert_umask_modes(tmp_path / "onnx", 0o027)
