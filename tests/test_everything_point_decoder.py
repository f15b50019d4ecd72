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


def test_one_point_outputs_match_the_official_predictor(model, conformance_dir: Path) -> None:
    data = np.load(conformance_dir / "vit_t_predictor_seed0.npz")
    point = ResizeLongestSide(1024).apply_coords(data["one_point_multi/in/point_coords"], (603, 1072))
    decoder = PointBatchDecoder(model, torch.from_numpy(data["embedding"]))
    decoding = decoder.decode(torch.as_tensor(point, dtype=torch.float64))
    low_res = decoder.multimask_logits(decoding, torch.tensor([0]))
    np.testing.assert_allclose(decoding.iou_predictions[0, 1:].numpy(), data["one_point_multi/scores"], atol=1e-4)
    np.testing.assert_allclose(low_res[0].numpy(), data["one_point_multi/low_res_logits"], atol=1e-3)


def test_batch_outputs_match_the_mask_decoder(model) -> None:
    generator = torch.Generator().manual_seed(0)
    embedding = torch.randn(1, 256, 64, 64, generator=generator)
    points = torch.rand(5, 2, generator=generator, dtype=torch.float64) * 1000
    labels = torch.ones(5, 1, dtype=torch.int)
    with torch.inference_mode():
        sparse, dense = model.prompt_encoder(points=(points[:, None, :], labels), boxes=None, masks=None)
        expected_logits, expected_iou = model.mask_decoder(
            embedding, model.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=True
        )
    decoder = PointBatchDecoder(model, embedding)
    decoding = decoder.decode(points)
    torch.testing.assert_close(decoding.iou_predictions[:, 1:], expected_iou, atol=1e-5, rtol=1e-4)
    some = torch.tensor([3, 0])
    torch.testing.assert_close(decoder.multimask_logits(decoding, some), expected_logits[some], atol=1e-3, rtol=1e-4)


def test_partial_extent_gives_the_top_left_of_the_full_logits(model) -> None:
    generator = torch.Generator().manual_seed(1)
    decoder = PointBatchDecoder(model, torch.randn(1, 256, 64, 64, generator=generator))
    decoding = decoder.decode(torch.rand(3, 2, generator=generator, dtype=torch.float64) * 1000)
    prompts = torch.tensor([0, 2])
    full = decoder.multimask_logits(decoding, prompts)
    part = decoder.multimask_logits(decoding, prompts, (171, 37))
    assert part.shape[-2:] == (172, 40)
    torch.testing.assert_close(part, full[..., :172, :40], atol=1e-5, rtol=1e-5)
