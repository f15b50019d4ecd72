"""The project builds as a wheel holding every library package, and `import mobile_sam` stays light."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Checkout folder -> where it lives in the wheel: the library and the shared layer as themselves, the products
# under the `mobilesam_demo` namespace.
INSTALLED_AS = {
    "mobile_sam": "mobile_sam",
    "samkit": "samkit",
    "everything": "mobilesam_demo/everything",
    "compare": "mobilesam_demo/compare",
    "distill": "mobilesam_demo/distill",
}
CONSOLE_SCRIPTS = ("mobile-sam-onnx", "mobile-sam-everything", "mobile-sam-compare", "mobile-sam-distill")


@pytest.fixture(scope="module")
def wheel_path(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout (building in place would leave build/ and egg-info behind)."""
    source = tmp_path_factory.mktemp("source") / "project"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", "__pycache__", "*.egg-info", "build", "out", "artifacts", ".*cache", "node_modules", "static"
        ),
    )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (path,) = out.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def wheel(wheel_path) -> zipfile.ZipFile:
    return zipfile.ZipFile(wheel_path)


def test_wheel_holds_every_module_of_the_packages_and_nothing_else(wheel):
    names = set(wheel.namelist())
    expected = {
        f"{INSTALLED_AS[folder]}/{path.relative_to(REPO_ROOT / folder).as_posix()}"
        for folder in INSTALLED_AS
        for path in (REPO_ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert {"mobile_sam/onnx/predictor.py", "samkit/models.py", "mobilesam_demo/everything/__main__.py"} <= expected
    assert expected == {name for name in names if name.endswith(".py")}


def test_wheel_puts_no_generic_name_at_the_top_of_site_packages(wheel):
    top_level = {name.split("/")[0] for name in wheel.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"mobile_sam", "samkit", "mobilesam_demo"}


def test_installed_wheel_runs_every_console_script_and_product_outside_the_checkout(wheel_path, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel_path)]
    subprocess.run(install, check=True, capture_output=True, timeout=180)
    for script in CONSOLE_SCRIPTS:
        result = subprocess.run([str(venv / "bin" / script), "--help"], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and "usage" in result.stdout.lower(), (script, result.stderr[-2000:])
    code = (
        "import mobilesam_demo.everything as e, mobilesam_demo.compare as c, mobilesam_demo.distill.train as d, "
        "samkit.models as m; print(e.__file__, c.__file__, d.__file__, m.__file__)"
    )
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert all("site-packages" in path for path in result.stdout.split())


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


def test_what_pip_install_leaves_in_the_checkout_is_ignored_by_git(tmp_path):
    """`pip install .` leaves build/ and *.egg-info/ beside the sources; git must not offer them for commit."""
    shutil.copy(REPO_ROOT / ".gitignore", tmp_path / ".gitignore")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    leftovers = ["build/lib/mobile_sam/__init__.py", "mobilesam_demo.egg-info/PKG-INFO", "samkit.egg-info/SOURCES.txt"]
    for leftover in leftovers:
        (tmp_path / leftover).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / leftover).write_text("")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=tmp_path, capture_output=True, text=True
    )
    assert status.stdout.split() == ["??", ".gitignore"]
