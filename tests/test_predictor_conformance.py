"""The predictor reproduces the official MobileSAM outputs (../shared/conformance) for fixed random weights."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

from mobile_sam import SamPredictor, sam_model_registry
from mobile_sam.modeling import ImageEncoderViT

EMBEDDING_ATOL = 1e-4
LOGITS_ATOL = 1e-3
SCORES_ATOL = 1e-4
MIN_MASK_IOU = 0.999


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.fixture(scope="module")
def official(conformance_dir):
    cases = json.loads((conformance_dir / "vit_t_seed0.json").read_text())
    arrays = np.load(conformance_dir / "vit_t_predictor_seed0.npz")
    return cases, {k: arrays[k] for k in arrays.files}


@pytest.fixture(scope="module")
def predictor(conformance_dir):
    model = sam_model_registry["vit_t"](checkpoint=conformance_dir / "mobile_sam_vit_t_seed0.pt")
    predictor = SamPredictor(model)
    predictor.set_image(np.array(Image.open(conformance_dir / "dogs.jpg").convert("RGB")))
    return predictor


def _unpack(packed: np.ndarray, width: int) -> np.ndarray:
    return np.unpackbits(packed, axis=-1)[..., :width].astype(bool)


def _assert_matches(name, masks, scores, low_res, official_arrays, width):
    expected_masks = _unpack(official_arrays[f"{name}/masks"], width)
    assert masks.shape == expected_masks.shape
    np.testing.assert_allclose(low_res, official_arrays[f"{name}/low_res_logits"], atol=LOGITS_ATOL, rtol=0)
    np.testing.assert_allclose(scores, official_arrays[f"{name}/scores"], atol=SCORES_ATOL, rtol=0)
    flat_ours = masks.reshape(-1, *masks.shape[-2:])
    flat_official = expected_masks.reshape(-1, *masks.shape[-2:])
    for ours, theirs in zip(flat_ours, flat_official):
        assert _mask_iou(ours, theirs) >= MIN_MASK_IOU


def test_image_embedding_matches_official(predictor, official):
    _, arrays = official
    assert tuple(predictor.input_size) == tuple(arrays["input_size"])
    diff = (predictor.get_image_embedding() - torch.from_numpy(arrays["embedding"])).abs().max().item()
    assert diff <= EMBEDDING_ATOL


@pytest.mark.parametrize(
    "name",
    [
        "one_point_multi",
        "pos_neg_single",
        "box_single",
        "box_point_multi",
        "three_points_multi",
        "refine_with_mask_input",
    ],
)
def test_predict_matches_official(name, predictor, official):
    cases, arrays = official
    case = next(c for c in cases["predictor_cases"] if c["name"] == name)
    kwargs = {k: np.asarray(v) for k, v in case["args"].items() if k not in ("multimask_output", "mask_input")}
    if "mask_input" in case["args"]:
        kwargs["mask_input"] = arrays[f"{name}/in/mask_input"]
    masks, scores, low_res = predictor.predict(**kwargs, multimask_output=case["args"]["multimask_output"])
    assert masks.dtype == bool
    _assert_matches(name, masks, scores, low_res, arrays, cases["image_size_hw"][1])


def test_batched_boxes_match_official(predictor, official):
    cases, arrays = official
    boxes = torch.as_tensor(arrays["batched_boxes/in/boxes"], dtype=torch.float)
    boxes = predictor.transform.apply_boxes_torch(boxes, predictor.original_size)
    masks, scores, low_res = predictor.predict_torch(None, None, boxes=boxes, multimask_output=False)
    _assert_matches("batched_boxes", masks.numpy(), scores.numpy(), low_res.numpy(), arrays, cases["image_size_hw"][1])


def test_small_vit_encoder_matches_official(conformance_dir):
    config = json.loads((conformance_dir / "vit_small_encoder_seed0.json").read_text())["config"]
    encoder = ImageEncoderViT(norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), **config).eval()
    encoder.load_state_dict(torch.load(conformance_dir / "vit_small_encoder_seed0.pt", weights_only=True), strict=True)
    arrays = np.load(conformance_dir / "vit_small_encoder_seed0.npz")
    with torch.inference_mode():
        embedding = encoder(torch.from_numpy(arrays["preprocessed_input"]))
    assert (embedding - torch.from_numpy(arrays["embedding"])).abs().max().item() <= EMBEDDING_ATOL
