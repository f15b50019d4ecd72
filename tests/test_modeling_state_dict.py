"""State dicts: our models have exactly the official keys and shapes and load official-format files."""

from __future__ import annotations

import json

import pytest
import torch

from mobile_sam import sam_model_registry
from mobile_sam.build_sam import StateDictMismatchError, load_state_dict_checked

MODEL_TYPES = ["vit_t", "vit_b", "vit_l", "vit_h"]


def _shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def _build_on_meta(model_type: str) -> torch.nn.Module:
    with torch.device("meta"):
        return sam_model_registry[model_type]()


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_state_dict_keys_and_shapes_equal_official(model_type, conformance_dir):
    official = json.loads((conformance_dir / "official_state_dict_shapes.json").read_text())[model_type]
    ours = _shapes(_build_on_meta(model_type))
    assert list(ours) == list(official)
    assert ours == official


def test_default_registry_entry_is_vit_h():
    assert _shapes(_build_on_meta("default")) == _shapes(_build_on_meta("vit_h"))


@pytest.mark.parametrize("model_type", ["vit_t", "vit_b"])
def test_state_dict_matches_ultralytics_copy(model_type):
    from ultralytics.models.sam import build as ultralytics_build

    builder = {"vit_t": ultralytics_build.build_mobile_sam, "vit_b": ultralytics_build.build_sam_vit_b}[model_type]
    with torch.device("meta" if model_type != "vit_t" else "cpu"):  # ultralytics' TinyViT cannot init on meta
        peer = builder()
    assert _shapes(_build_on_meta(model_type)) == _shapes(peer)


def test_official_format_checkpoint_loads_strictly(conformance_dir):
    path = conformance_dir / "mobile_sam_vit_t_seed0.pt"
    model = sam_model_registry["vit_t"](checkpoint=path)
    official = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, official[key]), key


def test_saved_random_weights_round_trip(tmp_path):
    torch.manual_seed(0)
    model = sam_model_registry["vit_t"]()
    path = tmp_path / "mobile_sam.pt"
    torch.save(model.state_dict(), path)
    reloaded = sam_model_registry["vit_t"](checkpoint=path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values()))
    assert not reloaded.training


def test_checkpoint_for_another_model_names_the_offending_keys(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "mobile_sam.pt"
    torch.save(sam_model_registry["vit_t"]().state_dict(), path)
    with pytest.raises(StateDictMismatchError) as info:
        sam_model_registry["vit_b"](checkpoint=path)
    message = str(info.value)
    assert "'vit_b'" in message
    assert "missing: image_encoder.pos_embed" in message
    assert "unexpected: image_encoder.patch_embed.seq.0.c.weight" in message


def test_mis_shaped_key_is_reported_with_both_shapes():
    model = sam_model_registry["vit_t"]()
    state = dict(model.state_dict())
    state["prompt_encoder.no_mask_embed.weight"] = torch.zeros(1, 128)
    with pytest.raises(
        StateDictMismatchError, match=r"no_mask_embed.weight \(checkpoint \(1, 128\), model \(1, 256\)\)"
    ):
        load_state_dict_checked(model, state, "vit_t")


def test_import_pulls_in_neither_gradio_nor_ultralytics():
    import subprocess
    import sys

    code = "import sys, mobile_sam; print(any(m.split('.')[0] in ('gradio', 'ultralytics') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
