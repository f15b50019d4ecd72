"""The decoder graphs cut at the low-res logits (`export_low_res_decoder`, the web page's decoder: the image side once,
then the prompts) give the official low-res logits and scores (../shared/conformance) where `Sam.postprocess_masks`
reads them, for points and boxes, for any number of points, and for any SAM."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from mobile_sam import sam_model_registry
from mobile_sam.onnx.files import (
    IMAGE_SIDE_INPUTS,
    IMAGE_SIDE_OUTPUTS,
    LOW_RES_DECODER_INPUTS,
    LOW_RES_DECODER_OUTPUTS,
)
from mobile_sam.onnx.low_res import export_low_res_decoder, image_side_path
from mobile_sam.utils.transforms import ResizeLongestSide

LOGITS_ATOL = 1e-4
SCORES_ATOL = 1e-4
# float16 weights: the bar is mask agreement (the logits move by the weights' rounding).
FLOAT16_MIN_MASK_IOU = 0.999
FLOAT16_SCORES_ATOL = 2e-3
CASES = ["one_point_multi", "pos_neg_single", "box_single", "box_point_multi", "three_points_multi"]
ORIGINAL_SIZE = (603, 1072)  # the conformance image's
INPUT_SIZE = (576, 1024)  # ORIGINAL_SIZE with its longest side resized to 1024


@pytest.fixture(scope="module")
def official(conformance_dir):
    cases = json.loads((conformance_dir / "vit_t_seed0.json").read_text())
    arrays = np.load(conformance_dir / "vit_t_predictor_seed0.npz")
    return {c["name"]: c["args"] for c in cases["predictor_cases"]}, {k: arrays[k] for k in arrays.files}


@pytest.fixture(scope="module")
def sam(conformance_dir):
    return sam_model_registry["vit_t"](checkpoint=conformance_dir / "mobile_sam_vit_t_seed0.pt").eval()


def _sessions(path) -> tuple[onnxruntime.InferenceSession, onnxruntime.InferenceSession]:
    """The image side's session and the prompts' session of an exported decoder."""
    return onnxruntime.InferenceSession(str(image_side_path(path))), onnxruntime.InferenceSession(str(path))


@pytest.fixture(scope="module")
def decoders(sam, tmp_path_factory):
    folder = tmp_path_factory.mktemp("low_res")
    return {
        dtype: _sessions(export_low_res_decoder(sam, folder / f"{dtype}.onnx", **kw))
        for dtype, kw in (("float32", {}), ("float16", {"weights_dtype": "float16"}))
    }


def _computed_extent(input_size: tuple[int, int]) -> tuple[int, int]:
    """Low-res rows and columns the graph computes: those that upsampling x4 to input_size reads (output pixel i
    reads samples floor((i + 0.5) / 4 - 0.5) and the next), rounded up to whole 4x4 tokens."""
    return tuple(min(256, 4 * -(-(-(-side // 4) + 1) // 4)) for side in input_size)


def _graph_prompt(args: dict, original_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The official prompt encoding written out: points, then box corners labelled 2 and 3, or a padding point."""
    transform = ResizeLongestSide(1024)
    coords = np.asarray(args.get("point_coords", np.zeros((0, 2))), dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(args.get("point_labels", []), dtype=np.float64)
    if "box" in args:
        coords = np.concatenate([coords, np.reshape(args["box"], (2, 2))])
        labels = np.concatenate([labels, [2, 3]])
    else:
        coords = np.concatenate([coords, [[0.0, 0.0]]])
        labels = np.concatenate([labels, [-1]])
    coords = transform.apply_coords(coords, original_size)
    return coords[None].astype(np.float32), labels[None].astype(np.float32)


def _run(
    sessions, embedding: np.ndarray, coords: np.ndarray, labels: np.ndarray, input_size=INPUT_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    image_side, prompts = sessions
    prepared = image_side.run(list(IMAGE_SIDE_OUTPUTS), {"image_embeddings": embedding})
    size = np.asarray(input_size, dtype=np.float32)
    inputs = dict(zip(LOW_RES_DECODER_INPUTS, (*prepared, coords, labels, size)))
    return tuple(prompts.run(list(LOW_RES_DECODER_OUTPUTS), inputs))


def _selected(args: dict) -> slice:
    """The official predictor's outputs: the three multimask outputs, or the single-mask output."""
    return slice(1, 4) if args["multimask_output"] else slice(0, 1)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def test_graphs_have_the_documented_interface(decoders):
    image_side, prompts = decoders["float32"]
    assert tuple(i.name for i in image_side.get_inputs()) == IMAGE_SIDE_INPUTS
    assert tuple(o.name for o in image_side.get_outputs()) == IMAGE_SIDE_OUTPUTS
    assert [i.shape for i in image_side.get_inputs()] == [[1, 256, 64, 64]]
    heads, tokens = [8, 4096, 16], [4096]  # per head (heads, tokens, d); one value per token
    prepared = [[1, *heads]] * 3 + [tokens] * 2 + [heads, tokens] * 3 + [tokens] + [heads] * 5 + [[4096, 256]]
    assert [o.shape for o in image_side.get_outputs()] == prepared
    assert tuple(i.name for i in prompts.get_inputs()) == LOW_RES_DECODER_INPUTS
    assert tuple(o.name for o in prompts.get_outputs()) == LOW_RES_DECODER_OUTPUTS
    assert [i.shape for i in prompts.get_inputs()] == prepared + [
        [1, "num_points", 2],
        [1, "num_points"],
        [2],
    ]
    scores, masks = prompts.get_outputs()
    assert scores.shape == [1, 4] and len(masks.shape) == 4  # masks: (1, 4, 256, 256), from a traced extent


@pytest.mark.parametrize("name", CASES)
def test_low_res_logits_and_scores_are_the_official_ones(name, decoders, official):
    cases, arrays = official
    args = cases[name]
    coords, labels = _graph_prompt(args, ORIGINAL_SIZE)
    scores, low_res = _run(decoders["float32"], arrays["embedding"], coords, labels)
    assert scores.shape == (1, 4) and low_res.shape == (1, 4, 256, 256) and low_res.dtype == np.float32
    selected = _selected(args)
    rows, cols = _computed_extent(INPUT_SIZE)
    expected = arrays[f"{name}/low_res_logits"]
    assert np.abs(low_res[0, selected, :rows, :cols] - expected[..., :rows, :cols]).max() <= LOGITS_ATOL
    assert not low_res[0, :, rows:].any() and not low_res[0, :, :, cols:].any()
    assert np.abs(scores[0, selected] - arrays[f"{name}/scores"]).max() <= SCORES_ATOL


@pytest.mark.parametrize("name", CASES)
def test_float16_weights_keep_the_official_masks(name, decoders, official):
    cases, arrays = official
    args = cases[name]
    scores, low_res = _run(decoders["float16"], arrays["embedding"], *_graph_prompt(args, ORIGINAL_SIZE))
    selected = _selected(args)
    rows, cols = _computed_extent(INPUT_SIZE)
    for ours, reference in zip(low_res[0, selected], arrays[f"{name}/low_res_logits"]):
        assert _mask_iou(ours[:rows, :cols] > 0, reference[:rows, :cols] > 0) >= FLOAT16_MIN_MASK_IOU
    assert np.abs(scores[0, selected] - arrays[f"{name}/scores"]).max() <= FLOAT16_SCORES_ATOL


def test_float16_weights_halve_the_file(sam, tmp_path):
    full = export_low_res_decoder(sam, tmp_path / "float32.onnx")
    half = export_low_res_decoder(sam, tmp_path / "float16.onnx", weights_dtype="float16")
    assert half.stat().st_size < 0.55 * full.stat().st_size
    onnx.checker.check_model(str(half))
    onnx.checker.check_model(str(image_side_path(half)))


@pytest.mark.parametrize("num_points", [1, 2, 7])
def test_any_number_of_points_matches_the_torch_decoder(num_points, sam, decoders, official):
    """Against SAM's own prompt encoder and mask decoder modules (`PromptEncoder.forward`, `MaskDecoder.forward`)."""
    embedding = official[1]["embedding"]
    generator = torch.Generator().manual_seed(num_points)
    points = torch.rand(1, num_points, 2, generator=generator) * 1024
    labels = torch.randint(0, 2, (1, num_points), generator=generator)
    with torch.no_grad():
        sparse, dense = sam.prompt_encoder(points=(points, labels), boxes=None, masks=None)
        expected_low_res, expected_scores = sam.mask_decoder(
            torch.from_numpy(embedding), sam.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=True
        )
    padded = torch.cat([points, torch.zeros(1, 1, 2)], 1).numpy()  # PromptEncoder pads when there is no box
    padded_labels = torch.cat([labels.float(), -torch.ones(1, 1)], 1).numpy()
    scores, low_res = _run(decoders["float32"], embedding, padded, padded_labels, input_size=(1024, 1024))
    assert np.abs(low_res[:, 1:] - expected_low_res.numpy()).max() <= LOGITS_ATOL
    assert np.abs(scores[:, 1:] - expected_scores.numpy()).max() <= SCORES_ATOL


def test_vit_b_decoder_exports_the_same_way(tmp_path):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sam = sam_model_registry["vit_b"](None).eval()
    sessions = _sessions(export_low_res_decoder(sam, tmp_path / "vit_b.onnx"))
    embedding = torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(1))
    box = torch.tensor([[[100.0, 200.0], [700.0, 900.0]]])
    with torch.no_grad():
        sparse, dense = sam.prompt_encoder(points=None, boxes=box.reshape(1, 4), masks=None)
        expected_low_res, expected_scores = sam.mask_decoder(
            embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=False
        )
    labels = np.array([[2.0, 3.0]], dtype=np.float32)
    scores, low_res = _run(sessions, embedding.numpy(), box.numpy(), labels, input_size=(1024, 768))
    rows, cols = _computed_extent((1024, 768))
    assert (rows, cols) == (256, 196)
    assert np.abs(low_res[:, :1, :, :cols] - expected_low_res[..., :cols].numpy()).max() <= LOGITS_ATOL
    assert not low_res[..., cols:].any()
    assert np.abs(scores[:, :1] - expected_scores.numpy()).max() <= SCORES_ATOL


def test_bad_settings_are_refused(sam, tmp_path):
    with pytest.raises(ValueError, match="opset"):
        export_low_res_decoder(sam, tmp_path / "a.onnx", opset=9)
    with pytest.raises(ValueError, match="weights_dtype"):
        export_low_res_decoder(sam, tmp_path / "a.onnx", weights_dtype="int8")
    assert not any(tmp_path.iterdir())  # nothing half-written
