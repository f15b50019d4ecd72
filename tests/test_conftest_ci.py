"""Without ../shared the conformance tests skip with a reason at home, and the whole run fails under CI=true."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

NEEDS_SHARED = """
def test_needs_conformance(conformance_dir):
    assert conformance_dir.is_dir()


def test_needs_photos(shared_images_dir):
    assert shared_images_dir.is_dir()
"""


def _run(tmp_path: Path, with_shared: bool, ci: str | None) -> subprocess.CompletedProcess:
    """pytest in a copy of the layout: <tmp>/repo/tests/{conftest.py, test_shared.py}, <tmp>/shared optional."""
    tests = tmp_path / "repo" / "tests"
    tests.mkdir(parents=True)
    shutil.copy(CONFTEST, tests / "conftest.py")
    (tests / "test_shared.py").write_text(NEEDS_SHARED)
    if with_shared:
        (tmp_path / "shared" / "conformance").mkdir(parents=True)
        (tmp_path / "shared" / "conformance" / "README.md").write_text("official outputs")
        (tmp_path / "shared" / "images").mkdir()
        (tmp_path / "shared" / "images" / "truck.jpg").write_bytes(b"jpeg")
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tests)],
        cwd=tmp_path / "repo",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ci_fails_the_run_when_the_shared_data_is_missing(tmp_path: Path) -> None:
    result = _run(tmp_path, with_shared=False, ci="true")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "CI=true but the shared test data is missing" in output
    assert str(tmp_path / "shared" / "conformance") in output and str(tmp_path / "shared" / "images") in output


def test_without_ci_the_tests_needing_shared_data_skip_with_their_reason(tmp_path: Path) -> None:
    result = _run(tmp_path, with_shared=False, ci=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 skipped" in result.stdout
    assert "conformance data not found" in result.stdout and "test photos not found" in result.stdout


def test_ci_runs_normally_when_the_shared_data_is_present(tmp_path: Path) -> None:
    result = _run(tmp_path, with_shared=True, ci="true")
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout + result.stderr
