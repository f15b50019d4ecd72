"""Our MobileSAM computes what ultralytics' copy computes for the same random weights (no shared data needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.ultralytics_peer import PeerPredictor, build_peer_model

from mobile_sam import SamPredictor, sam_model_registry


@pytest.fixture(scope="module")
def predictors():
    torch.manual_seed(123)
    ours = sam_model_registry["vit_t"]()
    # Random init leaves the hypernetwork outputs tiny; scale them so masks are not all empty.
    with torch.no_grad():
        for mlp in ours.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(20)
    peer = build_peer_model("vit_t", ours.state_dict())
    image = np.random.default_rng(7).integers(0, 256, (300, 420, 3), dtype=np.uint8)
    ours_predictor, peer_predictor = SamPredictor(ours), PeerPredictor(peer)
    ours_predictor.set_image(image)
    peer_predictor.set_image(image)
    return ours_predictor, peer_predictor


def test_image_embeddings_agree(predictors):
    ours, peer = predictors
    assert (ours.get_image_embedding() - peer.features).abs().max().item() <= 1e-4


@pytest.mark.parametrize(
    "prompt",
    [
        {"point_coords": np.array([[200.0, 150.0]]), "point_labels": np.array([1]), "multimask_output": True},
        {
            "point_coords": np.array([[50.0, 40.0], [300.0, 250.0]]),
            "point_labels": np.array([1, 0]),
            "multimask_output": False,
        },
        {"box": np.array([30.0, 20.0, 380.0, 260.0]), "multimask_output": False},
    ],
    ids=["one_point", "pos_neg", "box"],
)
def test_decoder_outputs_agree(predictors, prompt):
    ours, peer = predictors
    peer.features = ours.get_image_embedding().clone()  # isolate the decoder from encoder round-off
    masks, scores, low_res = ours.predict(**prompt)
    peer_masks, peer_scores, peer_low_res = peer.predict(**prompt)
    np.testing.assert_allclose(low_res, peer_low_res, atol=1e-4, rtol=0)
    np.testing.assert_allclose(scores, peer_scores, atol=1e-5, rtol=0)
    assert (masks != peer_masks).mean() < 1e-4
    assert 0.0 < masks.mean() < 1.0


def test_batched_boxes_agree(predictors):
    ours, peer = predictors
    peer.features = ours.get_image_embedding().clone()
    boxes = torch.tensor([[10.0, 10.0, 200.0, 150.0], [100.0, 50.0, 400.0, 290.0], [0.0, 0.0, 30.0, 30.0]])
    boxes = ours.transform.apply_boxes_torch(boxes, ours.original_size)
    _, scores, low_res = ours.predict_torch(None, None, boxes=boxes, multimask_output=True)
    _, peer_scores, peer_low_res = peer.predict_torch(None, None, boxes=boxes, multimask_output=True)
    torch.testing.assert_close(low_res, peer_low_res, atol=1e-4, rtol=0)
    torch.testing.assert_close(scores, peer_scores, atol=1e-5, rtol=0)
