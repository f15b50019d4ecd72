"""Builders for SAM (vit_b, vit_l, vit_h), MobileSAM (vit_t) and EfficientViT-SAM (efficientvit_sam_l0 ... xl1),
loading official checkpoints unchanged."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import torch
from torch import nn

from .modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TinyViT, TwoWayTransformer
from .modeling.efficientvit_sam import (
    EFFICIENTVIT_SAM_CONFIGS,
    MOBILESAMV2_L2_ENCODER,
    EfficientViTSamImageEncoder,
    set_norm_eps,
)

PROMPT_EMBED_DIM = 256
IMAGE_SIZE = 1024
VIT_PATCH_SIZE = 16
IMAGE_EMBEDDING_SIZE = IMAGE_SIZE // VIT_PATCH_SIZE

# MobileSAM's TinyViT configuration (the official `build_sam_vit_t`), apart from the input size.
VIT_T_ENCODER_CONFIG = dict(
    in_chans=3,
    num_classes=1000,
    embed_dims=[64, 128, 160, 320],
    depths=[2, 2, 6, 2],
    num_heads=[2, 4, 5, 10],
    window_sizes=[7, 7, 14, 7],
    mlp_ratio=4.0,
    drop_rate=0.0,
    drop_path_rate=0.0,
    use_checkpoint=False,
    mbconv_expand_ratio=4.0,
    local_conv_size=3,
    layer_lr_decay=0.8,
)


class CheckpointError(Exception):
    """A checkpoint could not be found, downloaded, verified or read."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file is not where it was looked for (and was not downloaded)."""


# The file each model type loads, named in errors about a checkpoint that does not fit.
EXPECTED_FILES: dict[str, str] = {
    "vit_t": "MobileSAM's mobile_sam.pt (a flat state dict)",
    "vit_b": "SAM's sam_vit_b_01ec64.pth (a flat state dict)",
    "vit_l": "SAM's sam_vit_l_0b3195.pth (a flat state dict)",
    "vit_h": "SAM's sam_vit_h_4b8939.pth (a flat state dict)",
    **{
        f"efficientvit_sam_{variant}": f"EfficientViT-SAM's efficientvit_sam_{variant}.pt "
        '(a state dict under "state_dict", or flat)'
        for variant in EFFICIENTVIT_SAM_CONFIGS
    },
    MOBILESAMV2_L2_ENCODER: "MobileSAMv2's l2.pt or EfficientViT-SAM's efficientvit_sam_l2.pt "
    '(a state dict under "state_dict", or flat, whose keys hold "image_encoder.")',
    # MobileSAMv2's other encoders' files and its prompt-guided decoder (`build_mobilesamv2`).
    "mobilesamv2 tiny_vit encoder": 'MobileSAMv2\'s weight/mobile_sam.pt: {"model": TinyViT encoder state dict '
    '(keys without "image_encoder.")}',
    "mobilesamv2 sam_vit_h encoder": "MobileSAMv2's weight/sam_vit_h.pt: SAM ViT-H's image-encoder state dict alone "
    '(keys without "image_encoder.")',
    "mobilesamv2 prompt-guided decoder": 'Prompt_guided_Mask_Decoder.pt: {"PromtEncoder": prompt-encoder state dict, '
    '"MaskDecoder": mask-decoder state dict} (the official spelling, "Promt")',
}


class StateDictMismatchError(ValueError):
    """A checkpoint whose keys or shapes do not match the model it is loaded into."""


def build_sam_vit_h(checkpoint: str | Path | None = None) -> Sam:
    """Original SAM with the ViT-H image encoder (632M parameters)."""
    return _build_sam(_vit_encoder(1280, 32, 16, (7, 15, 23, 31)), "vit_h", checkpoint)


def build_sam_vit_l(checkpoint: str | Path | None = None) -> Sam:
    """Original SAM with the ViT-L image encoder (307M parameters)."""
    return _build_sam(_vit_encoder(1024, 24, 16, (5, 11, 17, 23)), "vit_l", checkpoint)


def build_sam_vit_b(checkpoint: str | Path | None = None) -> Sam:
    """Original SAM with the ViT-B image encoder (86M parameters)."""
    return _build_sam(_vit_encoder(768, 12, 12, (2, 5, 8, 11)), "vit_b", checkpoint)


