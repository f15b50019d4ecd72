"""Export the decoder cut at the low-res logits, for callers that draw masks themselves: the web page's decoder
(onnxruntime-web), which upsamples the logits at display size. Two graphs: the image side (`SamImageSideOnnxModel`,
run once per image) and the prompts' graph (`SamLowResOnnxModel`, run per prompt on the image side's outputs), so
that a prompt pays for none of the image-side projections.

The same TorchScript exporter as `mobile_sam.onnx.export` (`dynamo=False`: torch 2.14's dynamo exporter rejects a
dynamic number of points); the file is written atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnx.numpy_helper
import torch

from ..modeling import Sam
from ..utils.atomic import atomic_path
from ..utils.onnx import SamImageSideOnnxModel, SamLowResOnnxModel
from .export import DEFAULT_OPSET, _check_opset, _eval_mode, _torchscript_export
from .files import IMAGE_SIDE_INPUTS, IMAGE_SIDE_OUTPUTS, LOW_RES_DECODER_INPUTS, LOW_RES_DECODER_OUTPUTS

WeightsDtype = Literal["float32", "float16"]
WEIGHTS_DTYPES: tuple[WeightsDtype, ...] = ("float32", "float16")
# Smaller float tensors (biases, norms, constants) stay float32 with weights_dtype="float16": they weigh little.
FLOAT16_MIN_ELEMENTS = 1024


def image_side_path(path: str | Path) -> Path:
    """Where `export_low_res_decoder(sam, path)` writes the image side's graph: decoder.onnx -> decoder.image.onnx."""
    path = Path(path)
    return path.with_name(f"{path.name.removesuffix('.onnx')}.image.onnx")


def export_low_res_decoder(
    sam: Sam, path: str | Path, opset: int = DEFAULT_OPSET, weights_dtype: WeightsDtype = "float32"
) -> Path:
    """Write `SamLowResOnnxModel(sam)` at path, with a dynamic number of points, and `SamImageSideOnnxModel(sam)` at
    `image_side_path(path)`; returns path.

    The image side: `IMAGE_SIDE_INPUTS` image_embeddings (1, 256, 64, 64) float32 -> `IMAGE_SIDE_OUTPUTS`. The
    prompts: `LOW_RES_DECODER_INPUTS`, the image side's outputs then point_coords (1, N, 2) float32 in the input
    frame, point_labels (1, N) float32 (1, 0, 2 / 3 box corners, -1 padding) and input_size (2,) float32 (h, w)
    -> `LOW_RES_DECODER_OUTPUTS`: iou_predictions (1, 4) and low_res_masks (1, 4, 256, 256) logits, the
    single-mask output first, computed where `Sam.postprocess_masks` reads them for input_size (0 elsewhere).
    Any `Sam` works (vit_t, vit_b, vit_l, vit_h: the decoder is the same size).

    weights_dtype "float16" stores the weight tensors (those of FLOAT16_MIN_ELEMENTS or more values) as
    float16, each behind a Cast to float32, which ONNX Runtime folds when it loads the model: half the file,
    float32 arithmetic with rounded weights (tests/test_onnx_low_res.py bounds the mask agreement).
    """
    _check_opset(opset)
    if weights_dtype not in WEIGHTS_DTYPES:
        raise ValueError(f"weights_dtype must be one of {WEIGHTS_DTYPES}, got {weights_dtype!r}")
    generator = torch.Generator().manual_seed(0)
    embedding = torch.randn(
        1, sam.prompt_encoder.embed_dim, *sam.prompt_encoder.image_embedding_size, generator=generator
    )
    image_side = SamImageSideOnnxModel(sam)
    with _eval_mode(image_side):
        prepared = image_side(embedding)
    points = (
        torch.randint(0, sam.image_size, (1, 5, 2), generator=generator).float(),
        torch.randint(0, 4, (1, 5), generator=generator).float(),
        torch.tensor([0.75, 1.0]) * sam.image_size,
    )
    dynamic_axes = {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}
    prompts = SamLowResOnnxModel(sam)
    graphs = (
        (image_side, (embedding,), image_side_path(path), IMAGE_SIDE_INPUTS, IMAGE_SIDE_OUTPUTS, None),
        (prompts, (*prepared, *points), Path(path), LOW_RES_DECODER_INPUTS, LOW_RES_DECODER_OUTPUTS, dynamic_axes),
    )
    for module, dummy, target, inputs, outputs, axes in graphs:
        with _eval_mode(module), atomic_path(target) as tmp:
            _torchscript_export(module, dummy, tmp, opset, list(inputs), list(outputs), axes)
            if weights_dtype == "float16":
                model = onnx.load(tmp)
                _store_weights_as_float16(model.graph)
                onnx.save(model, tmp)
    return Path(path)


def _store_weights_as_float16(graph: onnx.GraphProto) -> None:
    """Replace each large float32 initializer W by a float16 copy and a leading node Cast(W_fp16) -> W."""
    casts = []
    for initializer in list(graph.initializer):
        if initializer.data_type != onnx.TensorProto.FLOAT or math.prod(initializer.dims) < FLOAT16_MIN_ELEMENTS:
            continue
        values = onnx.numpy_helper.to_array(initializer)
        if np.abs(values).max() > np.finfo(np.float16).max:
            raise ValueError(f"weight {initializer.name} exceeds the float16 range: export it as float32")
        half = onnx.numpy_helper.from_array(values.astype(np.float16), f"{initializer.name}_float16")
        graph.initializer.remove(initializer)
        graph.initializer.append(half)
        casts.append(onnx.helper.make_node("Cast", [half.name], [initializer.name], to=onnx.TensorProto.FLOAT))
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
