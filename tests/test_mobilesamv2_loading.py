"""How `build_mobilesamv2` reads MobileSAMv2's files: what the official loaders load (quirks included) and the
errors for missing or wrong files.

The official loaders (MobileSAMv2/mobilesamv2/build_sam.py): tiny_vit reads `torch.load(f)["model"]` with
`strict=False`; sam_vit_h loads the file itself strictly into SAM's ViT-H image encoder; the prompt-guided
decoder loads `f["PromtEncoder"]` and `f["MaskDecoder"]` strictly; l2 keeps the keys holding "image_encoder.".
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from mobilesamv2_support import random_weights
from PIL import Image

from mobile_sam import SamPredictor, build_mobilesamv2
from mobile_sam.build_mobilesamv2 import MobileSAMv2FormatError, build_mobilesamv2_encoder
from mobile_sam.build_sam import CheckpointError, CheckpointNotFoundError, StateDictMismatchError

EMBEDDING_ATOL = 1e-4  # ../shared/conformance/README.md
MIN_IOU = 0.999


@pytest.fixture(scope="module")
def vit_t_state(conformance_dir: Path) -> dict[str, torch.Tensor]:
    """The shared random MobileSAM (vit_t) checkpoint, whose official outputs are in ../shared/conformance."""
    return torch.load(conformance_dir / "mobile_sam_vit_t_seed0.pt", weights_only=True)


def parts(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}


def save(tmp_path: Path, name: str, content: object) -> Path:
    path = tmp_path / name
    torch.save(content, path)
    return path


def test_v2_files_made_from_mobilesam_give_its_official_embedding_and_masks(
    tmp_path: Path, conformance_dir: Path, vit_t_state: dict
) -> None:
    """A tiny_vit file {"model": encoder keys} and a prompt-guided decoder made of the same random MobileSAM give
    that MobileSAM's official outputs (MobileSAMv2's TinyViT is MobileSAM's)."""
    encoder = save(tmp_path, "mobile_sam.pt", {"model": parts(vit_t_state, "image_encoder.")})
    decoder = {
        "PromtEncoder": parts(vit_t_state, "prompt_encoder."),
        "MaskDecoder": parts(vit_t_state, "mask_decoder."),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every tensor is loaded: no warning
        model = build_mobilesamv2("tiny_vit", encoder, save(tmp_path, "decoder.pt", decoder))
    official = np.load(conformance_dir / "vit_t_predictor_seed0.npz")
    predictor = SamPredictor(model)
    predictor.set_image(np.array(Image.open(conformance_dir / "dogs.jpg").convert("RGB")))
    np.testing.assert_allclose(predictor.features.numpy(), official["embedding"], atol=EMBEDDING_ATOL, rtol=0)
    masks, _, _ = predictor.predict(box=np.array(official["box_single/in/box"]), multimask_output=False)
    expected = np.unpackbits(official["box_single/masks"], axis=-1)[..., : masks.shape[-1]].astype(bool)
    iou = (masks & expected).sum() / (masks | expected).sum()
    assert iou >= MIN_IOU


def test_tiny_vit_rejects_mobilesam_v1_file_with_a_key_error_that_says_how_to_convert_it(
    conformance_dir: Path,
) -> None:
    """Official quirk: MobileSAM's flat mobile_sam.pt has no "model" entry (the official loader: KeyError)."""
    path = conformance_dir / "mobile_sam_vit_t_seed0.pt"
    with pytest.raises(MobileSAMv2FormatError) as raised:
        build_mobilesamv2("tiny_vit", path)
    assert isinstance(raised.value, KeyError)
    message = str(raised.value)
    assert str(path) in message and "'model'" in message and 'key[len("image_encoder."):]' in message


def test_tiny_vit_with_prefixed_keys_loads_nothing_and_warns(tmp_path: Path, vit_t_state: dict) -> None:
    """Official quirk: strict=False silently ignores keys that keep the "image_encoder." prefix; the encoder
    keeps its random initialisation (the same as building without a file from the same seed)."""
    prefixed = {key: value for key, value in vit_t_state.items() if key.startswith("image_encoder.")}
    path = save(tmp_path, "mobile_sam.pt", {"model": prefixed})
    torch.manual_seed(123)  # not the seed of the shared weights
    untouched = build_mobilesamv2_encoder("tiny_vit").state_dict()
    torch.manual_seed(123)
    with pytest.warns(UserWarning, match=r"starts? with \"image_encoder.\"|random initialisation") as caught:
        loaded = build_mobilesamv2_encoder("tiny_vit", path).state_dict()
    assert str(path) in str(caught[0].message)
    assert all(torch.equal(loaded[key], untouched[key]) for key in untouched)
    assert not torch.equal(loaded["patch_embed.seq.0.c.weight"], prefixed["image_encoder.patch_embed.seq.0.c.weight"])


def test_tiny_vit_loads_the_tensors_it_finds_and_ignores_the_rest(tmp_path: Path, vit_t_state: dict) -> None:
    """strict=False: matching tensors load, unknown keys are ignored, missing ones keep their initialisation."""
    encoder_state = parts(vit_t_state, "image_encoder.")
    kept = {key: value for key, value in encoder_state.items() if not key.startswith("neck.")}
    path = save(tmp_path, "mobile_sam.pt", {"model": {**kept, "not.a.key": torch.zeros(3)}})
    torch.manual_seed(123)  # not the seed of the shared weights
    with pytest.warns(UserWarning, match="random initialisation"):
        loaded = build_mobilesamv2_encoder("tiny_vit", path).state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in kept.items())
    assert not torch.equal(loaded["neck.0.weight"], encoder_state["neck.0.weight"])


