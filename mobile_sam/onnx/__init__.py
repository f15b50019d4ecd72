"""ONNX export (`python -m mobile_sam.onnx export`) and `OnnxPredictor`, SamPredictor's API on ONNX Runtime.

Importing this package needs nothing optional: `OnnxPredictor` (imported on first use) needs numpy and
onnxruntime, the exporter (`mobile_sam.onnx.export`) torch and onnx; `INSTALL_ONNX` installs both.
"""

from typing import Any

from .files import INSTALL_ONNX

__all__ = ["INSTALL_ONNX", "OnnxPredictor"]


def __getattr__(name: str) -> Any:
    if name == "OnnxPredictor":
        from .predictor import OnnxPredictor

        return OnnxPredictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
