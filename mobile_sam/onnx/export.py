"""Export SAM / MobileSAM to ONNX: encoder.onnx (the image encoder) and decoder.onnx (`SamOnnxModel`).

The TorchScript exporter (`dynamo=False`) is used: with torch 2.14 the dynamo exporter rejects the
official decoder's dynamic number of points, and the TorchScript one gives graphs that match the torch
modules (checked by tests/test_onnx.py). The encoder is exported from the very module `SamPredictor`
runs (`sam.image_encoder`, in eval mode).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import onnx
import torch
from torch import nn
from torch.nn import functional as F

from ..modeling import Sam
from ..utils.atomic import atomic_path
from ..utils.onnx import SamOnnxModel
from .files import (
    DECODER_FILE,
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    DEFAULT_OPSET,
    ENCODER_FILE,
    ENCODER_INPUT,
    ENCODER_OUTPUT,
    MAX_OPSET,
    METADATA_KEY,
    MIN_OPSET,
    EncoderMetadata,
)


@dataclass(frozen=True)
class ExportedModel:
    """Paths of an exported encoder / decoder pair."""

    encoder: Path
    decoder: Path


def export_encoder(
    encoder: nn.Module,
    path: str | Path,
    image_size: int = 1024,
    opset: int = DEFAULT_OPSET,
    metadata: EncoderMetadata | None = None,
) -> Path:
    """Write an image encoder as ONNX: "image" (1, 3, S, S) preprocessed float -> "image_embeddings".

    The encoder is traced in eval mode; its training flags are restored afterwards. `metadata` (what
    `OnnxPredictor` needs to feed it) is stored in the file.
    """
    _check_opset(opset)
    dummy = torch.zeros(1, 3, image_size, image_size)
    with _eval_mode(encoder), _whole_map_blocks(encoder), atomic_path(path) as tmp:
        _torchscript_export(encoder, (dummy,), tmp, opset, [ENCODER_INPUT], [ENCODER_OUTPUT], None)
        if metadata is not None:
            model = onnx.load(tmp)
            entry = model.metadata_props.add()
            entry.key, entry.value = METADATA_KEY, metadata.to_json()
            onnx.save(model, tmp)
    return Path(path)


def export_decoder(sam: Sam, path: str | Path, opset: int = DEFAULT_OPSET, return_single_mask: bool = False) -> Path:
    """Write `SamOnnxModel(sam, return_single_mask)` as ONNX with a dynamic number of points.

    Inputs and outputs are the official ones (`DECODER_INPUTS` -> `DECODER_OUTPUTS`, see
    `mobile_sam.utils.onnx`).
    """
    _check_opset(opset)
    decoder = SamOnnxModel(sam, return_single_mask=return_single_mask)
    embed_dim = sam.prompt_encoder.embed_dim
    grid = sam.prompt_encoder.image_embedding_size
    generator = torch.Generator().manual_seed(0)
    dummy = (
        torch.randn(1, embed_dim, *grid, generator=generator),
        torch.randint(0, sam.image_size, (1, 5, 2), generator=generator).float(),
        torch.randint(0, 4, (1, 5), generator=generator).float(),
        torch.randn(1, 1, *sam.prompt_encoder.mask_input_size, generator=generator),
        torch.tensor([1.0]),
        torch.tensor([1500.0, 2250.0]),
    )
    dynamic_axes = {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}
    with _eval_mode(decoder), atomic_path(path) as tmp:
        _torchscript_export(decoder, dummy, tmp, opset, list(DECODER_INPUTS), list(DECODER_OUTPUTS), dynamic_axes)
    return Path(path)


def export_sam(
    sam: Sam,
    out_dir: str | Path,
    *,
    model_type: str,
    weights: str,
    opset: int = DEFAULT_OPSET,
) -> ExportedModel:
    """Write encoder.onnx and decoder.onnx (all four mask outputs) into out_dir, for `OnnxPredictor`.

    encoder.onnx carries the preprocessing constants and `weights` (a description of where the weights
    came from) as `EncoderMetadata`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metadata = EncoderMetadata(
        model_type=model_type,
        weights=weights,
        image_size=sam.image_size,
        image_format=sam.image_format,
        pixel_mean=tuple(sam.pixel_mean.flatten().tolist()),
        pixel_std=tuple(sam.pixel_std.flatten().tolist()),
        mask_threshold=float(sam.mask_threshold),
        encoder_image_size=sam.encoder_image_size,
    )
    encoder = export_encoder(sam.image_encoder, out / ENCODER_FILE, sam.encoder_image_size, opset, metadata)
    decoder = export_decoder(sam, out / DECODER_FILE, opset)
    return ExportedModel(encoder, decoder)


def _torchscript_export(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    path: Path,
    opset: int,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None,
) -> None:
    with warnings.catch_warnings():
        # Trace-time notes about Python values becoming constants: the shapes involved are fixed by design.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # torch 2.14 flags the TorchScript exporter as legacy; it is the one that exports these graphs correctly.
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        torch.onnx.export(
            module,
            inputs,
            str(path),
            export_params=True,
            opset_version=opset,
            do_constant_folding=True,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            dynamo=False,
        )


def _check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(
            f"opset must be between {MIN_OPSET} and {MAX_OPSET} (the TorchScript exporter's range), got {opset}"
        )


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Run the block with `module` in eval mode, then restore its (and its children's) training flags."""
    flags = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield
    finally:
        for m, training in flags.items():
            m.training = training


@contextmanager
def _whole_map_blocks(module: nn.Module) -> Iterator[None]:
    """Export TinyViT's MBConv blocks as one whole-map computation each.

    In eval mode a block runs in strips written into an output made with `torch.empty_like`; traced, that output
    becomes a constant of zeros baked into the graph (a (1, 64, 256, 256) float32 tensor, 16 MB, per block of
    MobileSAM's first stage). While the block is traced it computes its whole map at once instead: the same
    convolutions, GELUs and residual add on the same values.
    """
    from ..modeling.tiny_vit_sam import MBConv

    blocks = [m for m in module.modules() if isinstance(m, MBConv)]
    for block in blocks:
        block.forward = partial(_mbconv_whole_map, block)
    try:
        yield
    finally:
        for block in blocks:
            del block.forward


def _mbconv_whole_map(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """An eval-mode MBConv on the whole (B, C, H, W) map: 1x1 expand, GELU, 3x3 depthwise, GELU, 1x1 project, add
    the input, GELU."""
    hidden = F.gelu(block.conv2(F.gelu(block.conv1(x))))
    return F.gelu(x + block.conv3(hidden))
