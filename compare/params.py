"""Parameter counts per model part, from a built model or from the architecture alone (no weights)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

# TinyViT keeps the ImageNet classifier of the network it was distilled from; MobileSAM's forward never uses it.
_UNUSED_TINYVIT_CHILDREN = ("norm_head", "head")


@dataclass(frozen=True)
class ParameterCounts:
    """Parameter counts of one model.

    encoder: the image encoder without parameters its forward never uses (FastSAM: the whole network);
    decoder: prompt encoder + mask decoder (FastSAM: 0, its prompts only select among its instance masks);
    total: every parameter of the model, unused ones included; unused: parameters that are never used
    (MobileSAM: TinyViT's classifier head), so total = encoder + decoder + unused.
    """

    encoder: int
    decoder: int
    total: int
    unused: int = 0

    def to_dict(self) -> dict[str, int]:
        """{"encoder", "decoder", "total", "unused"}."""
        return asdict(self)


def count_parameters(module: nn.Module) -> int:
    """The number of parameter elements of a module (meta-device parameters count the same)."""
    return sum(p.numel() for p in module.parameters())


def sam_parameter_counts(sam: nn.Module) -> ParameterCounts:
    """Counts for a `mobile_sam.modeling.Sam` (SAM, MobileSAM or EfficientViT-SAM, whose encoders use every
    parameter)."""
    from mobile_sam.modeling import TinyViT

    encoder = sam.image_encoder
    unused = 0
    if isinstance(encoder, TinyViT):
        unused = sum(count_parameters(getattr(encoder, name)) for name in _UNUSED_TINYVIT_CHILDREN)
    return ParameterCounts(
        encoder=count_parameters(encoder) - unused,
        decoder=count_parameters(sam.prompt_encoder) + count_parameters(sam.mask_decoder),
        total=count_parameters(sam),
        unused=unused,
    )


def fastsam_parameter_counts(model: nn.Module) -> ParameterCounts:
    """Counts for an ultralytics FastSAM (YOLOv8-seg) network: all of it is the "encoder"."""
    total = count_parameters(model)
    return ParameterCounts(encoder=total, decoder=0, total=total)


def build_without_weights(builder: Callable[[], nn.Module]) -> nn.Module:
    """Build a model on the `meta` device (no memory for weights, no initialisation cost).

    Import the model's modules before calling this: tensors created at import time inside the `meta` context
    would land on `meta` for good.
    """
    with torch.device("meta"):
        return builder()


# Figures quoted by the MobileSAM paper / README and EfficientViT-SAM's README, for comparison with the counts
# above (README section "Parameters: our counts against the paper's figures").
PAPER_FIGURES: dict[str, str] = {
    "vit_h": "encoder 632M (ViT-H); 611M in the MobileSAM README; decoder 3.876M",
    "vit_l": "encoder 307M (ViT-L)",
    "vit_b": "encoder 86M (ViT-B)",
    "vit_t": "encoder 5.78M, decoder 3.876M, total 9.66M",
    "efficientvit_sam_l0": "total 34.8M (EfficientViT-SAM README)",
    "efficientvit_sam_l1": "total 47.7M (EfficientViT-SAM README)",
    "efficientvit_sam_l2": "total 61.3M (EfficientViT-SAM README)",
    "efficientvit_sam_xl0": "total 117.0M (EfficientViT-SAM README)",
    "efficientvit_sam_xl1": "total 203.3M (EfficientViT-SAM README)",
    "fastsam-x": "total 68M",
    "fastsam-s": "—",
}
