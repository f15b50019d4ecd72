"""ONNX export and `OnnxPredictor` reproduce the official MobileSAM outputs (../shared/conformance) and our torch path.

vit_t with the conformance weights is exported once for the module; the official export script's call
sequence (scripts/export_onnx_model.py) is written out here against our package, not copied.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from functools import partial

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

from mobile_sam import SamPredictor, sam_model_registry
from mobile_sam.modeling import ImageEncoderViT
from mobile_sam.onnx import OnnxPredictor
from mobile_sam.onnx import __main__ as onnx_cli
from mobile_sam.onnx.export import ExportedModel, export_encoder, export_sam
from mobile_sam.onnx.files import EncoderMetadata
from mobile_sam.utils.onnx import SamOnnxModel

# ONNX Runtime against torch (the bar) and against the official outputs (the same bar: it holds).
LOGITS_ATOL = 1e-4
SCORES_ATOL = 1e-4
EMBEDDING_ATOL = 1e-4
MIN_MASK_IOU = 0.999
CASES = [
    "one_point_multi",
    "pos_neg_single",
    "box_single",
    "box_point_multi",
    "three_points_multi",
    "refine_with_mask_input",
]


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _assert_masks_agree(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape and ours.dtype == reference.dtype == bool
    for a, b in zip(ours.reshape(-1, *ours.shape[-2:]), reference.reshape(-1, *reference.shape[-2:])):
        assert _mask_iou(a, b) >= MIN_MASK_IOU


@pytest.fixture(scope="module")
def official(conformance_dir):
    cases = json.loads((conformance_dir / "vit_t_seed0.json").read_text())
    arrays = np.load(conformance_dir / "vit_t_predictor_seed0.npz")
    return cases, {k: arrays[k] for k in arrays.files}


@pytest.fixture(scope="module")
def image(conformance_dir) -> np.ndarray:
    return np.array(Image.open(conformance_dir / "dogs.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def sam(conformance_dir):
    return sam_model_registry["vit_t"](checkpoint=conformance_dir / "mobile_sam_vit_t_seed0.pt").eval()


@pytest.fixture(scope="module")
def exported(sam, tmp_path_factory):
    return export_sam(
        sam, tmp_path_factory.mktemp("onnx_vit_t"), model_type="vit_t", weights="mobile_sam_vit_t_seed0.pt"
    )


@pytest.fixture(scope="module")
def onnx_predictor(exported, image) -> OnnxPredictor:
    predictor = OnnxPredictor(exported.encoder, exported.decoder)
    predictor.set_image(image)
    return predictor


@pytest.fixture(scope="module")
def torch_predictor(sam, image) -> SamPredictor:
    predictor = SamPredictor(sam)
    predictor.set_image(image)
    return predictor


def _case_kwargs(name: str, official) -> dict:
    cases, arrays = official
    case = next(c for c in cases["predictor_cases"] if c["name"] == name)
    kwargs = {k: np.asarray(v) for k, v in case["args"].items() if k != "mask_input"}
    kwargs["multimask_output"] = bool(case["args"]["multimask_output"])
    if "mask_input" in case["args"]:
        kwargs["mask_input"] = arrays[f"{name}/in/mask_input"]
    return kwargs


def test_exported_encoder_gives_the_official_embedding(onnx_predictor, torch_predictor, official):
    _, arrays = official
    assert onnx_predictor.input_size == tuple(arrays["input_size"])
    embedding = onnx_predictor.get_image_embedding()
    assert embedding.shape == (1, 256, 64, 64) and embedding.dtype == np.float32
    assert np.abs(embedding - arrays["embedding"]).max() <= EMBEDDING_ATOL
    assert np.abs(embedding - torch_predictor.get_image_embedding().numpy()).max() <= EMBEDDING_ATOL


@pytest.mark.parametrize("name", CASES)
def test_onnx_predictor_matches_official_and_torch(name, onnx_predictor, torch_predictor, official):
    cases, arrays = official
    kwargs = _case_kwargs(name, official)
    masks, scores, low_res = onnx_predictor.predict(**kwargs)
    width = cases["image_size_hw"][1]
    official_masks = np.unpackbits(arrays[f"{name}/masks"], axis=-1)[..., :width].astype(bool)
    _assert_masks_agree(masks, official_masks)
    assert np.abs(low_res - arrays[f"{name}/low_res_logits"]).max() <= LOGITS_ATOL
    assert np.abs(scores - arrays[f"{name}/scores"]).max() <= SCORES_ATOL

    torch_masks, torch_scores, torch_low_res = torch_predictor.predict(**kwargs)
    _assert_masks_agree(masks, torch_masks)
    assert scores.shape == torch_scores.shape and low_res.shape == torch_low_res.shape
    assert np.abs(low_res - torch_low_res).max() <= LOGITS_ATOL
    assert np.abs(scores - torch_scores).max() <= SCORES_ATOL


def test_logits_and_a_mask_only_prompt_match_torch(onnx_predictor, torch_predictor, official):
    # No point and no box: the decoder graph gets zero prompt tokens, as SAM's prompt encoder gives.
    mask_input = official[1]["refine_with_mask_input/in/mask_input"]
    logits, scores, low_res = onnx_predictor.predict(mask_input=mask_input, multimask_output=True, return_logits=True)
    torch_logits, torch_scores, torch_low_res = torch_predictor.predict(
        mask_input=mask_input, multimask_output=True, return_logits=True
    )
    assert logits.dtype == np.float32 and logits.shape == torch_logits.shape == (3, 603, 1072)
    assert np.abs(low_res - torch_low_res).max() <= LOGITS_ATOL
    assert np.abs(scores - torch_scores).max() <= SCORES_ATOL
    assert np.abs(logits - torch_logits).max() <= 10 * LOGITS_ATOL  # bilinear upsampling rounding


def test_onnx_predictor_errors_are_clear(exported, onnx_predictor):
    fresh = OnnxPredictor(exported.encoder, exported.decoder)
    with pytest.raises(RuntimeError, match="set_image"):
        fresh.predict(point_coords=np.array([[10, 10]]), point_labels=np.array([1]))
    with pytest.raises(ValueError, match="uint8"):
        fresh.set_image(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="together"):
        onnx_predictor.predict(point_coords=np.array([[10, 10]]))
    with pytest.raises(ValueError, match="NaN"):
        onnx_predictor.predict(point_coords=np.array([[np.nan, 10]]), point_labels=np.array([1]))
    with pytest.raises(ValueError, match="point_labels must be 1, 0 or -1"):
        onnx_predictor.predict(point_coords=np.array([[10, 10]]), point_labels=np.array([2]))
    with pytest.raises(ValueError, match="mask_input"):
        onnx_predictor.predict(mask_input=np.zeros((256, 256)))
    with pytest.raises(ValueError, match="metadata"):
        OnnxPredictor(exported.decoder, exported.decoder)  # an encoder file without our metadata


def test_an_export_of_random_weights_warns_when_loaded(exported, tmp_path):
    metadata = EncoderMetadata("vit_t", "random (seed 0)", 1024, "RGB", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 0.0)
    encoder = export_encoder(torch.nn.Conv2d(3, 256, 16, 16), tmp_path / "encoder.onnx", 1024, metadata=metadata)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        predictor = OnnxPredictor(encoder, exported.decoder)
    assert predictor.metadata == metadata


def test_onnx_predictor_runs_without_torch(exported, onnx_predictor, image, tmp_path):
    """In a process where `import torch` fails, the package imports and predicts the same masks (from BGR input)."""
    np.save(tmp_path / "image.npy", image)
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ModuleNotFoundError
        import numpy as np
        from mobile_sam.onnx import OnnxPredictor
        predictor = OnnxPredictor({str(exported.encoder)!r}, {str(exported.decoder)!r})
        predictor.set_image(np.load({str(tmp_path / "image.npy")!r})[..., ::-1], image_format="BGR")
        masks, scores, low_res = predictor.predict(point_coords=np.array([[653.5, 190.4]]), point_labels=np.array([1]))
        np.save({str(tmp_path / "low_res.npy")!r}, low_res)
        heavy = ("torch", "torchvision", "gradio", "ultralytics")
        loaded = sorted(m for m, module in sys.modules.items() if module is not None and m.split(".")[0] in heavy)
        print(loaded, sys.modules["torch"])
        try:
            from mobile_sam import SamPredictor
        except ImportError as error:
            print(error)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "[] None"
    assert "needs PyTorch" in result.stdout
    expected = onnx_predictor.predict(point_coords=np.array([[653.5, 190.4]]), point_labels=np.array([1]))[2]
    np.testing.assert_array_equal(np.load(tmp_path / "low_res.npy"), expected)


def test_small_vit_encoder_exports_with_the_official_embedding(conformance_dir, tmp_path):
    """The SAM ViT encoder (vit_b/l/h code) in the conformance's small configuration."""
    config = json.loads((conformance_dir / "vit_small_encoder_seed0.json").read_text())["config"]
    encoder = ImageEncoderViT(norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), **config).eval()
    encoder.load_state_dict(torch.load(conformance_dir / "vit_small_encoder_seed0.pt", weights_only=True), strict=True)
    arrays = np.load(conformance_dir / "vit_small_encoder_seed0.npz")
    path = export_encoder(encoder, tmp_path / "encoder.onnx", config["img_size"])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    embedding = session.run(None, {"image": arrays["preprocessed_input"]})[0]
    assert np.abs(embedding - arrays["embedding"]).max() <= EMBEDDING_ATOL