def test_tiny_vit_with_a_wrong_shape_names_the_file(tmp_path: Path, vit_t_state: dict) -> None:
    state = parts(vit_t_state, "image_encoder.")
    state["neck.0.weight"] = torch.zeros(3, 3)
    path = save(tmp_path, "mobile_sam.pt", {"model": state})
    with pytest.raises(StateDictMismatchError, match="neck.0.weight") as raised:
        build_mobilesamv2("tiny_vit", path)
    assert str(path) in str(raised.value)


def test_prompt_guided_decoder_needs_the_official_spelling(tmp_path: Path, vit_t_state: dict) -> None:
    decoder = {
        "PromptEncoder": parts(vit_t_state, "prompt_encoder."),
        "MaskDecoder": parts(vit_t_state, "mask_decoder."),
    }
    path = save(tmp_path, "Prompt_guided_Mask_Decoder.pt", decoder)
    with pytest.raises(MobileSAMv2FormatError, match="'PromtEncoder'") as raised:
        build_mobilesamv2("tiny_vit", prompt_guided_decoder=path)
    assert isinstance(raised.value, KeyError) and str(path) in str(raised.value)


def test_a_whole_sam_checkpoint_is_not_a_prompt_guided_decoder(conformance_dir: Path) -> None:
    path = conformance_dir / "mobile_sam_vit_t_seed0.pt"
    with pytest.raises(MobileSAMv2FormatError, match="flat state dict of a whole model") as raised:
        build_mobilesamv2("tiny_vit", prompt_guided_decoder=path)
    assert "Prompt_guided_Mask_Decoder.pt" in str(raised.value)


def test_prompt_guided_decoder_is_loaded_strictly(tmp_path: Path, vit_t_state: dict) -> None:
    mask_decoder = parts(vit_t_state, "mask_decoder.")
    del mask_decoder["iou_token.weight"]
    path = save(
        tmp_path, "decoder.pt", {"PromtEncoder": parts(vit_t_state, "prompt_encoder."), "MaskDecoder": mask_decoder}
    )
    with pytest.raises(StateDictMismatchError, match="iou_token.weight") as raised:
        build_mobilesamv2("tiny_vit", prompt_guided_decoder=path)
    assert str(path) in str(raised.value) and "PromtEncoder" in str(raised.value)


