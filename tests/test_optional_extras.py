"""A missing optional package (after a plain `pip install .`) gives one line naming the extra to install.

Each case hides the package (`sys.modules[name] = None` makes `import name` fail as if it were not installed)
and runs the command that needs it: the answer is exit status 2 and `pip install "mobilesam-demo[EXTRA]"`,
never a traceback, and nothing is started or written before the check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samkit.extras import EXTRAS, install_command

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "images" / "a.png"
    path.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(path)
    return path


def hide(monkeypatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def assert_names_extra(code: int, err: str, extra: str) -> None:
    assert code == 2, err
    assert install_command(extra) in err, err
    assert "Traceback" not in err


def test_every_extra_named_in_messages_installs_that_package() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for module, extra in EXTRAS.items():
        assert any(requirement.startswith(module) for requirement in extras[extra]), (module, extra)
    from mobile_sam.onnx import INSTALL_ONNX

    assert INSTALL_ONNX == install_command("onnx")  # the library cannot import samkit: the same words, checked


def test_everything_ray_engine_without_ray(monkeypatch, image: Path, tmp_path: Path, capsys) -> None:
    from everything.__main__ import main

    hide(monkeypatch, "ray", "ray.data")
    out = tmp_path / "out"
    code = main([str(image), "--out", str(out), "--random-weights", "--engine", "ray"])
    assert_names_extra(code, capsys.readouterr().err, "ray")
    assert not out.exists()


def test_everything_objects_mode_without_ultralytics(monkeypatch, image: Path, tmp_path: Path, capsys) -> None:
    from everything.__main__ import main

    hide(monkeypatch, "ultralytics")
    out = tmp_path / "out"
    code = main([str(image), "--out", str(out), "--random-weights", "--prompts", "objects", "--detector", "fastsam-s"])
    assert_names_extra(code, capsys.readouterr().err, "app")
    assert not out.exists()


def test_compare_fastsam_without_ultralytics(monkeypatch, image: Path, tmp_path: Path, capsys) -> None:
    from compare.cli import main

    hide(monkeypatch, "ultralytics")
    argv = [str(image), "--reference", "vit_t", "--models", "fastsam-s", "--random-weights", "--out", str(tmp_path)]
    assert_names_extra(main(argv), capsys.readouterr().err, "app")


def test_distill_ray_engine_without_ray(monkeypatch, image: Path, tmp_path: Path, capsys) -> None:
    from support.distill_support import save_teacher

    from distill.__main__ import main

    hide(monkeypatch, "ray", "ray.data")
    teacher = save_teacher(tmp_path / "teacher.pt")
    argv = ["embed", str(image.parent), "--out", str(tmp_path / "store"), "--teacher", "test_vit"]
    code = main([*argv, "--teacher-checkpoint", str(teacher), "--engine", "ray", "--no-progress"])
    assert_names_extra(code, capsys.readouterr().err, "ray")
    assert not (tmp_path / "store").exists()


def test_onnx_export_without_onnx(monkeypatch, tmp_path: Path, capsys) -> None:
    from mobile_sam.onnx.__main__ import main

    hide(monkeypatch, "onnx")
    monkeypatch.delitem(sys.modules, "mobile_sam.onnx.export", raising=False)
    code = main(["export", "--random-weights", "--out", str(tmp_path / "onnx")])
    assert_names_extra(code, capsys.readouterr().err, "onnx")


def test_onnx_predictor_without_onnxruntime(monkeypatch) -> None:
    hide(monkeypatch, "onnxruntime")
    monkeypatch.delitem(sys.modules, "mobile_sam.onnx.predictor", raising=False)
    import mobile_sam.onnx  # the package itself needs nothing optional

    with pytest.raises(ImportError, match=r'pip install "mobilesam-demo\[onnx\]"'):
        mobile_sam.onnx.OnnxPredictor  # noqa: B018


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_app_without_gradio(tmp_path: Path) -> None:
    code = (
        "import runpy, sys; sys.modules['gradio'] = None; "
        f"sys.argv = ['app.py', '--random-weights']; runpy.run_path({str(REPO / 'app.py')!r}, run_name='__main__')"
    )
    result = run_python(code, tmp_path)
    assert result.returncode != 0
    assert install_command("app") in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_stray_ray_folder_is_named_instead_of_an_attribute_error(image: Path, tmp_path: Path) -> None:
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("")  # a folder called ray in the working directory
    code = (
        "import sys; from everything.__main__ import main; "
        f"sys.exit(main([{str(image)!r}, '--out', 'out', '--random-weights', '--engine', 'ray']))"
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "is not Ray" in result.stderr and install_command("ray") in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