# -- the official scripts/export_onnx_model.py call sequence, against this package --------------------------
def _official_export(sam, path, return_single_mask: bool, return_extra_metrics: bool = False):
    onnx_model = SamOnnxModel(
        model=sam,
        return_single_mask=return_single_mask,
        use_stability_score=False,
        return_extra_metrics=return_extra_metrics,
    )
    embed_dim = sam.prompt_encoder.embed_dim
    embed_size = sam.prompt_encoder.image_embedding_size
    mask_input_size = [4 * x for x in embed_size]
    dummy_inputs = {
        "image_embeddings": torch.randn(1, embed_dim, *embed_size, dtype=torch.float),
        "point_coords": torch.randint(low=0, high=1024, size=(1, 5, 2), dtype=torch.float),
        "point_labels": torch.randint(low=0, high=4, size=(1, 5), dtype=torch.float),
        "mask_input": torch.randn(1, 1, *mask_input_size, dtype=torch.float),
        "has_mask_input": torch.tensor([1], dtype=torch.float),
        "orig_im_size": torch.tensor([1500, 2250], dtype=torch.float),
    }
    _ = onnx_model(**dummy_inputs)
    output_names = ["masks", "iou_predictions", "low_res_masks"]
    if return_extra_metrics:
        output_names = ["masks", "iou_predictions", "stability_scores", "areas", "low_res_masks"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        with open(path, "wb") as f:
            torch.onnx.export(
                onnx_model,
                tuple(dummy_inputs.values()),
                f,
                export_params=True,
                verbose=False,
                opset_version=16,
                do_constant_folding=True,
                input_names=list(dummy_inputs.keys()),
                output_names=output_names,
                dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
                dynamo=False,
            )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    _ = session.run(None, {k: v.cpu().numpy() for k, v in dummy_inputs.items()})
    return session


def _decoder_inputs(predictor: SamPredictor, coords: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Points in original pixels plus the padding point, as the official notebook feeds the ONNX decoder."""
    points = predictor.transform.apply_coords(coords, predictor.original_size)
    return {
        "image_embeddings": predictor.get_image_embedding().numpy(),
        "point_coords": np.concatenate([points, [[0.0, 0.0]]])[None].astype(np.float32),
        "point_labels": np.append(labels, -1)[None].astype(np.float32),
        "mask_input": np.zeros((1, 1, 256, 256), dtype=np.float32),
        "has_mask_input": np.zeros(1, dtype=np.float32),
        "orig_im_size": np.array(predictor.original_size, dtype=np.float32),
    }


def test_official_export_sequence_gives_all_four_outputs(sam, torch_predictor, tmp_path):
    session = _official_export(sam, tmp_path / "sam.onnx", return_single_mask=False)
    coords, labels = np.array([[653.5, 190.4], [300.0, 400.0]]), np.array([1, 0])
    masks, scores, low_res = session.run(None, _decoder_inputs(torch_predictor, coords, labels))
    assert masks.shape == (1, 4, 603, 1072) and scores.shape == (1, 4) and low_res.shape == (1, 4, 256, 256)
    for multimask, selected in ((True, slice(1, None)), (False, slice(0, 1))):
        ref_masks, ref_scores, ref_low_res = torch_predictor.predict(coords, labels, multimask_output=multimask)
        assert np.abs(low_res[0, selected] - ref_low_res).max() <= LOGITS_ATOL
        assert np.abs(scores[0, selected] - ref_scores).max() <= SCORES_ATOL
        _assert_masks_agree(masks[0, selected] > 0, ref_masks)


def test_official_export_sequence_with_return_single_mask(sam, torch_predictor, exported, tmp_path):
    path = tmp_path / "sam_single.onnx"
    session = _official_export(sam, path, return_single_mask=True)
    one_point = (np.array([[653.5, 190.4]]), np.array([1]))  # 2 tokens with the padding point: best multimask
    three_points = (np.array([[653.5, 190.4], [300.0, 400.0], [900.0, 100.0]]), np.array([1, 0, 1]))  # single
    for (coords, labels), multimask in ((one_point, True), (three_points, False)):
        masks, scores, low_res = session.run(None, _decoder_inputs(torch_predictor, coords, labels))
        ref_masks, ref_scores, ref_low_res = torch_predictor.predict(coords, labels, multimask_output=multimask)
        best = int(np.argmax(ref_scores))
        assert masks.shape == (1, 1, 603, 1072) and scores.shape == (1, 1)
        assert np.abs(low_res[0, 0] - ref_low_res[best]).max() <= LOGITS_ATOL
        assert abs(scores[0, 0] - ref_scores[best]) <= SCORES_ATOL
        _assert_masks_agree(masks[0] > 0, ref_masks[best : best + 1])
    with pytest.raises(ValueError, match="without --return-single-mask"):
        OnnxPredictor(exported.encoder, path)


def test_official_export_sequence_with_extra_metrics(sam, torch_predictor, tmp_path):
    session = _official_export(sam, tmp_path / "sam_extra.onnx", return_single_mask=False, return_extra_metrics=True)
    coords, labels = np.array([[653.5, 190.4]]), np.array([1])
    masks, scores, stability, areas, low_res = session.run(None, _decoder_inputs(torch_predictor, coords, labels))
    # Plain re-derivation: IoU of the masks thresholded at +1 and -1, and the pixel count above 0.
    expected_stability = (masks > 1).sum(axis=(-2, -1)) / (masks > -1).sum(axis=(-2, -1))
    np.testing.assert_allclose(stability, expected_stability, atol=1e-6)
    np.testing.assert_array_equal(areas, (masks > 0).sum(axis=(-2, -1)))


# -- command line ---------------------------------------------------------------------------------------------
def test_export_cli_refuses_to_run_without_weights(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        onnx_cli.main(["export", "--model", "vit_t", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--checkpoint" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_export_cli_says_loudly_that_random_weights_are_random(tmp_path, capsys, monkeypatch):
    calls = {}

    def fake_export(sam, out_dir, **kwargs):
        calls.update(kwargs, out_dir=out_dir)
        return ExportedModel(out_dir / "encoder.onnx", out_dir / "decoder.onnx")

    monkeypatch.setattr("mobile_sam.onnx.export.export_sam", fake_export)
    assert onnx_cli.main(["export", "--model", "vit_t", "--random-weights", "--seed", "3", "--out", str(tmp_path)]) == 0
    assert "RANDOMLY INITIALISED" in capsys.readouterr().err
    assert calls["weights"] == "random (seed 3)" and calls["model_type"] == "vit_t"


def test_export_cli_reports_a_missing_checkpoint(tmp_path, capsys):
    code = onnx_cli.main(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "out")])
    assert code == 2 and "missing.pt" in capsys.readouterr().err
