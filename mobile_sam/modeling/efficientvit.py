"""EfficientViT's large backbone (Cai et al., "EfficientViT", ICCV 2023), the image encoder of EfficientViT-SAM.

A convolutional stem and stages of local blocks (residual, fused-MBConv, MBConv), then stages of EfficientViT
blocks: ReLU linear attention over multi-scale tokens (`LiteMLA`) followed by an MBConv. Module and parameter
names follow mit-han-lab/efficientvit, so that its checkpoints load unchanged. Activations are GELU with the
tanh approximation (EfficientViT's "gelu"); every BatchNorm is built with `NORM_EPS`, the eps that
`create_efficientvit_sam_model` sets on the whole model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import in_place_ok

NORM_EPS = 1e-6
# LiteMLA's guard against dividing by a zero attention normaliser.
ATTENTION_EPS = 1e-15


def gelu() -> nn.Module:
    """EfficientViT's activation: GELU, tanh approximation."""
    return nn.GELU(approximate="tanh")


class ConvLayer(nn.Module):
    """Conv2d ("same" padding), then optionally BatchNorm and GELU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
        norm: bool = True,
        act: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=bias
        )
        self.norm = nn.BatchNorm2d(out_channels, eps=NORM_EPS) if norm else None
        self.act = gelu() if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = torch.ops.aten.gelu_(x, approximate="tanh") if in_place_ok() else self.act(x)
        return x


class ResBlock(nn.Module):
    """Two 3x3 convolutions (the first strided, with GELU). `fewer_norm`: the first has a bias instead of a norm."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float, fewer_norm: bool) -> None:
        super().__init__()
        mid = round(in_channels * expand_ratio)
        self.conv1 = ConvLayer(in_channels, mid, 3, stride, bias=fewer_norm, norm=not fewer_norm, act=True)
        self.conv2 = ConvLayer(mid, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class FusedMBConv(nn.Module):
    """A (strided) 3x3 convolution expanding the channels, with GELU, then a 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float, fewer_norm: bool) -> None:
        super().__init__()
        mid = round(in_channels * expand_ratio)
        self.spatial_conv = ConvLayer(in_channels, mid, 3, stride, bias=fewer_norm, norm=not fewer_norm, act=True)
        self.point_conv = ConvLayer(mid, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.spatial_conv(x))


class MBConv(nn.Module):
    """Inverted bottleneck: 1x1 expansion, (strided) 3x3 depthwise convolution, both with GELU, 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float, fewer_norm: bool) -> None:
        super().__init__()
        mid = round(in_channels * expand_ratio)
        norm = not fewer_norm
        self.inverted_conv = ConvLayer(in_channels, mid, 1, bias=fewer_norm, norm=norm, act=True)
        self.depth_conv = ConvLayer(mid, mid, 3, stride, groups=mid, bias=fewer_norm, norm=norm, act=True)
        self.point_conv = ConvLayer(mid, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(self.inverted_conv(x)))


LOCAL_BLOCKS: dict[str, type[nn.Module]] = {"res": ResBlock, "fmb": FusedMBConv, "mb": MBConv}


class Residual(nn.Module):
    """`main(x) + x`, or `main(x)` alone where the block changes the shape (no shortcut)."""

    def __init__(self, main: nn.Module, shortcut: bool) -> None:
        super().__init__()
        self.main = main
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.main(x)
        if not self.shortcut:
            return out
        return out.add_(x) if in_place_ok() else out + x


class OpSequential(nn.Module):
    """Modules applied in order (EfficientViT's container; its children are named `op_list.N`)."""

    def __init__(self, ops: Sequence[nn.Module]) -> None:
        super().__init__()
        self.op_list = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.op_list:
            x = op(x)
        return x


