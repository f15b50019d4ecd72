"""The predictor's reused image side of the mask decoder follows whatever the decoder module would compute now:
a new embedding, changed weights, hooks on the decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobile_sam import SamPredictor, sam_model_registry

POINT = np.array([[300.0, 200.0]])
LABEL = np.array([1])


@pytest.fixture()
def predictor(conformance_dir) -> SamPredictor:
    model = sam_model_registry["vit_t"](checkpoint=conformance_dir / "mobile_sam_vit_t_seed0.pt").eval()
    predictor = SamPredictor(model)
    predictor.set_image(np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8))
    return predictor


@torch.no_grad()
def module_low_res(predictor: SamPredictor) -> np.ndarray:
    """The official predictor's decoding: the prompt encoder and the mask decoder called as modules."""
    coords = predictor.transform.apply_coords(POINT, predictor.original_size)
    sparse, dense = predictor.model.prompt_encoder(
        points=(torch.as_tensor(coords, dtype=torch.float)[None], torch.as_tensor(LABEL)[None]), boxes=None, masks=None
    )
    low_res, _ = predictor.model.mask_decoder(
        predictor.features, predictor.model.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=True
    )
    return low_res[0].numpy()


def predicted_low_res(predictor: SamPredictor) -> np.ndarray:
    return predictor.predict(point_coords=POINT, point_labels=LABEL)[2]


def test_an_embedding_assigned_by_the_caller_is_used(predictor: SamPredictor) -> None:
    predicted_low_res(predictor)
    predictor.features = torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(predicted_low_res(predictor), module_low_res(predictor), atol=1e-4)


def test_an_embedding_changed_in_place_is_used(predictor: SamPredictor) -> None:
    predicted_low_res(predictor)
    with torch.no_grad():
        predictor.features.mul_(-1)
    np.testing.assert_allclose(predicted_low_res(predictor), module_low_res(predictor), atol=1e-4)


@pytest.mark.parametrize(
    "changed", ["layers.0", "layers.1.cross_attn_token_to_image.k_proj", "final_attn_token_to_image.k_proj"]
)
def test_weights_loaded_after_the_image_are_used(predictor: SamPredictor, changed: str) -> None:
    before = predicted_low_res(predictor)
    model = predictor.model
    state = {name: value * 2.0 if changed in name else value for name, value in model.state_dict().items()}
    model.load_state_dict(state)
    after = predicted_low_res(predictor)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, module_low_res(predictor), atol=1e-4)


@pytest.mark.parametrize("changed", ["layers.1.cross_attn_image_to_token.q_proj", "final_attn_token_to_image.k_proj"])
def test_weights_changed_in_place_after_the_image_are_used(predictor: SamPredictor, changed: str) -> None:
    before = predicted_low_res(predictor)
    with torch.no_grad():
        for name, value in predictor.model.mask_decoder.transformer.named_parameters():
            if changed in name:
                value.mul_(2.0)
    after = predicted_low_res(predictor)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, module_low_res(predictor), atol=1e-4)


def test_hooks_on_the_mask_decoder_run(predictor: SamPredictor) -> None:
    calls = []
    handle = predictor.model.mask_decoder.register_forward_hook(lambda module, args, output: calls.append(output))
    try:
        low_res = predicted_low_res(predictor)
    finally:
        handle.remove()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0][0][0].numpy(), low_res, atol=0)
