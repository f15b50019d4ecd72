"""TinyViT, MobileSAM's image encoder: TinyViT-5M adapted to 1024x1024 input, with SAM's neck.

Layout (default configuration, 1024x1024 input):

    PatchEmbed   two stride-2 3x3 convolutions                 (B, 3, 1024, 1024) -> (B, 64, 256, 256)
    layers[0]    ConvLayer: 2 MBConv, PatchMerging stride 2    -> (B, 128, 128, 128)
    layers[1]    BasicLayer: 2 TinyViTBlock (7x7 windows), PatchMerging stride 2 -> (B, 160, 64, 64)
    layers[2]    BasicLayer: 6 TinyViTBlock (14x14 windows), PatchMerging stride 1 -> (B, 320, 64, 64)
    layers[3]    BasicLayer: 2 TinyViTBlock (7x7 windows)     -> (B, 320, 64, 64)
    neck         1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d  -> (B, 256, 64, 64)

The merging into the last stage keeps the resolution (MobileSAM's change to TinyViT), so the
encoder has SAM's output stride of 16. Parameter and buffer names follow the official checkpoint.

Inference is arranged for speed without changing results beyond float rounding: feature maps are
kept channels-last (the token layout the attention blocks need, and the fast layout for the
depthwise convolutions); in eval mode Conv2d+BatchNorm pairs are folded into one convolution (a
matrix product when pointwise) and the first stage's inverted-residual blocks run in horizontal
strips so their 4x wider hidden maps stay in cache; attention runs through
``F.scaled_dot_product_attention`` with the relative-position bias as a float mask; and large
intermediate maps are overwritten in place when autograd does not track them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .common import LayerNorm2d


def _gelu_(x: torch.Tensor) -> torch.Tensor:
    """GELU (exact, erf form) that overwrites ``x`` when autograd does not track it.

    Only call it on a fresh intermediate result: reusing its memory spares allocating (and page
    faulting) another map of the same size, which on CPU costs more than the GELU itself.
    """
    if x.requires_grad:
        return F.gelu(x)
    return torch.ops.aten.gelu_(x)


def _drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: in training, zero a whole residual branch per sample with probability ``rate``."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class ConvBN(nn.Module):
    """A bias-free ``Conv2d`` (child ``c``) followed by ``BatchNorm2d`` (child ``bn``).

    In eval mode both run as one convolution whose weight and bias fold in the BatchNorm running
    statistics (recomputed each call, so parameter updates are always seen); in training mode the
    BatchNorm uses batch statistics as usual.
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        bn_weight_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.c = nn.Conv2d(
            in_chans, out_chans, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_chans)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def folded_weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight (out, in/groups, k, k) and bias (out,) of the single convolution equal to conv + eval BN."""
        bn = self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = self.c.weight * scale.view(-1, 1, 1, 1)
        bias = bn.bias - bn.running_mean * scale
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, out_chans, H / stride, W / stride)."""
        if self.training:
            return self.bn(self.c(x))
        weight, bias = self.folded_weight_and_bias()
        if weight.shape[1:] == (x.shape[1], 1, 1) and self.c.stride == (1, 1):
            # A pointwise convolution is a matrix product over channels-last pixels.
            return F.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias).permute(0, 3, 1, 2)
        return F.conv2d(x, weight, bias, self.c.stride, self.c.padding, groups=self.c.groups)


class PatchEmbed(nn.Module):
    """Stem: 3x3 stride-2 ConvBN, GELU, 3x3 stride-2 ConvBN (children in ``seq``)."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            ConvBN(in_chans, embed_dim // 2, 3, stride=2),
            nn.GELU(),
            ConvBN(embed_dim // 2, embed_dim, 3, stride=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, embed_dim, H / 4, W / 4)."""
        conv1, _, conv2 = self.seq
        return conv2(_gelu_(conv1(x)))


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, GELU, 3x3 depthwise, GELU, 1x1 project, add input, GELU.

    In eval mode the block runs in horizontal strips of ``STRIP_ROWS`` rows (each with one row of
    context above and below for the 3x3 convolution) so the expanded hidden maps stay in cache and
    are recycled by the allocator. At MobileSAM's 256x256x256 hidden maps a strip holds 17 MB; fewer,
    larger strips keep the number of multi-threaded operations low (they stall on a busy machine).
    """

    STRIP_ROWS = 64

    def __init__(self, chans: int, expand_ratio: float, drop_path: float = 0.0) -> None:
        super().__init__()
        hidden = int(chans * expand_ratio)
        self.conv1 = ConvBN(chans, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, groups=hidden)
        self.conv3 = ConvBN(hidden, chans, bn_weight_init=0.0)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, chans, H, W) -> (B, chans, H, W)."""
        if self.training:  # BatchNorm needs the statistics of the whole batch: no strips
            h = _gelu_(self.conv2(_gelu_(self.conv1(x))))
            return _gelu_(x + _drop_path(self.conv3(h), self.drop_path, self.training))
        out = torch.empty_like(x)
        height = x.shape[2]
        for b in range(x.shape[0]):
            for top in range(0, height, self.STRIP_ROWS):
                bottom = min(top + self.STRIP_ROWS, height)
                lo, hi = max(top - 1, 0), min(bottom + 1, height)
                h = _gelu_(self.conv1(x[b : b + 1, :, lo:hi]))
                h = _gelu_(self.conv2(h)[:, :, top - lo : bottom - lo])
                out[b : b + 1, :, top:bottom] = _gelu_(self.conv3(h) + x[b : b + 1, :, top:bottom])
        return out


