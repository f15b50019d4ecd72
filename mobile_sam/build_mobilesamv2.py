"""MobileSAMv2 ("Faster Segment Anything to Everything", Zhang et al. 2023), built from its official files.

MobileSAMv2 is SAM's architecture with the prompt encoder and mask decoder of `Prompt_guided_Mask_Decoder.pt`
(trained for box prompts from its object-aware detector) and one of three image encoders, named as in its
`Inference.py --encoder_type`:

| encoder_type      | file (official name) | what the official loader reads                                        |
|-------------------|----------------------|-----------------------------------------------------------------------|
| "efficientvit_l2" | weight/l2.pt         | EfficientViT-SAM-L2's image encoder (`build_mobilesamv2_l2_encoder`)  |
| "tiny_vit"        | weight/mobile_sam.pt | `torch.load(f)["model"]`, TinyViT keys, `strict=False`                |
| "sam_vit_h"       | weight/sam_vit_h.pt  | SAM ViT-H's image encoder alone, flat, `strict=True`                  |

`build_mobilesamv2` reproduces what the official `build_sam.py` and `Inference.py` (`create_model`) load, quirks
included; each quirk is described where it is handled and marked "Official quirk". Files are read with
`torch.load(weights_only=True)`; the official code also accepts pickles of arbitrary objects, never needed here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .build_sam import (
    EXPECTED_FILES,
    VIT_T_ENCODER_CONFIG,
    CheckpointError,
    CheckpointNotFoundError,
    StateDictMismatchError,
    _build_sam,
    _vit_encoder,
    checkpoint_family,
    load_checkpoint_file,
    load_state_dict_checked,
    read_state_dict,
)
from .modeling import EfficientViTSamImageEncoder, Sam, TinyViT
from .modeling.efficientvit_sam import EFFICIENTVIT_SAM_CONFIGS, IMAGE_ENCODER_KEY, MOBILESAMV2_L2_ENCODER

MOBILESAMV2_ENCODER_TYPES = ("efficientvit_l2", "tiny_vit", "sam_vit_h")
# The official README, which links every MobileSAMv2 file (weight/, PromptGuidedDecoder/).
MOBILESAMV2_README_URL = "https://github.com/ChaoningZhang/MobileSAM/blob/master/MobileSAMv2/README.md"
# The two entries of Prompt_guided_Mask_Decoder.pt, spelled as the official file spells them.
PROMPT_GUIDED_DECODER_PARTS = ("PromtEncoder", "MaskDecoder")
IMAGE_ENCODER_PREFIX = "image_encoder."
# Model types in `build_sam.EXPECTED_FILES`, which describes each file's format.
TINY_VIT_ENCODER = "mobilesamv2 tiny_vit encoder"
SAM_VIT_H_ENCODER = "mobilesamv2 sam_vit_h encoder"
PROMPT_GUIDED_DECODER = "mobilesamv2 prompt-guided decoder"
ENCODER_FILES = {
    "efficientvit_l2": MOBILESAMV2_L2_ENCODER,
    "tiny_vit": TINY_VIT_ENCODER,
    "sam_vit_h": SAM_VIT_H_ENCODER,
}


class MobileSAMv2FormatError(CheckpointError, KeyError):
    """A MobileSAMv2 file without the entry the official loader reads (where the official code raises KeyError,
    this error is a KeyError too)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def build_mobilesamv2(
    encoder_type: str,
    encoder_checkpoint: str | Path | None = None,
    prompt_guided_decoder: str | Path | None = None,
) -> Sam:
    """MobileSAMv2: the image encoder `encoder_type` + the prompt-guided decoder, as its `Inference.py` builds it.

    Args:
        encoder_type: "efficientvit_l2" (MobileSAMv2's default), "tiny_vit" or "sam_vit_h".
        encoder_checkpoint: the encoder's file (l2.pt, mobile_sam.pt or sam_vit_h.pt), read as the official loader
            reads it (see `build_mobilesamv2_encoder`); None: random weights.
        prompt_guided_decoder: Prompt_guided_Mask_Decoder.pt; None: random weights.
    Returns:
        a `Sam` in eval mode (SAM's pixel mean and std, mask threshold 0, a 1024 input frame; the L2 encoder
        resizes that input to 512 itself), for `SamPredictor` and `mobile_sam.mobilesamv2.segment_boxes`.

    Its decoding is SAM's with `multimask_output=False` (the official `simple_type=True` gives the same values).
    """
    if encoder_type not in MOBILESAMV2_ENCODER_TYPES:
        raise ValueError(f"unknown MobileSAMv2 encoder_type {encoder_type!r}: give one of {MOBILESAMV2_ENCODER_TYPES}")
    _require_file(encoder_checkpoint, EXPECTED_FILES[ENCODER_FILES[encoder_type]])
    _require_file(prompt_guided_decoder, EXPECTED_FILES[PROMPT_GUIDED_DECODER])
    encoder = build_mobilesamv2_encoder(encoder_type, encoder_checkpoint)
    sam = _build_sam(encoder, f"mobilesamv2 {encoder_type}", None)
    if prompt_guided_decoder is not None:
        load_prompt_guided_decoder(sam, prompt_guided_decoder)
    return sam.eval()


