"""ONNX export (`python -m mobile_sam.onnx export`) and `OnnxPredictor`, SamPredictor's API on ONNX Runtime.

Importing this package needs numpy and onnxruntime only; the exporter (`mobile_sam.onnx.export`) needs
torch and onnx.
"""

from .predictor import OnnxPredictor

__all__ = ["OnnxPredictor"]
