"""TinyViT (MobileSAM's image encoder): official state-dict layout, official outputs, ultralytics equivalence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ultralytics.models.sam.modules.tiny_encoder import TinyViT as UltralyticsTinyViT

from mobile_sam.build_sam import VIT_T_ENCODER_CONFIG as VIT_T_CONFIG
from mobile_sam.modeling.tiny_vit_sam import ConvBN, MBConv, TinyViT


def _randomize_(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Give every float parameter and buffer random values (BatchNorm variances positive); return the state dict.

    Default initialisation leaves whole branches inert (zero BatchNorm scales, zero attention biases,
    unit norms); random values exercise every term.
    """
    generator = torch.Generator().manual_seed(seed)
    state = module.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            if not value.is_floating_point():
                continue
            if key.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
            elif value.ndim == 1 and key.endswith("weight"):
                value.copy_(1.0 + 0.2 * torch.randn(value.shape, generator=generator))
            else:
                fan_in = value[0].numel() if value.ndim > 1 else 25
                value.copy_(torch.randn(value.shape, generator=generator) / fan_in**0.5)
    return state


def _ultralytics_copy(model: TinyViT, img_size: int) -> torch.nn.Module:
    """Ultralytics' TinyViT built like its `build_mobile_sam`, holding ``model``'s weights."""
    peer = UltralyticsTinyViT(img_size=img_size, **VIT_T_CONFIG)
    peer.load_state_dict(model.state_dict(), strict=True)
    return peer


def test_state_dict_keys_and_shapes_equal_official_vit_t_image_encoder(conformance_dir):
    official = json.loads((conformance_dir / "official_state_dict_shapes.json").read_text())["vit_t"]
    prefix = "image_encoder."
    expected = {key[len(prefix) :]: list(shape) for key, shape in official.items() if key.startswith(prefix)}
    ours = {key: list(value.shape) for key, value in TinyViT(img_size=1024, **VIT_T_CONFIG).state_dict().items()}
    assert ours == expected


def test_official_weights_reproduce_official_embedding(conformance_dir):
    checkpoint = torch.load(conformance_dir / "mobile_sam_vit_t_seed0.pt", map_location="cpu", weights_only=True)
    prefix = "image_encoder."
    weights = {key[len(prefix) :]: value for key, value in checkpoint.items() if key.startswith(prefix)}
    model = TinyViT(img_size=1024, **VIT_T_CONFIG)
    model.load_state_dict(weights, strict=True)
    model.eval()
    image = torch.from_numpy(np.load(conformance_dir / "vit_small_encoder_seed0.npz")["preprocessed_input"])
    expected = np.load(conformance_dir / "vit_t_predictor_seed0.npz")["embedding"]

    with torch.inference_mode():
        embedding = model(image)

    assert embedding.shape == (1, 256, 64, 64)
    assert np.abs(embedding.numpy() - expected).max() <= 1e-4


def test_eval_output_equals_ultralytics_tinyvit_with_same_random_weights():
    torch.manual_seed(0)
    model = TinyViT(img_size=1024, **VIT_T_CONFIG)
    _randomize_(model, seed=1)
    peer = _ultralytics_copy(model, 1024)
    model.eval()
    peer.eval()  # ultralytics caches its attention biases when switched to eval: after loading the weights
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(2))

    with torch.inference_mode():
        ours, theirs = model(image), peer(image)

    assert ours.shape == (1, 256, 64, 64)
    assert (ours - theirs).abs().max().item() <= 1e-4


def test_train_mode_forward_equals_ultralytics_with_batch_statistics():
    torch.manual_seed(0)
    model = TinyViT(img_size=128, **VIT_T_CONFIG)
    _randomize_(model, seed=3)
    peer = _ultralytics_copy(model, 128)
    model.train()
    peer.train()
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(4))

    ours, theirs = model(images), peer(images)

    assert (ours - theirs).abs().max().item() <= 1e-4


def test_eval_mode_input_gradient_equals_ultralytics():
    torch.manual_seed(0)
    model = TinyViT(img_size=128, **VIT_T_CONFIG)
    _randomize_(model, seed=5)
    peer = _ultralytics_copy(model, 128)
    model.eval()
    peer.eval()
    image = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(6), requires_grad=True)

    (ours,) = torch.autograd.grad(model(image).square().sum(), image)
    (theirs,) = torch.autograd.grad(peer(image).square().sum(), image)

    assert (ours - theirs).abs().max() <= 1e-4 * theirs.abs().max()


def test_convbn_eval_equals_convolution_then_batchnorm():
    torch.manual_seed(0)
    for kernel_size, stride, groups in [(1, 1, 1), (3, 2, 1), (3, 1, 8)]:
        layer = ConvBN(8, 16, kernel_size, stride=stride, groups=groups)
        _randomize_(layer, seed=7)
        layer.eval()
        x = torch.randn(2, 8, 11, 13)

        with torch.no_grad():
            expected = layer.bn(layer.c(x))
            assert torch.allclose(layer(x), expected, atol=1e-5)


def test_mbconv_eval_strips_equal_whole_map_computation():
    block = MBConv(16, expand_ratio=4.0)
    _randomize_(block, seed=8)
    block.eval()
    height = 2 * MBConv.STRIP_ROWS + 5  # two full strips and a short last one
    x = torch.randn(2, 16, height, 9).contiguous(memory_format=torch.channels_last)

    def convbn(layer: ConvBN, t: torch.Tensor) -> torch.Tensor:
        return layer.bn(layer.c(t))

    with torch.no_grad():
        hidden = F.gelu(convbn(block.conv2, F.gelu(convbn(block.conv1, x))))
        expected = F.gelu(x + convbn(block.conv3, hidden))
        assert torch.allclose(block(x), expected, atol=1e-5)


def test_forward_rejects_input_of_wrong_size():
    model = TinyViT(img_size=256, **VIT_T_CONFIG).eval()
    with pytest.raises(ValueError, match=r"\(B, 3, 256, 256\)"):
        model(torch.zeros(1, 3, 224, 224))


def test_constructor_rejects_stage_lists_of_unequal_length():
    config = dict(VIT_T_CONFIG, depths=[2, 2, 6])
    with pytest.raises(ValueError, match="4 stages"):
        TinyViT(img_size=1024, **config)


def test_builds_on_meta_device_without_allocating():
    with torch.device("meta"):
        model = TinyViT(img_size=1024, **VIT_T_CONFIG)
    assert all(value.is_meta for value in model.state_dict().values())


@pytest.mark.parametrize("decay", [0.8, 0.5])
def test_layer_lr_decay_scales_follow_the_block_order(decay: float) -> None:
    depths = (2, 2, 6, 2)
    model = TinyViT(img_size=64, depths=depths, layer_lr_decay=0.8)
    model.set_layer_lr_decay(decay)
    total = sum(depths)
    first_block = [sum(depths[:stage]) for stage in range(4)]  # global index of each stage's first block
    for name, parameter in model.named_parameters():
        parts = name.split(".")
        if parts[0] == "patch_embed":
            index = 0
        elif parts[0] == "layers" and parts[2] == "blocks":
            index = first_block[int(parts[1])] + int(parts[3])
        elif parts[0] == "layers" and parts[2] == "downsample":
            stage = int(parts[1])
            index = first_block[stage] + depths[stage] - 1
        else:
            assert parts[0] in ("norm_head", "head", "neck"), name
            index = total - 1
        assert parameter.lr_scale == pytest.approx(decay ** (total - 1 - index)), name
        assert parameter.param_name == name