def build_sam_vit_t(checkpoint: str | Path | None = None) -> Sam:
    """MobileSAM: SAM's prompt encoder and mask decoder with the 5.78M-parameter TinyViT image encoder."""
    encoder = TinyViT(img_size=IMAGE_SIZE, **VIT_T_ENCODER_CONFIG)
    return _build_sam(encoder, "vit_t", checkpoint)


def build_efficientvit_sam_l0(checkpoint: str | Path | None = None) -> Sam:
    """EfficientViT-SAM-L0: SAM's prompt encoder and mask decoder with an EfficientViT-L0 encoder at 512 px."""
    return _build_efficientvit_sam("l0", checkpoint)


def build_efficientvit_sam_l1(checkpoint: str | Path | None = None) -> Sam:
    """EfficientViT-SAM-L1: SAM's prompt encoder and mask decoder with an EfficientViT-L1 encoder at 512 px."""
    return _build_efficientvit_sam("l1", checkpoint)


def build_efficientvit_sam_l2(checkpoint: str | Path | None = None) -> Sam:
    """EfficientViT-SAM-L2: SAM's prompt encoder and mask decoder with an EfficientViT-L2 encoder at 512 px."""
    return _build_efficientvit_sam("l2", checkpoint)


def build_efficientvit_sam_xl0(checkpoint: str | Path | None = None) -> Sam:
    """EfficientViT-SAM-XL0: SAM's prompt encoder and mask decoder with an EfficientViT-XL0 encoder at 1024 px."""
    return _build_efficientvit_sam("xl0", checkpoint)


def build_efficientvit_sam_xl1(checkpoint: str | Path | None = None) -> Sam:
    """EfficientViT-SAM-XL1: SAM's prompt encoder and mask decoder with an EfficientViT-XL1 encoder at 1024 px."""
    return _build_efficientvit_sam("xl1", checkpoint)


build_sam = build_sam_vit_h

sam_model_registry: dict[str, Callable[..., Sam]] = {
    "default": build_sam_vit_h,
    "vit_h": build_sam_vit_h,
    "vit_l": build_sam_vit_l,
    "vit_b": build_sam_vit_b,
    "vit_t": build_sam_vit_t,
    "efficientvit_sam_l0": build_efficientvit_sam_l0,
    "efficientvit_sam_l1": build_efficientvit_sam_l1,
    "efficientvit_sam_l2": build_efficientvit_sam_l2,
    "efficientvit_sam_xl0": build_efficientvit_sam_xl0,
    "efficientvit_sam_xl1": build_efficientvit_sam_xl1,
}


def _vit_encoder(embed_dim: int, depth: int, num_heads: int, global_attn_indexes: tuple[int, ...]) -> ImageEncoderViT:
    return ImageEncoderViT(
        depth=depth,
        embed_dim=embed_dim,
        img_size=IMAGE_SIZE,
        mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=num_heads,
        patch_size=VIT_PATCH_SIZE,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=global_attn_indexes,
        window_size=14,
        out_chans=PROMPT_EMBED_DIM,
    )


def _build_efficientvit_sam(variant: str, checkpoint: str | Path | None) -> Sam:
    """The official `create_efficientvit_sam_model`: norm eps 1e-6 on the whole model, decoder included."""
    encoder = EfficientViTSamImageEncoder(EFFICIENTVIT_SAM_CONFIGS[variant])
    return _build_sam(encoder, f"efficientvit_sam_{variant}", checkpoint, norm_eps=1e-6)


def _build_sam(
    image_encoder: nn.Module, model_type: str, checkpoint: str | Path | None, norm_eps: float | None = None
) -> Sam:
    sam = Sam(
        image_encoder=image_encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=PROMPT_EMBED_DIM,
            image_embedding_size=(IMAGE_EMBEDDING_SIZE, IMAGE_EMBEDDING_SIZE),
            input_image_size=(IMAGE_SIZE, IMAGE_SIZE),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=PROMPT_EMBED_DIM, mlp_dim=2048, num_heads=8),
            transformer_dim=PROMPT_EMBED_DIM,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
    )
    if norm_eps is not None:
        set_norm_eps(sam, norm_eps)
    sam.eval()
    if checkpoint is not None:
        load_state_dict_checked(sam, read_state_dict(checkpoint), model_type, source=checkpoint)
    return sam