def test_a_decoder_entry_that_is_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    path = save(tmp_path, "decoder.pt", {"PromtEncoder": [1, 2], "MaskDecoder": {}})
    with pytest.raises(CheckpointError, match="state dict of tensors"):
        build_mobilesamv2("tiny_vit", prompt_guided_decoder=path)


@pytest.mark.parametrize(
    ("encoder_type", "official_name"),
    [("efficientvit_l2", "l2.pt"), ("tiny_vit", "weight/mobile_sam.pt"), ("sam_vit_h", "weight/sam_vit_h.pt")],
)
def test_a_missing_encoder_file_is_named_with_where_to_get_it(
    tmp_path: Path, encoder_type: str, official_name: str
) -> None:
    with pytest.raises(CheckpointNotFoundError) as raised:
        build_mobilesamv2(encoder_type, tmp_path / "missing.pt")
    message = str(raised.value)
    assert str(tmp_path / "missing.pt") in message and official_name in message and "MobileSAMv2/README.md" in message


def test_a_missing_decoder_file_is_named_with_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="Prompt_guided_Mask_Decoder.pt.*MobileSAMv2/README.md"):
        build_mobilesamv2("tiny_vit", prompt_guided_decoder=tmp_path / "decoder.pt")


def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path: Path) -> None:
    path = tmp_path / "l2.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="l2.pt"):
        build_mobilesamv2("efficientvit_l2", path)


def test_l2_with_a_tiny_vit_file_names_the_expected_format(tmp_path: Path, vit_t_state: dict) -> None:
    path = save(tmp_path, "l2.pt", {"model": parts(vit_t_state, "image_encoder.")})
    with pytest.raises(StateDictMismatchError, match="l2.pt") as raised:
        build_mobilesamv2("efficientvit_l2", path)
    assert "image_encoder." in str(raised.value)


def test_l2_keeps_every_key_holding_image_encoder(tmp_path: Path) -> None:
    """As the official loader: "module.image_encoder.x" gives "x"; keys without "image_encoder." are ignored."""
    weights = random_weights()
    state = weights.random_state_dict(weights.load_spec()["efficientvit_l2"], seed=3)
    content = {
        "state_dict": {**{f"module.image_encoder.{k}": v for k, v in state.items()}, "mask_decoder.x": torch.ones(1)}
    }
    loaded = build_mobilesamv2_encoder("efficientvit_l2", save(tmp_path, "l2.pt", content)).state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())


def test_sam_vit_h_encoder_has_the_official_keys_and_shapes(conformance_dir: Path) -> None:
    shapes = json.loads((conformance_dir / "official_state_dict_shapes.json").read_text())["vit_h"]
    expected = {
        key[len("image_encoder.") :]: list(shape) for key, shape in shapes.items() if key.startswith("image_encoder.")
    }
    with torch.device("meta"):
        encoder = build_mobilesamv2_encoder("sam_vit_h")
    assert {key: list(value.shape) for key, value in encoder.state_dict().items()} == expected


def test_sam_vit_h_refuses_a_whole_sam_checkpoint(tmp_path: Path) -> None:
    """Official quirk: the encoder's state dict alone is read, strictly; SAM's own file (prefixed keys) fails."""
    path = save(tmp_path, "sam_vit_h.pt", {"image_encoder.pos_embed": torch.zeros(1, 64, 64, 1280)})
    with torch.device("meta"), pytest.raises(StateDictMismatchError, match="sam_vit_h.pt") as raised:
        build_mobilesamv2("sam_vit_h", path)
    assert 'keys without "image_encoder."' in str(raised.value)


def test_an_unknown_encoder_type_lists_the_official_names() -> None:
    with pytest.raises(ValueError, match="efficientvit_l2.*tiny_vit.*sam_vit_h"):
        build_mobilesamv2("mobile_sam")
