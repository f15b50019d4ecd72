"""The embedding file the page reads (webapp/embedding_file.py): its layout, read back here with struct and json
(not with the writer's code), its bad inputs, and the mask agreement that float16 keeps (conformance weights)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from mobile_sam import SamPredictor, sam_model_registry
from webapp.embedding_file import EmbeddingHeader, embedding_bytes, write_embedding

HEADER = EmbeddingHeader((603, 1072), (576, 1024), 1024, 0.0, "vit_t", "decoder-0123456789abcdef.onnx")
MIN_MASK_IOU = 0.999  # float16 against float32 embeddings, at the original size


def _read(data: bytes) -> tuple[dict, np.ndarray]:
    """The layout of the module docstring, written out independently."""
    assert data[:8] == b"SAMEMB01"
    (length,) = struct.unpack("<I", data[8:12])
    header = json.loads(data[12 : 12 + length].decode())
    assert (12 + length) % 8 == 0
    values = np.frombuffer(data[12 + length :], dtype="<f2").reshape(header["shape"])
    return header, values


def test_layout_header_and_float16_values():
    embedding = np.random.default_rng(0).normal(size=(1, 256, 64, 64)).astype(np.float32)
    data = embedding_bytes(embedding, HEADER)
    header, values = _read(data)
    assert header == {
        "dtype": "float16",
        "shape": [1, 256, 64, 64],
        "original_size": [603, 1072],
        "input_size": [576, 1024],
        "image_size": 1024,
        "mask_threshold": 0.0,
        "model": "vit_t",
        "decoder": "decoder-0123456789abcdef.onnx",
    }
    np.testing.assert_array_equal(values, embedding.astype(np.float16))
    assert len(data) - 2 * embedding.size < 256  # 2 MiB of data and a small header


def test_numpy_sizes_and_tensors_are_accepted_and_written_atomically(tmp_path):
    header = EmbeddingHeader(
        tuple(np.array([603, 1072])), tuple(np.array([576, 1024])), 1024, np.float32(0), "vit_t", "d.onnx"
    )
    path = write_embedding(tmp_path / "e.bin", torch.ones(1, 256, 64, 64).numpy(), header)
    assert _read(path.read_bytes())[0]["original_size"] == [603, 1072]
    assert [p.name for p in tmp_path.iterdir()] == ["e.bin"]  # no temporary file left


@pytest.mark.parametrize(
    ("embedding", "header", "message"),
    [
        (np.zeros((256, 64, 64)), HEADER, "shape"),
        (np.full((1, 256, 64, 64), np.nan), HEADER, "NaN"),
        (np.full((1, 256, 64, 64), 1e6), HEADER, "float16"),
        (np.zeros((1, 256, 64, 64)), EmbeddingHeader((0, 10), (0, 10), 1024, 0.0, "m", "d"), "original_size"),
        (np.zeros((1, 256, 64, 64)), EmbeddingHeader((10, 10), (2048, 10), 1024, 0.0, "m", "d"), "exceeds"),
    ],
)
def test_bad_embeddings_are_refused(embedding, header, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        write_embedding(tmp_path / "e.bin", embedding, header)
    assert not any(tmp_path.iterdir())


def test_float16_keeps_the_masks(conformance_dir):
    """The transport's loss, measured: masks of the float16 embedding against the float32 one (torch decoder)."""
    sam = sam_model_registry["vit_t"](checkpoint=conformance_dir / "mobile_sam_vit_t_seed0.pt").eval()
    predictor = SamPredictor(sam)
    predictor.set_image(np.array(Image.open(conformance_dir / "dogs.jpg").convert("RGB")))
    points = np.random.default_rng(0).uniform((0, 0), (1072, 603), size=(12, 2))
    reference = [predictor.predict(p[None], np.array([1]), multimask_output=True)[0] for p in points]
    _, values = _read(embedding_bytes(predictor.features.numpy(), HEADER))
    predictor.features = torch.from_numpy(values.astype(np.float32))
    for point, expected in zip(points, reference):
        masks = predictor.predict(point[None], np.array([1]), multimask_output=True)[0]
        for ours, theirs in zip(masks, expected):
            union = np.logical_or(ours, theirs).sum()
            assert union == 0 or np.logical_and(ours, theirs).sum() / union >= MIN_MASK_IOU
