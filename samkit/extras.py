"""The optional packages: which extra of the distribution installs each, and one clear error when one is missing.

    pip install "mobilesam-demo[app]"    gradio, ultralytics: the app, FastSAM, the object-aware detectors
    pip install "mobilesam-demo[onnx]"   onnx, onnxruntime: the ONNX export and `OnnxPredictor`
    pip install "mobilesam-demo[ray]"    ray[data]: `--engine ray`

A plain `pip install .` installs none of them; `require` imports one where it is needed and, when it is missing,
raises `MissingExtraError` (an ImportError) whose message names the command that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

DISTRIBUTION = "mobilesam-demo"
# Top-level module -> the extra (pyproject.toml's [project.optional-dependencies]) that installs it.
EXTRAS = {"gradio": "app", "ultralytics": "app", "onnx": "onnx", "onnxruntime": "onnx", "ray": "ray"}
# What ultralytics is needed for, in messages.
ULTRALYTICS_USE = "FastSAM and the object-aware detectors"


class MissingExtraError(ImportError):
    """An optional package is not installed (or cannot be imported); the message says how to install it."""


def install_command(extra: str) -> str:
    """The pip command that installs an extra, e.g. `pip install "mobilesam-demo[ray]"`."""
    return f'pip install "{DISTRIBUTION}[{extra}]"'


def require(module: str, needed_for: str) -> ModuleType:
    """Import `module` (one of EXTRAS, or a submodule of one); `needed_for` says what needs it ("--engine ray").

    Raises:
      MissingExtraError: the package is not installed, or importing it failed.
    """
    top = module.split(".")[0]
    if top not in EXTRAS:
        raise ValueError(f"{top!r} is not an optional package; expected one of {', '.join(EXTRAS)}")
    command = install_command(EXTRAS[top])
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing = isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] == top
        state = "which is not installed" if missing else f"which failed to import ({error})"
        raise MissingExtraError(f"{needed_for} needs {module}, {state}: {command}") from error
