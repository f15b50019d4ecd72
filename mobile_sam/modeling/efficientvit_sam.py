"""EfficientViT-SAM's image encoder (Zhang et al., 2024): an EfficientViT backbone, a neck fusing three stages,
and a channel LayerNorm, giving SAM's (B, 256, 64, 64) image embedding.

The L models encode a 512 x 512 input, the XL models 1024 x 1024; prompts and masks stay in SAM's 1024 frame
either way (`Sam.encoder_image_size` vs `Sam.image_size`). MobileSAMv2 uses the L2 encoder on SAM's 1024 input,
resized bilinearly to 512 inside the encoder (`build_mobilesamv2_l2_encoder`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d
from .efficientvit import (
    NORM_EPS,
    ConvLayer,
    EfficientViTLargeBackbone,
    FusedMBConv,
    LargeBackboneConfig,
    OpSequential,
    Residual,
)

EMBEDDING_DIM = 256
EMBEDDING_SIZE = 64  # the neck resizes every stage it reads to 64 x 64, SAM's embedding grid

_L_WIDTHS = (32, 64, 128, 256, 512)
_XL_WIDTHS = (32, 64, 128, 256, 512, 1024)
_XL_BLOCKS = ("res", "fmb", "fmb", "fmb", "att@3", "att@3")
_XL_EXPANDS = (1, 4, 4, 4, 4, 6)
_XL_FEWER_NORMS = (False, False, False, False, True, True)


@dataclass(frozen=True)
class EfficientViTSamConfig:
    """One EfficientViT-SAM variant: its backbone, the stages its neck reads (deepest first), and the neck."""

    image_size: int
    backbone: LargeBackboneConfig
    neck_stages: tuple[int, ...]
    neck_depth: int
    neck_expand: float


EFFICIENTVIT_SAM_CONFIGS: Mapping[str, EfficientViTSamConfig] = {
    "l0": EfficientViTSamConfig(512, LargeBackboneConfig(_L_WIDTHS, (1, 1, 1, 4, 4)), (4, 3, 2), 4, 1),
    "l1": EfficientViTSamConfig(512, LargeBackboneConfig(_L_WIDTHS, (1, 1, 1, 6, 6)), (4, 3, 2), 8, 1),
    "l2": EfficientViTSamConfig(512, LargeBackboneConfig(_L_WIDTHS, (1, 2, 2, 8, 8)), (4, 3, 2), 12, 1),
    "xl0": EfficientViTSamConfig(
        1024,
        LargeBackboneConfig(_XL_WIDTHS, (0, 1, 1, 2, 3, 3), _XL_BLOCKS, _XL_EXPANDS, _XL_FEWER_NORMS),
        (5, 4, 3),
        6,
        4,
    ),
    "xl1": EfficientViTSamConfig(
        1024,
        LargeBackboneConfig(_XL_WIDTHS, (1, 2, 2, 4, 6, 6), _XL_BLOCKS, _XL_EXPANDS, _XL_FEWER_NORMS),
        (5, 4, 3),
        12,
        4,
    ),
}


class UpsampleTo(nn.Module):
    """Bicubic resize (align_corners=False) to a fixed square size; inputs already that size pass unchanged."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == (self.size, self.size):
            return x
        return F.interpolate(x, (self.size, self.size), mode="bicubic", align_corners=False)


class SamNeck(nn.Module):
    """Fuses backbone stages into one 256-channel 64 x 64 map.

    Each stage read goes through a 1x1 conv + BatchNorm and a bicubic resize to 64 x 64; the results are summed
    (first + (second + third), as the official code adds), refined by `depth` residual fused-MBConvs, and
    projected by a 1x1 conv with bias.
    """

    def __init__(
        self,
        stages: Sequence[int],
        in_channels: Sequence[int],
        depth: int,
        expand_ratio: float,
        width: int = EMBEDDING_DIM,
        out_channels: int = EMBEDDING_DIM,
    ) -> None:
        super().__init__()
        self.stages = tuple(stages)
        self.input_ops = nn.ModuleList(
            OpSequential([ConvLayer(channels, width, 1), UpsampleTo(EMBEDDING_SIZE)]) for channels in in_channels
        )
        self.middle = OpSequential(
            [
                Residual(FusedMBConv(width, width, 1, expand_ratio, fewer_norm=False), shortcut=True)
                for _ in range(depth)
            ]
        )
        self.output_ops = nn.ModuleList([OpSequential([ConvLayer(width, out_channels, 1, bias=True, norm=False)])])

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Backbone stage outputs -> (B, out_channels, 64, 64)."""
        inputs = [op(features[stage]) for stage, op in zip(self.stages, self.input_ops)]
        fused = inputs[-1]
        for x in reversed(inputs[:-1]):
            fused = x + fused
        return self.output_ops[0](self.middle(fused))


class EfficientViTSamImageEncoder(nn.Module):
    """(B, 3, img_size, img_size) normalised, zero-padded image -> (B, 256, 64, 64) embedding.

    `img_size` is the side the encoder takes; the backbone runs at `encode_size`. They are equal for
    EfficientViT-SAM; MobileSAMv2's L2 encoder takes 1024 and resizes it to 512 (bilinear, no antialiasing).
    """

    def __init__(self, config: EfficientViTSamConfig, img_size: int | None = None) -> None:
        super().__init__()
        self.encode_size = config.image_size
        self.img_size = config.image_size if img_size is None else img_size
        self.backbone = EfficientViTLargeBackbone(config.backbone)
        widths = config.backbone.widths
        self.neck = SamNeck(
            config.neck_stages, [widths[i] for i in config.neck_stages], config.neck_depth, config.neck_expand
        )
        self.norm = LayerNorm2d(EMBEDDING_DIM, eps=NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.img_size != self.encode_size:
            x = F.interpolate(x, (self.encode_size, self.encode_size), mode="bilinear", align_corners=False)
        return self.norm(self.neck(self.backbone(x))).contiguous()


def set_norm_eps(module: nn.Module, eps: float = NORM_EPS) -> None:
    """Set the eps of every LayerNorm / BatchNorm / GroupNorm in `module` (the official `set_norm_eps`).

    EfficientViT-SAM applies it to the whole model: its mask decoder's LayerNorms use 1e-6, not PyTorch's 1e-5.
    """
    for m in module.modules():
        if isinstance(m, (nn.LayerNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm, LayerNorm2d)):
            m.eps = eps


# MobileSAMv2 keeps the image-encoder weights of an EfficientViT-SAM-L2 file, found by this part of the key.
IMAGE_ENCODER_KEY = "image_encoder."
MOBILESAMV2_L2_ENCODER = "mobilesamv2_l2_encoder"
