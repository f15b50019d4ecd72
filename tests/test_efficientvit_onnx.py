"""`python -m mobile_sam.onnx export` and `OnnxPredictor` give EfficientViT-SAM's official outputs.

L0 is the variant whose encoder takes a 512 input while prompts and masks stay in the 1024 frame; it is exported
once through the command line from an official-format file and compared with the official data
(tests/conformance_data/efficientvit).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from efficientvit_support import (
    assert_embedding_matches,
    assert_outputs_match,
    case_kwargs,
    official_cases,
    official_outputs,
    random_state_dict,
)
from PIL import Image

from mobile_sam.onnx import OnnxPredictor
from mobile_sam.onnx import __main__ as onnx_cli


@pytest.fixture(scope="module")
def onnx_predictor(conformance_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("l0")
    checkpoint = folder / "efficientvit_sam_l0.pt"
    torch.save({"state_dict": random_state_dict("l0")}, checkpoint)
    argv = ["export", "--model", "efficientvit_sam_l0", "--checkpoint", str(checkpoint), "--out", str(folder)]
    assert onnx_cli.main(argv) == 0
    predictor = OnnxPredictor(folder / "encoder.onnx", folder / "decoder.onnx")
    predictor.set_image(np.array(Image.open(conformance_dir / "dogs.jpg").convert("RGB")))
    return predictor


def test_exported_l0_encodes_at_512_and_gives_the_official_embedding(onnx_predictor):
    official = official_outputs("efficientvit_sam_l0")
    assert onnx_predictor.metadata.encoder_size == 512 and onnx_predictor.metadata.image_size == 1024
    assert tuple(onnx_predictor.input_size) == tuple(official["input_size"])
    assert_embedding_matches(torch.from_numpy(onnx_predictor.get_image_embedding()), official)


@pytest.mark.parametrize("name", [case["name"] for case in official_cases()["cases"]])
def test_exported_l0_decodes_the_official_masks(name, onnx_predictor):
    official = official_outputs("efficientvit_sam_l0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outputs = onnx_predictor.predict(**case_kwargs(name, official))
    assert_outputs_match(name, *outputs, official)