def build_mobilesamv2_encoder(encoder_type: str, checkpoint: str | Path | None = None) -> nn.Module:
    """One of MobileSAMv2's image encoders, loaded as the official `sam_model_registry[encoder_type](checkpoint)`.

    - "efficientvit_l2": `build_mobilesamv2_l2_encoder` (every key holding "image_encoder."
      is kept from the text after it, strictly). Official quirk: the official loader requires a checkpoint and a
      "state_dict" entry; here None gives random weights and a flat file is read too.
    - "tiny_vit": see `load_tiny_vit_encoder`.
    - "sam_vit_h": SAM's ViT-H image encoder; the file is its state dict alone (keys without "image_encoder."),
      loaded strictly. Official quirk: SAM's own sam_vit_h_4b8939.pth (the whole model, prefixed keys) does not
      load there, nor here (the error says what the file must hold); a state dict wrapped under "model" or
      "state_dict" is read here too (the official loader fails on it).
    """
    if encoder_type == "efficientvit_l2":
        return build_mobilesamv2_l2_encoder(checkpoint)
    if encoder_type == "tiny_vit":
        encoder = TinyViT(img_size=1024, **VIT_T_ENCODER_CONFIG)
        if checkpoint is not None:
            load_tiny_vit_encoder(encoder, checkpoint)
        return encoder.eval()
    if encoder_type == "sam_vit_h":
        encoder = _vit_encoder(1280, 32, 16, (7, 15, 23, 31))
        if checkpoint is not None:
            load_state_dict_checked(encoder, read_state_dict(checkpoint), SAM_VIT_H_ENCODER, checkpoint)
        return encoder.eval()
    raise ValueError(f"unknown MobileSAMv2 encoder_type {encoder_type!r}: give one of {MOBILESAMV2_ENCODER_TYPES}")


def load_tiny_vit_encoder(encoder: TinyViT, checkpoint: str | Path) -> None:
    """Load MobileSAMv2's tiny_vit file into `encoder` as the official `build_sam_vit_t_encoder` does:
    `encoder.load_state_dict(torch.load(f)["model"], strict=False)`.

    Official quirks, reproduced:
    - the file must hold a "model" entry: MobileSAM's own mobile_sam.pt (a flat state dict of the whole model,
      keys "image_encoder. ...") raises KeyError: 'model' there (MobileSAM issue #144), and
      `MobileSAMv2FormatError` (a KeyError) here, whose message says how to make the file from it;
    - `strict=False`: tensors whose names match are loaded (a shape mismatch still fails, as in torch), others
      are ignored, and encoder tensors missing from the file keep their random initialisation. So a
      `{"model": ...}` dict whose keys keep the "image_encoder." prefix loads nothing at all, silently. Here the
      result is the same, with a warning naming the file and how many tensors were not loaded.
    """
    file, expected_format = Path(checkpoint).expanduser(), EXPECTED_FILES[TINY_VIT_ENCODER]
    loaded = load_checkpoint_file(file)
    if not isinstance(loaded, Mapping) or "model" not in loaded:
        hint = ""
        if isinstance(loaded, Mapping) and any(str(key).startswith(IMAGE_ENCODER_PREFIX) for key in loaded):
            hint = (
                "\nIt looks like MobileSAM's mobile_sam.pt (the whole model, flat), which the official loader cannot "
                "read either (KeyError: 'model'). To use it, save "
                '{"model": {key[len("image_encoder."):]: value for key, value in state.items() '
                'if key.startswith("image_encoder.")}}.'
            )
        raise MobileSAMv2FormatError(f"{file} has no 'model' entry; expected {expected_format}.{hint}")
    state = _tensor_mapping(loaded["model"], file, expected_format)
    expected = encoder.state_dict()
    mis_shaped = [key for key, value in state.items() if key in expected and value.shape != expected[key].shape]
    if mis_shaped:
        raise StateDictMismatchError(
            f"{file} does not fit MobileSAMv2's TinyViT encoder: wrong shape for {', '.join(mis_shaped[:5])}"
            f"{f' ... ({len(mis_shaped)} in all)' if len(mis_shaped) > 5 else ''}; expected {expected_format}."
        )
    result = encoder.load_state_dict(state, strict=False)
    if result.missing_keys:
        prefixed = sum(key.startswith(IMAGE_ENCODER_PREFIX) for key in result.unexpected_keys)
        hint = (
            f' ({prefixed} of its keys start with "image_encoder.", which the loader does not strip)'
            if prefixed
            else ""
        )
        warnings.warn(
            f"{file}: {len(result.missing_keys)} of the TinyViT encoder's {len(expected)} tensors are not in its "
            f'"model" entry{hint} and keep their random initialisation, as in the official loader (strict=False).',
            stacklevel=3,
        )


