"""The app's command line and its Hugging Face Spaces files."""
import subprocess
import sys
from pathlib import Path

import pytest

import app

REPO = Path(__file__).resolve().parents[1]


def test_help_lists_every_option():
    result = subprocess.run([sys.executable, "app.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0
    for option in ("--host", "--port", "--share", "--device", "--checkpoint-dir", "--random-weights", "--max-image-side"):
        assert option in result.stdout


def test_options_map_onto_the_config(tmp_path):
    config = app.parse_args(
        ["--host", "0.0.0.0", "--port", "9000", "--share", "--device", "cpu", "--checkpoint-dir", str(tmp_path),
         "--random-weights", "--max-image-side", "800"]
    )
    assert (config.host, config.port, config.share, config.device) == ("0.0.0.0", 9000, True, "cpu")
    assert config.checkpoint_dir == tmp_path and config.random_weights and config.max_image_side == 800


def test_the_port_defaults_to_gradio_server_port_then_port(monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    monkeypatch.setenv("PORT", "8123")
    assert app.parse_args([]).port == 8123
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    assert app.parse_args([]).port == 7999


def test_the_host_defaults_to_gradio_server_name(monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert app.parse_args([]).host == "0.0.0.0"


def test_a_too_small_max_image_side_is_refused():
    with pytest.raises(SystemExit):
        app.parse_args(["--max-image-side", "3"])


def test_the_readme_front_matter_configures_a_gradio_space():
    text = (REPO / "README.md").read_text()
    assert text.startswith("---\n")
    front = dict(line.split(": ", 1) for line in text.split("---\n")[1].strip().splitlines())
    import gradio

    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["python_version"] == '"3.11"'
    assert front["sdk_version"] == gradio.__version__


def test_packages_txt_names_the_system_libraries_opencv_needs():
    assert set((REPO / "packages.txt").read_text().split()) >= {"libgl1", "libglib2.0-0"}


def test_building_the_app_loads_no_model():
    store = app.ModelStore("cpu", download=False)
    app.build_app(app.AppConfig(random_weights=True), store)
    assert not store.is_loaded("vit_t", True) and not store.is_loaded("vit_t", False)
