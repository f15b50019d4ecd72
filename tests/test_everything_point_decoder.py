"""PointBatchDecoder computes what the mask decoder computes for single-point prompts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from everything.point_decoder import PointBatchDecoder
from mobile_sam import sam_model_registry
from mobile_sam.utils.transforms import ResizeLongestSide


@pytest.fixture(scope="module")
def model(conformance_dir: Path):
    return sam_model_registry["vit_t"](conformance_dir / "mobile_sam_vit_t_seed0.pt")


@pytest.fixture(scope="module")
def predictor_data(conformance_dir: Path):
    return np.load(conformance_dir / "vit_t_predictor_seed0.npz")


def test_one_point_outputs_match_the_official_predictor(model, predictor_data) -> None:
    embedding = torch.from_numpy(predictor_data["embedding"])
    point = ResizeLongestSide(1024).apply_coords(predictor_data["one_point_multi/in/point_coords"], (603, 1072))
    decoder = PointBatchDecoder(model, embedding)
    with torch.inference_mode():
        iou, hyper_in, image_tokens = decoder.decode_tokens(torch.as_tensor(point, dtype=torch.float64))
        low_res = model.mask_decoder.upscale_masks(hyper_in[:, 1:], image_tokens)
    np.testing.assert_allclose(iou[0, 1:].numpy(), predictor_data["one_point_multi/scores"], atol=1e-4)
    np.testing.assert_allclose(low_res[0].numpy(), predictor_data["one_point_multi/low_res_logits"], atol=1e-3)


def test_batch_outputs_match_mask_decoder_decode_tokens(model) -> None:
    generator = torch.Generator().manual_seed(0)
    embedding = torch.randn(1, 256, 64, 64, generator=generator)
    points = torch.rand(5, 2, generator=generator, dtype=torch.float64) * 1000
    labels = torch.ones(5, 1, dtype=torch.int)
    with torch.inference_mode():
        sparse, dense = model.prompt_encoder(points=(points[:, None, :], labels), boxes=None, masks=None)
        expected = model.mask_decoder.decode_tokens(embedding, model.prompt_encoder.get_dense_pe(), sparse, dense)
        got = PointBatchDecoder(model, embedding).decode_tokens(points)
    for name, a, b in zip(("iou", "hyper_in", "image_tokens"), got, expected):
        assert a.shape == b.shape, name
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=name)