def load_prompt_guided_decoder(sam: Sam, checkpoint: str | Path) -> None:
    """Load Prompt_guided_Mask_Decoder.pt into `sam`'s prompt encoder and mask decoder, strictly, as the official
    `build_PromptGuidedDecoder` does (`prompt_encoder.load_state_dict(f["PromtEncoder"])`, likewise "MaskDecoder").

    Raises `MobileSAMv2FormatError` (a KeyError, as the official code's) when an entry is missing, and
    `StateDictMismatchError` when a state dict does not fit exactly.
    """
    file, expected_format = Path(checkpoint).expanduser(), EXPECTED_FILES[PROMPT_GUIDED_DECODER]
    loaded = load_checkpoint_file(file)
    missing = [part for part in PROMPT_GUIDED_DECODER_PARTS if not (isinstance(loaded, Mapping) and part in loaded)]
    if missing:
        found = f"it holds the entries {sorted(map(str, loaded))[:6]}" if isinstance(loaded, Mapping) else ""
        if isinstance(loaded, Mapping) and any(str(key).startswith("mask_decoder.") for key in loaded):
            found = "it is a flat state dict of a whole model (a SAM / MobileSAM checkpoint?)"
        raise MobileSAMv2FormatError(
            f"{file} is not a prompt-guided decoder: no {' or '.join(map(repr, missing))} entry"
            f"{f' ({found})' if found else ''}; expected {expected_format}."
        )
    for part, module in zip(PROMPT_GUIDED_DECODER_PARTS, (sam.prompt_encoder, sam.mask_decoder)):
        state = _tensor_mapping(loaded[part], file, expected_format)
        load_state_dict_checked(module, state, PROMPT_GUIDED_DECODER, file)


def _require_file(path: str | Path | None, expected: str) -> None:
    """Raise `CheckpointNotFoundError` naming the file, what it is and where MobileSAMv2's files come from."""
    if path is not None and not Path(path).expanduser().is_file():
        raise CheckpointNotFoundError(
            f"MobileSAMv2 file not found: {Path(path).expanduser()} (expected {expected}). MobileSAMv2's weights are "
            f"linked from its README ({MOBILESAMV2_README_URL}); pass the path of the file you downloaded."
        )


def _tensor_mapping(value: object, file: Path, expected_format: str) -> dict[str, torch.Tensor]:
    """`value` as a state dict, or a clear error naming the file and its expected format."""
    if not (isinstance(value, Mapping) and all(isinstance(v, torch.Tensor) for v in value.values())):
        raise CheckpointError(f"{file} holds something other than a state dict of tensors; expected {expected_format}.")
    return dict(value)


def build_mobilesamv2_l2_encoder(checkpoint: str | Path | None = None) -> EfficientViTSamImageEncoder:
    """MobileSAMv2's default image encoder ("efficientvit_l2"), as its `build_efficientvit_l2_encoder` builds it.

    The EfficientViT-SAM-L2 image encoder with norm eps 1e-6, taking SAM's input: (B, 3, 1024, 1024) normalised,
    zero-padded (`Sam.preprocess`), resized bilinearly to 512 inside, -> (B, 256, 64, 64). `img_size` is 1024,
    so `Sam(image_encoder=this, ...)` and `SamPredictor` prepare its input as for SAM.

    checkpoint: a file such as MobileSAMv2's l2.pt or EfficientViT-SAM's efficientvit_sam_l2.pt,
    `{"state_dict": {...}}` or flat; as in the official loader, every key holding "image_encoder." is kept
    with the text up to it removed, other keys are ignored, and the result must fit the encoder exactly.
    """
    encoder = EfficientViTSamImageEncoder(EFFICIENTVIT_SAM_CONFIGS["l2"], img_size=1024).eval()
    if checkpoint is not None:
        state_dict = read_state_dict(checkpoint)
        encoder_state = {
            key[key.find(IMAGE_ENCODER_KEY) + len(IMAGE_ENCODER_KEY) :]: value
            for key, value in state_dict.items()
            if IMAGE_ENCODER_KEY in key
        }
        if not encoder_state:
            family = checkpoint_family(state_dict)
            raise StateDictMismatchError(
                f"checkpoint {checkpoint} holds no '{IMAGE_ENCODER_KEY}' weights"
                + (f"; it looks like {family}" if family else "")
                + f".\nMobileSAMv2's L2 encoder loads {EXPECTED_FILES[MOBILESAMV2_L2_ENCODER]}."
            )
        load_state_dict_checked(encoder, encoder_state, MOBILESAMV2_L2_ENCODER, source=checkpoint)
    return encoder
