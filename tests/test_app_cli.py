"""The app's command line and its Hugging Face Spaces files."""

import dataclasses
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import app

REPO = Path(__file__).resolve().parents[1]


def test_help_lists_every_config_field_with_its_default():
    result = subprocess.run([sys.executable, "app.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for item in dataclasses.fields(app.AppConfig):
        assert "--" + item.name.replace("_", "-") in help_text
    assert "(default: 60.0)" in help_text and "MOBILE_SAM_APP_" in help_text


def test_help_answers_before_the_heavy_imports():
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "app.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert result.returncode == 0 and not {"gradio", "torch", "numpy"} & imported


def test_every_option_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MOBILE_SAM_APP_MAX_EVERYTHING_SECONDS", "12.5")
    monkeypatch.setenv("MOBILE_SAM_APP_HEAVY_QUEUE", "7")
    monkeypatch.setenv("MOBILE_SAM_APP_DOWNLOAD_LARGE", "true")
    monkeypatch.setenv("MOBILE_SAM_APP_MODELS", "vit_t,fastsam-s")
    config = app.parse_args([])
    assert (config.max_everything_seconds, config.heavy_queue, config.download_large) == (12.5, 7, True)
    assert config.model_list() == ["vit_t", "fastsam-s"]
    assert app.parse_args(["--heavy-queue", "2"]).heavy_queue == 2  # the command line wins


def test_a_port_in_use_names_the_port_option(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "app.py", "--random-weights", "--port", str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode != 0 and "--port" in result.stderr and "server_port" not in result.stderr
    assert "Traceback" not in result.stderr


def test_the_libraries_import_no_gradio():
    code = (
        "import sys, compare, compare.cli, everything, everything.spec, distill.train, samkit.loading, samkit.writers; "
        "print('gradio' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "False"


def test_app_py_is_layout_and_wiring_only():
    assert len((REPO / "app.py").read_text().splitlines()) < 400


def test_options_map_onto_the_config(tmp_path):
    config = app.parse_args(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--share",
            "--device",
            "cpu",
            "--checkpoint-dir",
            str(tmp_path),
            "--random-weights",
            "--max-image-side",
            "800",
        ]
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


def test_large_checkpoints_are_downloaded_only_when_the_operator_allows_it(tmp_path):
    config = app.parse_args(["--checkpoint-dir", str(tmp_path)])
    store = app.new_store(config)
    assert store.may_download("vit_t") and store.may_download("fastsam-x") and not store.may_download("vit_h")
    assert app.new_store(app.parse_args(["--download-large"])).may_download("vit_h")
    assert not app.new_store(app.parse_args(["--no-download"])).may_download("vit_t")


def test_the_model_cache_keeps_at_most_its_size(monkeypatch):
    store = app.ModelStore("cpu", download=False, max_models=2)
    store.model("vit_t", True)
    store.shared(("fastsam", "s", True), lambda: object())
    store.shared(("fastsam", "x", True), lambda: object())
    assert store.loaded_count() == 2 and not store.is_loaded("vit_t", True)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--max-everything-seconds", "nan"),
        ("--max-everything-seconds", "inf"),
        ("--max-everything-seconds", "-1"),
        ("--port", "70000"),
        ("--heavy-queue", "0"),
        ("--session-ttl-s", "1.5"),
        ("--embedding-cache-items", "many"),
    ],
)
def test_bad_numeric_options_are_refused_with_their_rule(option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        app.parse_args([option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: must be" in capsys.readouterr().err


def test_a_bad_environment_value_names_the_option(monkeypatch):
    monkeypatch.setenv("MOBILE_SAM_APP_MAX_EVERYTHING_SECONDS", "nan")
    with pytest.raises(SystemExit, match="max-everything-seconds: must be a number > 0, got 'nan'"):
        app.parse_args([])