class LiteMLA(nn.Module):
    """Multi-scale ReLU linear attention.

    q, k, v come from a 1x1 convolution; each scale in `scales` adds a copy aggregated over a scale x scale
    neighbourhood (depthwise, then grouped 1x1), as extra heads. Each head attends with ReLU kernels in linear
    time: out = (v kᵀ) q / (1ᵀ kᵀ q), computed as one matmul over v padded with a row of ones.
    """

    def __init__(self, in_channels: int, out_channels: int, dim: int, scales: tuple[int, ...]) -> None:
        super().__init__()
        heads = in_channels // dim
        total_dim = heads * dim
        self.dim = dim
        self.qkv = ConvLayer(in_channels, 3 * total_dim, 1, norm=False)
        self.aggreg = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(3 * total_dim, 3 * total_dim, scale, padding=scale // 2, groups=3 * total_dim, bias=False),
                nn.Conv2d(3 * total_dim, 3 * total_dim, 1, groups=3 * heads, bias=False),
            )
            for scale in scales
        )
        self.proj = ConvLayer(total_dim * (1 + len(scales)), out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, out_channels, H, W)."""
        qkv = self.qkv(x)
        qkv = torch.cat([qkv, *(op(qkv) for op in self.aggreg)], dim=1)
        return self.proj(self.linear_attention(qkv).to(qkv.dtype))

    def linear_attention(self, qkv: torch.Tensor) -> torch.Tensor:
        """(B, heads * 3 * dim, H, W) -> (B, heads * dim, H, W), in float32 for half-precision inputs."""
        batch, _, height, width = qkv.shape
        if qkv.dtype in (torch.float16, torch.bfloat16):
            qkv = qkv.float()
        qkv = qkv.reshape(batch, -1, 3 * self.dim, height * width)
        q = F.relu(qkv[:, :, : self.dim])
        k = F.relu(qkv[:, :, self.dim : 2 * self.dim])
        v = F.pad(qkv[:, :, 2 * self.dim :], (0, 0, 0, 1), value=1.0)  # (B, h, dim + 1, N)
        out = torch.matmul(torch.matmul(v, k.transpose(-1, -2)), q)  # (B, h, dim + 1, N)
        out = out[:, :, :-1] / (out[:, :, -1:] + ATTENTION_EPS)
        return out.reshape(batch, -1, height, width)


class EfficientViTBlock(nn.Module):
    """Global context (`LiteMLA`) then local mixing (MBConv without inner norms), each with a shortcut."""

    def __init__(self, channels: int, dim: int, expand_ratio: float, scales: tuple[int, ...]) -> None:
        super().__init__()
        self.context_module = Residual(LiteMLA(channels, channels, dim, scales), shortcut=True)
        self.local_module = Residual(MBConv(channels, channels, 1, expand_ratio, fewer_norm=True), shortcut=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_module(self.context_module(x))


@dataclass(frozen=True)
class LargeBackboneConfig:
    """One `EfficientViTLargeBackbone` variant; one entry per stage in each list.

    blocks: "res", "fmb", "mb" (local blocks) or "att" / "att@3" (EfficientViT blocks with 5x5 / 3x3 token
    aggregation); stage 0 is the stem convolution plus `depths[0]` blocks, every later stage starts with a
    stride-2 block (expansion 4 x expands[i]; an MBConv for attention stages) then `depths[i]` blocks.
    """

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    blocks: tuple[str, ...] = ("res", "fmb", "fmb", "mb", "att")
    expands: tuple[float, ...] = (1, 4, 4, 4, 6)
    fewer_norms: tuple[bool, ...] = (False, False, False, True, True)
    qkv_dim: int = 32


class EfficientViTLargeBackbone(nn.Module):
    """(B, 3, S, S) -> a list with each stage's output; stage i has widths[i] channels at S / 2^(i+1)."""

    def __init__(self, config: LargeBackboneConfig, in_channels: int = 3) -> None:
        super().__init__()
        c = config
        stem = [ConvLayer(in_channels, c.widths[0], 3, stride=2, act=True)]
        stem += [self._local(c, 0, c.widths[0], c.widths[0], 1, c.expands[0]) for _ in range(c.depths[0])]
        stages = [OpSequential(stem)]
        for i in range(1, len(c.widths)):
            width = c.widths[i]
            first_kind = c.blocks[i] if c.blocks[i] in LOCAL_BLOCKS else "mb"
            stage = [self._local(c, i, c.widths[i - 1], width, 2, c.expands[i] * 4, first_kind)]
            for _ in range(c.depths[i]):
                if c.blocks[i].startswith("att"):
                    scales = (3,) if c.blocks[i] == "att@3" else (5,)
                    stage.append(EfficientViTBlock(width, c.qkv_dim, c.expands[i], scales))
                else:
                    stage.append(self._local(c, i, width, width, 1, c.expands[i]))
            stages.append(OpSequential(stage))
        self.stages = nn.ModuleList(stages)

    @staticmethod
    def _local(
        config: LargeBackboneConfig,
        stage: int,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: float,
        kind: str | None = None,
    ) -> Residual:
        block = LOCAL_BLOCKS[kind or config.blocks[stage]]
        main = block(in_channels, out_channels, stride, expand_ratio, config.fewer_norms[stage])
        return Residual(main, shortcut=stride == 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs
