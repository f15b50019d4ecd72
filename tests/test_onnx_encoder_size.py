"""encoder.onnx holds MobileSAM's weights and little else: no large constant of zeros baked into the graph.

Traced in eval mode, TinyViT's MBConv blocks (which run in strips into a preallocated output) left one
(1, 64, 256, 256) float32 constant of zeros per block in the graph: 57 MB for 23 MB of weights. The embedding
stays the torch encoder's (test_onnx.py checks it against the official outputs).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import numpy_helper

from mobile_sam import sam_model_registry
from mobile_sam.onnx.export import export_encoder

LARGE_BYTES = 1 << 20


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    sam = sam_model_registry["vit_t"]().eval()
    path = export_encoder(sam.image_encoder, tmp_path_factory.mktemp("onnx") / "encoder.onnx")
    return sam, path


def used_parameter_bytes(sam) -> int:
    """float32 bytes of the encoder's parameters that its forward uses (TinyViT's classifier head is not)."""
    unused = {id(p) for name in ("norm_head", "head") for p in getattr(sam.image_encoder, name).parameters()}
    return 4 * sum(p.numel() for p in sam.image_encoder.parameters() if id(p) not in unused)


def graph_tensors(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initializer and Constant node's tensor, by name."""
    tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR:
                    tensors[node.output[0]] = numpy_helper.to_array(attribute.t)
    return tensors


def test_no_large_all_zero_tensor_in_the_graph(exported) -> None:
    _, path = exported
    zeros = {
        name: array.shape
        for name, array in graph_tensors(onnx.load(path)).items()
        if array.nbytes >= LARGE_BYTES and not array.any()
    }
    assert zeros == {}


def test_the_file_is_about_the_size_of_the_weights(exported) -> None:
    sam, path = exported
    weights = used_parameter_bytes(sam)
    assert path.stat().st_size <= 1.1 * weights, (path.stat().st_size, weights)


def test_the_exported_encoder_gives_the_torch_embedding(exported) -> None:
    sam, path = exported
    image = torch.rand(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1)) * 4 - 2
    with torch.no_grad():
        expected = sam.image_encoder(image).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    embedding = session.run(None, {"image": image.numpy()})[0]
    assert np.abs(embedding - expected).max() <= 1e-4
