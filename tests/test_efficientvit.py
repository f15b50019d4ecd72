"""EfficientViT-SAM (L0 ... XL1) and MobileSAMv2's L2 encoder reproduce the official code's outputs.

The official outputs are in tests/conformance_data/efficientvit (made by the script there from
mit-han-lab/efficientvit and MobileSAMv2's copy, on random weights in the official file formats). Every variant
is loaded from an official-format file and checked on one prompt; L0 (512 px encoder) and XL0 (1024 px encoder)
go through every prompt kind, L0 through the automatic mask generator.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from efficientvit_support import (
    SCORES_ATOL,
    VARIANTS,
    WIDTH,
    assert_embedding_matches,
    assert_outputs_match,
    case_kwargs,
    image_encoder_state_dict,
    mask_iou,
    official_cases,
    official_outputs,
    official_shapes,
    random_state_dict,
    unpack_masks,
)
from PIL import Image

from compare.params import build_without_weights, sam_parameter_counts
from mobile_sam import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry
from mobile_sam.build_mobilesamv2 import build_mobilesamv2_l2_encoder
from mobile_sam.build_sam import CheckpointError, StateDictMismatchError
from mobile_sam.utils.transforms import ResizeLongestSide
from samkit.models import model_info

# The official file layout per variant: both layouts `create_efficientvit_sam_model` reads are covered.
FILE_LAYOUT = {"l0": "state_dict", "l1": "flat", "l2": "state_dict", "xl0": "flat", "xl1": "state_dict"}
PREDICT_CASES = [case["name"] for case in official_cases()["cases"]]


def _save(state: dict[str, torch.Tensor], path, layout: str):
    torch.save({"state_dict": state} if layout == "state_dict" else state, path)
    return path


@pytest.fixture(scope="module")
def dogs(conformance_dir) -> np.ndarray:
    return np.array(Image.open(conformance_dir / "dogs.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def predictors(dogs, tmp_path_factory):
    """Predictors built from official-format files, image set, made on first use."""
    cache: dict[str, SamPredictor] = {}

    def get(variant: str) -> SamPredictor:
        if variant not in cache:
            path = tmp_path_factory.mktemp(variant) / f"efficientvit_sam_{variant}.pt"
            _save(random_state_dict(variant), path, FILE_LAYOUT[variant])
            predictor = SamPredictor(sam_model_registry[f"efficientvit_sam_{variant}"](checkpoint=path))
            predictor.set_image(dogs)
            cache[variant] = predictor
        return cache[variant]

    return get


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_loads_its_official_file_and_matches_official_outputs(variant, predictors):
    predictor, official = predictors(variant), official_outputs(f"efficientvit_sam_{variant}")
    assert predictor.model.encoder_image_size == (512 if variant.startswith("l") else 1024)
    assert tuple(predictor.input_size) == tuple(official["input_size"])
    assert_embedding_matches(predictor.get_image_embedding(), official)
    kwargs = case_kwargs("one_point_multi", official)
    assert_outputs_match("one_point_multi", *predictor.predict(**kwargs), official)


@pytest.mark.parametrize("variant", ["l0", "xl0"])
@pytest.mark.parametrize("name", PREDICT_CASES[1:])
def test_every_prompt_kind_matchesofficial_outputs(variant, name, predictors):
    predictor, official = predictors(variant), official_outputs(f"efficientvit_sam_{variant}")
    assert_outputs_match(name, *predictor.predict(**case_kwargs(name, official)), official)


@pytest.mark.parametrize("variant", ["l0", "xl0"])
def test_batched_boxes_through_predict_torch_matchofficial_outputs(variant, predictors):
    predictor, official = predictors(variant), official_outputs(f"efficientvit_sam_{variant}")
    boxes = predictor.transform.apply_boxes_torch(
        torch.tensor(official_cases()["batched_boxes"]), predictor.original_size
    )
    masks, scores, low_res = predictor.predict_torch(None, None, boxes=boxes, multimask_output=False)
    assert_outputs_match("batched_boxes", masks.numpy(), scores.numpy(), low_res.numpy(), official)


def test_automatic_mask_generator_matchesofficial_outputs(predictors, dogs):
    official = official_outputs("amg_l0")
    stride = official_cases()["amg_mask_stride"]
    generator = SamAutomaticMaskGenerator(predictors("l0").model, **official_cases()["amg_config"])
    records = generator.generate(dogs)
    assert len(records) == len(official["area"])
    expected_masks = unpack_masks(official["masks_subset"], len(range(0, WIDTH, stride)))
    for i, record in enumerate(records):
        assert record["point_coords"] == official["point_coords"][i].tolist()
        assert record["crop_box"] == official["crop_box"][i].tolist()
        np.testing.assert_allclose(record["bbox"], official["bbox"][i], atol=1)
        assert abs(record["area"] - official["area"][i]) <= 1e-3 * official["area"][i]
        assert abs(record["predicted_iou"] - official["predicted_iou"][i]) <= SCORES_ATOL
        assert abs(record["stability_score"] - official["stability_score"][i]) <= 1e-3
        assert mask_iou(record["segmentation"][::stride, ::stride], expected_masks[i]) >= 0.99


def test_sam_forward_takes_the_image_at_the_encoder_size_and_answers_in_the_original_frame(predictors, dogs):
    """The official `Sam.forward` interface with an L model: `image` resized to 512, prompts in the 1024 frame."""
    sam, official = predictors("l0").model, official_outputs("efficientvit_sam_l0")
    image = torch.as_tensor(ResizeLongestSide(sam.encoder_image_size).apply_image(dogs)).permute(2, 0, 1).float()
    box = case_kwargs("box_single", official)["box"]
    boxes = ResizeLongestSide(sam.image_size).apply_boxes_torch(torch.as_tensor(box[None]).float(), dogs.shape[:2])
    (output,) = sam([{"image": image, "original_size": dogs.shape[:2], "boxes": boxes}], multimask_output=False)
    assert_outputs_match(
        "box_single",
        output["masks"][0].numpy(),
        output["iou_predictions"][0].numpy(),
        output["low_res_logits"][0].numpy(),
        official,
    )


def test_distill_embeds_an_l_model_teacher_at_its_encoder_size(predictors, dogs):
    """Every registry model can be a distillation teacher; its stored embedding is the predictor's."""
    from distill.encoding import encode_images

    predictor = predictors("l0")
    embedding = encode_images(predictor.model, [dogs])
    np.testing.assert_allclose(embedding, predictor.get_image_embedding().numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("contents", ["image_encoder_only", "full_l2_model"])
def test_mobilesamv2_l2_encoder_matchesofficial_outputs(contents, dogs, tmp_path):
    """MobileSAMv2 swaps its SAM's image encoder for this one; SamPredictor then feeds it SAM's 1024 input."""
    state = random_state_dict("l2")
    if contents == "image_encoder_only":
        state = image_encoder_state_dict(state)
    encoder = build_mobilesamv2_l2_encoder(_save(state, tmp_path / "l2.pt", "state_dict"))
    assert encoder.img_size == 1024
    sam = sam_model_registry["vit_t"]()
    sam.image_encoder = encoder
    predictor = SamPredictor(sam)
    predictor.set_image(dogs)
    official = official_outputs("mobilesamv2_l2_encoder")
    assert tuple(predictor.input_size) == tuple(official["input_size"])
    assert_embedding_matches(predictor.get_image_embedding(), official)


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_counts_are_the_official_models(variant):
    """Counted from the architecture alone; the official state dict's entries less its buffers (BatchNorm
    statistics, the prompt encoder's Gaussian frequencies)."""
    buffers = ("running_mean", "running_var", "num_batches_tracked", "positional_encoding_gaussian_matrix")
    official = {}
    for key, shape, _ in official_shapes()[variant]:
        if not key.endswith(buffers):
            part = key.split(".")[0]
            official[part] = official.get(part, 0) + int(np.prod(shape))
    counts = sam_parameter_counts(build_without_weights(sam_model_registry[f"efficientvit_sam_{variant}"]))
    assert counts.encoder == official["image_encoder"]
    assert counts.decoder == official["prompt_encoder"] + official["mask_decoder"]
    assert counts.total == sum(official.values()) and counts.unused == 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_checkpoint_registry_has_the_official_download_links(variant):
    """The links of the official applications/efficientvit_sam/README.md; the files are plain state dicts."""
    info = model_info(f"efficientvit_sam_{variant}")
    assert info.url == f"https://huggingface.co/mit-han-lab/efficientvit-sam/resolve/main/efficientvit_sam_{variant}.pt"
    assert info.filename == f"efficientvit_sam_{variant}.pt" and info.is_state_dict and info.downloadable


def test_a_file_that_is_not_a_state_dict_names_the_file_and_the_expected_format(tmp_path):
    path = tmp_path / "Prompt_guided_Mask_Decoder.pt"
    torch.save({"PromtEncoder": {"a": torch.zeros(1)}, "MaskDecoder": {"b": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError) as caught:
        sam_model_registry["efficientvit_sam_l0"](checkpoint=path)
    message = str(caught.value)
    assert str(path) in message and "not a state dict" in message and 'flat or under "model" or "state_dict"' in message


def test_a_checkpoint_of_another_family_names_the_file_and_the_expected_format(tmp_path):
    path = _save({"image_encoder.layers.0.blocks.0.mlp.fc1.weight": torch.zeros(4, 4)}, tmp_path / "tiny.pt", "flat")
    with pytest.raises(StateDictMismatchError) as caught:
        sam_model_registry["efficientvit_sam_l0"](checkpoint=path)
    message = str(caught.value)
    assert str(path) in message
    assert "MobileSAM (vit_t, TinyViT)" in message
    assert "efficientvit_sam_l0.pt" in message and '"state_dict"' in message


def test_a_checkpoint_of_another_variant_is_refused_with_the_expected_file(tmp_path):
    path = _save(random_state_dict("l0"), tmp_path / "efficientvit_sam_l0.pt", "state_dict")
    with pytest.raises(StateDictMismatchError) as caught:
        sam_model_registry["efficientvit_sam_l1"](checkpoint=path)
    message = str(caught.value)
    assert str(path) in message and "missing: image_encoder.backbone.stages.3.op_list.5" in message
    assert "efficientvit_sam_l1.pt" in message


def test_the_l2_encoder_refuses_a_file_without_image_encoder_weights(tmp_path):
    state = {k.removeprefix("image_encoder."): v for k, v in image_encoder_state_dict(random_state_dict("l0")).items()}
    path = _save(state, tmp_path / "encoder_only.pt", "state_dict")
    with pytest.raises(StateDictMismatchError) as caught:
        build_mobilesamv2_l2_encoder(path)
    message = str(caught.value)
    assert str(path) in message and "image_encoder." in message and "l2.pt" in message
