"""Small building blocks shared by the image encoders and the mask decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLPBlock(nn.Module):
    """Two-layer feed-forward block: ``lin2(act(lin1(x)))``, applied over the last dimension."""

    def __init__(self, embedding_dim: int, mlp_dim: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., embedding_dim) -> (..., embedding_dim)."""
        return self.lin2(self.act(self.lin1(x)))


def in_place_ok() -> bool:
    """Whether activations may be overwritten: gradients are off and no trace records the step. In-place steps
    keep large activations out of the allocator (on a CPU, fresh large tensors page-fault their memory in)."""
    return not torch.is_grad_enabled() and not torch.jit.is_tracing()


def layer_norm(
    x: torch.Tensor,
    normalized_shape: tuple[int, ...],
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    """`F.layer_norm` over the last dimension. In an ONNX export it is spelled out as means: onnxruntime-web's
    LayerNormalization kernel runs slower in WebAssembly than the reductions and elementwise operations it replaces."""
    if not torch.onnx.is_in_onnx_export():
        return F.layer_norm(x, normalized_shape, weight, bias, eps)
    centred = x - x.mean(-1, keepdim=True)
    x = centred * torch.rsqrt((centred * centred).mean(-1, keepdim=True) + eps)
    x = x if weight is None else x * weight
    return x if bias is None else x + bias


class LayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` over the last dimension (the same parameters and state dict) through `layer_norm`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


def softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """`x.softmax(dim)`. In an ONNX export it is spelled out as exponentials over their sum: onnxruntime-web's Softmax
    over a dimension other than the last transposes around a kernel that is slow on short rows."""
    if not torch.onnx.is_in_onnx_export():
        return x.softmax(dim)
    exponentials = torch.exp(x - x.amax(dim, keepdim=True))
    return exponentials / exponentials.sum(dim, keepdim=True)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a (B, C, H, W) tensor."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps
        # A plain int, not x.shape[1]: the ONNX exporter needs the normalised shape as a constant.
        self.normalized_shape = (num_channels,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), each pixel's C values normalised then scaled and shifted."""
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