def load_checkpoint_file(path: str | Path) -> object:
    """
    Read a checkpoint file on the CPU with torch.load(weights_only=True), so no code in the file is ever
    executed, and return what it holds (a state dict, or a dict of them) unchanged.

    Raises:
      CheckpointNotFoundError: the file does not exist.
      CheckpointError: the file is empty, corrupt, truncated, not a PyTorch file, or holds Python objects other
        than tensors and containers (a full pickled model such as an ultralytics file).
    """
    file = Path(path).expanduser()
    if file.is_dir():
        raise CheckpointNotFoundError(f"Checkpoint file {file} is a folder: give the checkpoint file itself.")
    if not file.is_file():
        raise CheckpointNotFoundError(f"Checkpoint file {file} does not exist.")
    if file.stat().st_size == 0:
        raise CheckpointError(f"Cannot read checkpoint {file}:\n  it is empty (0 bytes).")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for unreadable files
        if "unsupported global" in str(error).lower():
            reason = (
                "it contains Python objects other than tensors (for example a full training "
                "checkpoint or an ultralytics model such as FastSAM), and only plain state dicts "
                "are read (torch.load with weights_only=True)"
            )
        else:
            reason = f"it is corrupt, truncated or not a PyTorch file ({_root_cause(error)})"
        raise CheckpointError(f"Cannot read checkpoint {file}:\n  {reason}.") from error


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """
    Read a SAM-family checkpoint as a state dict on the CPU (`load_checkpoint_file`).

    A plain state dict is expected; a dict wrapping one under "model" or "state_dict" (common
    for fine-tuned checkpoints, and EfficientViT-SAM's format) is unwrapped.

    Raises:
      CheckpointNotFoundError: the file does not exist.
      CheckpointError: the file is not a readable state dict (corrupt, truncated, a full
        pickled model such as an ultralytics file, or not a mapping of names to tensors).
    """
    file = Path(path).expanduser()
    loaded = load_checkpoint_file(file)
    if isinstance(loaded, Mapping) and not _is_tensor_mapping(loaded):
        for key in ("model", "state_dict"):
            inner = loaded.get(key)
            if isinstance(inner, Mapping) and _is_tensor_mapping(inner):
                loaded = inner
                break
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"Checkpoint {file} holds a {type(loaded).__name__}, not a state dict.")
    if not _is_tensor_mapping(loaded):
        bad = next((k for k, v in loaded.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))), None)
        detail = f"entry {bad!r} is not a tensor" if bad is not None else "it is empty"
        raise CheckpointError(
            f"Checkpoint {file} is not a state dict of tensors: {detail}. Expected a mapping of parameter names "
            'to tensors, flat or under "model" or "state_dict".'
        )
    return dict(loaded)


def load_state_dict_checked(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], model_type: str, source: str | Path | None = None
) -> None:
    """Load `state_dict` into `model` strictly; on any difference raise an error naming the offending keys,
    the file (`source`), what it looks like and the file the model type expects."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mis_shaped = [
        f"{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(expected[k].shape)})"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mis_shaped:
        problems = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped)):
            if keys:
                shown = ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")
                problems.append(f"  {label}: {shown}")
        origin = f"checkpoint {source}" if source is not None else "checkpoint"
        family = checkpoint_family(state_dict)
        looks = f"\nIt looks like {family}." if family else ""
        expected_file = EXPECTED_FILES.get(model_type)
        hint = (
            f"\nA '{model_type}' model loads {expected_file}."
            if expected_file
            else "\nIs it the right file for this model type (vit_t = mobile_sam.pt, vit_b/l/h = sam_vit_*.pth)?"
        )
        raise StateDictMismatchError(
            f"{origin} does not fit a '{model_type}' model:\n" + "\n".join(problems) + looks + hint
        )
    model.load_state_dict(state_dict, strict=True)


def _root_cause(error: BaseException) -> str:
    """The innermost chained error as "Type: first line" (torch wraps the useful one)."""
    while (inner := error.__cause__ or error.__context__) is not None:
        error = inner
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def _is_tensor_mapping(mapping: Mapping) -> bool:
    return len(mapping) > 0 and all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in mapping.items()
    )


def checkpoint_family(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Which kind of checkpoint a state dict looks like, from its keys (None when unrecognised)."""
    keys = list(state_dict)
    families = (
        ("image_encoder.backbone.stages.", "an EfficientViT-SAM checkpoint"),
        ("backbone.stages.", "an EfficientViT-SAM image encoder alone (keys without 'image_encoder.')"),
        ("image_encoder.layers.", "a MobileSAM (vit_t, TinyViT) checkpoint"),
        ("image_encoder.blocks.", "a SAM (vit_b/l/h) checkpoint"),
    )
    for prefix, family in families:
        if any(key.startswith(prefix) for key in keys):
            return family
    return None