class PatchMerging(nn.Module):
    """Downsampling between stages: 1x1 ConvBN, GELU, 3x3 depthwise ConvBN (stride 1 or 2), GELU, 1x1 ConvBN."""

    def __init__(self, dim: int, out_dim: int, stride: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride=stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim, H, W) -> (B, out_dim, H / stride, W / stride)."""
        x = _gelu_(self.conv1(x))
        x = _gelu_(self.conv2(x))
        return self.conv3(x)


class Attention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, with a learned relative-position bias.

    The bias of a head depends on the absolute row and column offsets (|dy|, |dx|) between two
    positions of a window: ``attention_biases`` (num_heads, window_size**2) holds one value per
    offset, at index ``|dy| * window_size + |dx|``. The projection ``qkv`` yields, for each head,
    its query, key and value in turn.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window_size = window_size
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        rows = torch.arange(window_size).repeat_interleave(window_size)
        cols = torch.arange(window_size).repeat(window_size)
        offsets = (rows[:, None] - rows[None, :]).abs() * window_size + (cols[:, None] - cols[None, :]).abs()
        self.register_buffer("attention_bias_idxs", offsets, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, dim) -> (B, H, W, dim); H and W are zero-padded up to whole windows internally."""
        b, h, w, c = x.shape
        ws = self.window_size
        pad_b, pad_r = -h % ws, -w % ws
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        nh, nw = (h + pad_b) // ws, (w + pad_r) // ws
        n, tokens = b * nh * nw, ws * ws
        windows = x.reshape(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(n, tokens, c)

        qkv = self.qkv(self.norm(windows)).view(n, tokens, self.num_heads, 3, self.head_dim)
        q, k, v = qkv.permute(3, 0, 2, 1, 4)  # each (n, heads, tokens, head_dim)
        bias = self.attention_biases[:, self.attention_bias_idxs].to(q.dtype)
        # A 4-D mask (expanded, not copied) lets CPU use the fused kernel rather than the reference path.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.expand(n, -1, -1, -1))

        out = out.transpose(1, 2).reshape(b, nh, nw, ws, ws, c).transpose(2, 3)
        out = self.proj(out.reshape(b, nh * ws, nw * ws, c))
        return out[:, :h, :w]


class Mlp(nn.Module):
    """Pre-norm feed-forward block: LayerNorm, Linear, GELU, Linear (with optional dropout)."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_features)
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_features) -> (..., in_features)."""
        x = self.drop(_gelu_(self.fc1(self.norm(x))))
        return self.drop(self.fc2(x))


class TinyViTBlock(nn.Module):
    """Window attention, a depthwise ConvBN mixing neighbouring windows, then the MLP (residuals around
    the attention and the MLP)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        local_conv_size: int = 3,
    ) -> None:
        super().__init__()
        self.attn = Attention(dim, num_heads, window_size)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.local_conv = ConvBN(dim, dim, local_conv_size, groups=dim)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim, H, W) -> (B, dim, H, W); fastest when ``x`` is channels-last."""
        tokens = x.permute(0, 2, 3, 1)  # (B, H, W, dim)
        tokens = tokens + _drop_path(self.attn(tokens), self.drop_path, self.training)
        tokens = self.local_conv(tokens.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        tokens = tokens + _drop_path(self.mlp(tokens), self.drop_path, self.training)
        return tokens.permute(0, 3, 1, 2)


class _Stage(nn.Module):
    """A sequence of ``blocks`` followed by an optional ``downsample``, with optional gradient checkpointing."""

    def __init__(self, blocks: list[nn.Module], downsample: nn.Module | None, use_checkpoint: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample
        self.use_checkpoint = use_checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, dim, H, W) -> (B, out_dim, H', W'): H' = H unless downsampled."""
        for block in self.blocks:
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x if self.downsample is None else self.downsample(x)


class ConvLayer(_Stage):
    """The convolutional first stage: ``depth`` MBConv blocks, then the optional PatchMerging."""

    def __init__(
        self,
        dim: int,
        depth: int,
        expand_ratio: float,
        drop_path: Sequence[float],
        downsample: nn.Module | None,
        use_checkpoint: bool = False,
    ) -> None:
        blocks = [MBConv(dim, expand_ratio, drop_path[i]) for i in range(depth)]
        super().__init__(blocks, downsample, use_checkpoint)


class BasicLayer(_Stage):
    """An attention stage: ``depth`` TinyViTBlocks, then the optional PatchMerging."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        drop: float,
        drop_path: Sequence[float],
        local_conv_size: int,
        downsample: nn.Module | None,
        use_checkpoint: bool = False,
    ) -> None:
        blocks = [
            TinyViTBlock(dim, num_heads, window_size, mlp_ratio, drop, drop_path[i], local_conv_size)
            for i in range(depth)
        ]
        super().__init__(blocks, downsample, use_checkpoint)


class TinyViT(nn.Module):
    """MobileSAM's image encoder: (B, 3, img_size, img_size) preprocessed image -> (B, 256, img_size/16, img_size/16).

    Arguments and defaults are the official ones: the defaults describe an ImageNet-size TinyViT at 224 px;
    MobileSAM's encoder is `build_sam_vit_t`'s configuration (`VIT_T_ENCODER_CONFIG`). ``num_classes`` sizes
    the classifier (``norm_head``, ``head``) that the checkpoints carry but SAM never runs.
    ``layer_lr_decay`` sets every parameter's
    ``lr_scale`` attribute (`set_layer_lr_decay`), which TinyViT's training recipe reads to build
    per-layer learning rates; nothing else reads it. ``drop_rate``, ``drop_path_rate`` and
    ``use_checkpoint`` act in training mode only.
    """

    def __init__(
        self,
        img_size: int = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (96, 192, 384, 768),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_sizes: Sequence[int] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        use_checkpoint: bool = False,
        mbconv_expand_ratio: float = 4.0,
        local_conv_size: int = 3,
        layer_lr_decay: float = 1.0,
    ) -> None:
        super().__init__()
        stage_args = (embed_dims, depths, num_heads, window_sizes)
        if any(len(arg) != 4 for arg in stage_args):
            raise ValueError(
                "embed_dims, depths, num_heads and window_sizes must each list 4 stages, got lengths "
                f"{[len(arg) for arg in stage_args]}"
            )
        if img_size % 16 != 0:
            raise ValueError(f"img_size must be a multiple of 16, got {img_size}")
        self.img_size = img_size
        self.in_chans = in_chans
        self.num_classes = num_classes

        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # stochastic depth grows linearly
        self.layers = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(embed_dims, depths)):
            block_rates = rates[sum(depths[:i]) : sum(depths[: i + 1])]
            downsample = None
            if i < 3:
                downsample = PatchMerging(dim, embed_dims[i + 1], stride=1 if i == 2 else 2)
            if i == 0:
                layer: nn.Module = ConvLayer(dim, depth, mbconv_expand_ratio, block_rates, downsample, use_checkpoint)
            else:
                layer = BasicLayer(
                    dim,
                    depth,
                    num_heads[i],
                    window_sizes[i],
                    mlp_ratio,
                    drop_rate,
                    block_rates,
                    local_conv_size,
                    downsample,
                    use_checkpoint,
                )
            self.layers.append(layer)

        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], 256, kernel_size=1, bias=False),
            LayerNorm2d(256),
            nn.Conv2d(256, 256, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(256),
        )
        self.apply(_init_weights)
        self.set_layer_lr_decay(layer_lr_decay)

    def set_layer_lr_decay(self, layer_lr_decay: float) -> None:
        """Give every parameter an ``lr_scale`` attribute (and ``param_name``, its name) for layer-wise
        learning-rate decay: block i of the D blocks gets ``layer_lr_decay ** (D - 1 - i)``; the patch
        embedding the first block's scale; a stage's downsampling its last block's; the classifier and the
        neck the last block's (1.0). The official method leaves the neck unscaled and then fails its own
        check on MobileSAM's encoder; here every parameter is covered."""
        self.layer_lr_decay = layer_lr_decay
        depth = sum(len(layer.blocks) for layer in self.layers)
        scales = [layer_lr_decay ** (depth - 1 - i) for i in range(depth)]

        def scale(module: nn.Module, value: float) -> None:
            for parameter in module.parameters():
                parameter.lr_scale = value

        scale(self.patch_embed, scales[0])
        index = 0
        for layer in self.layers:
            for block in layer.blocks:
                scale(block, scales[index])
                index += 1
            if layer.downsample is not None:
                scale(layer.downsample, scales[index - 1])
        for module in (self.norm_head, self.head, self.neck):
            scale(module, scales[-1])
        for name, parameter in self.named_parameters():
            parameter.param_name = name

    @torch.jit.ignore
    def no_weight_decay_keywords(self) -> set[str]:
        """Parameter names that the official training recipe excludes from weight decay."""
        return {"attention_biases"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, img_size, img_size) -> (B, 256, img_size / 16, img_size / 16) image embedding."""
        return self.forward_features(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The image embedding (as `forward`; the official name of the same computation)."""
        expected = (self.in_chans, self.img_size, self.img_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            shape = ", ".join(map(str, expected))
            raise ValueError(f"TinyViT expects input of shape (B, {shape}), got {tuple(x.shape)}")
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        for layer in self.layers:
            x = layer(x)
        return self.neck(x).contiguous()


def _init_weights(module: nn.Module) -> None:
    """TinyViT's initialisation: truncated-normal linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
