"""The project builds as a wheel holding every library package, and `import mobile_sam` stays light."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("mobile_sam", "everything", "compare", "distill")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """A wheel built from a copy of the checkout (building in place would leave build/ and egg-info behind)."""
    source = tmp_path_factory.mktemp("source") / "project"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", "out", "artifacts", ".*cache"),
    )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (path,) = out.glob("*.whl")
    return zipfile.ZipFile(path)


def test_wheel_holds_every_module_of_the_libraries_and_nothing_else(wheel):
    names = set(wheel.namelist())
    expected = {
        path.relative_to(REPO_ROOT).as_posix()
        for library in LIBRARIES
        if (REPO_ROOT / library).is_dir()
        for path in (REPO_ROOT / library).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert {"mobile_sam/onnx/predictor.py", "mobile_sam/utils/onnx.py", "everything/__main__.py"} <= expected
    assert expected <= names
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {library for library in LIBRARIES if (REPO_ROOT / library).is_dir()}


def test_wheel_metadata_has_version_licence_and_extras(wheel):
    metadata_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = wheel.read(metadata_name).decode()
    assert "Version: 0.1.0" in metadata and "License-Expression: Apache-2.0" in metadata
    for extra in ("app", "onnx", "ray", "dev"):
        assert f"Provides-Extra: {extra}" in metadata
    assert 'Requires-Dist: onnxruntime==1.32.0; extra == "onnx"' in metadata
    licence = wheel.read(next(n for n in wheel.namelist() if n.endswith("licenses/LICENSE"))).decode()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence


def test_import_mobile_sam_pulls_in_no_optional_dependency():
    code = (
        "import sys, mobile_sam, mobile_sam.utils.onnx; "
        "print(sorted({m.split('.')[0] for m in sys.modules} "
        "& {'gradio', 'ultralytics', 'onnxruntime', 'onnx', 'ray'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert result.stdout.strip() == "[]"
