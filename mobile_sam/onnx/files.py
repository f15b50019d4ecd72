"""What an exported model folder holds: file names, graph input/output names and the encoder's metadata.

Torch-free: shared by the exporter (which writes these; its opset range too) and the ONNX Runtime predictor
(which reads them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"

ENCODER_INPUT = "image"
ENCODER_OUTPUT = "image_embeddings"
# The official `SamOnnxModel` graph's names (scripts/export_onnx_model.py).
DECODER_INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size")
DECODER_OUTPUTS = ("masks", "iou_predictions", "low_res_masks")
# The decoder cut at the low-res logits, for the web page: no mask prompt, no resize. Two graphs: the image side
# (`SamImageSideOnnxModel`, once per image), then the prompts (`SamLowResOnnxModel`) on its outputs: the first
# block's projections, then a two-block decoder's `FactoredImage` in the order of its `tensors()`.
IMAGE_SIDE_INPUTS = ("image_embeddings",)
IMAGE_SIDE_OUTPUTS = (
    "first_keys",
    "first_values",
    "first_queries",
    "own_norm_0",
    "own_norm_1",
    "cross_0_0",
    "cross_bias_0_0",
    "cross_1_0",
    "cross_bias_1_0",
    "cross_1_1",
    "cross_bias_1_1",
    "offset_cross_1_0",
    "own_keys_1",
    "own_values_1",
    "own_queries_1",
    "own_keys_2",
    "own_values_2",
    "final_projection",
)
LOW_RES_DECODER_INPUTS = (*IMAGE_SIDE_OUTPUTS, "point_coords", "point_labels", "input_size")
LOW_RES_DECODER_OUTPUTS = ("iou_predictions", "low_res_masks")

METADATA_KEY = "mobile_sam"
# The command that installs onnx and onnxruntime (the distribution's [onnx] extra).
INSTALL_ONNX = 'pip install "mobilesam-demo[onnx]"'

DEFAULT_OPSET = 17
# 14: the first opset the TorchScript exporter maps scaled_dot_product_attention to; 20: its last.
# 17 is the first with a LayerNormalization operator.
MIN_OPSET, MAX_OPSET = 14, 20


@dataclass(frozen=True)
class EncoderMetadata:
    """How to feed the encoder and read the decoder: stored as JSON in encoder.onnx's metadata.

    image_size: side of the square input frame of prompts and masks (1024); encoder_image_size: side of the
    square image the encoder takes (512 for EfficientViT-SAM's L models; None in older files: image_size);
    pixel_mean / pixel_std: per-channel normalisation of RGB (or `image_format`) pixels in [0, 255];
    mask_threshold: logit above which a pixel is in the mask; weights: where the weights came from
    ("random (seed N)" for untrained weights).
    """

    model_type: str
    weights: str
    image_size: int
    image_format: str
    pixel_mean: tuple[float, float, float]
    pixel_std: tuple[float, float, float]
    mask_threshold: float
    encoder_image_size: int | None = None

    @property
    def encoder_size(self) -> int:
        """Side of the square image the encoder takes."""
        return self.image_size if self.encoder_image_size is None else self.encoder_image_size

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> EncoderMetadata:
        values = json.loads(text)
        values["pixel_mean"] = tuple(values["pixel_mean"])
        values["pixel_std"] = tuple(values["pixel_std"])
        return cls(**values)
