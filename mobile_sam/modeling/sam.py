"""The Segment Anything model: image encoder + prompt encoder + mask decoder."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.transforms import ResizeLongestSide
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder


class Sam(nn.Module):
    """SAM: predicts object masks from an image and prompts.

    The image encoder is SAM's ViT (vit_b/l/h), MobileSAM's TinyViT (vit_t) or EfficientViT-SAM's encoder; each
    maps a preprocessed (B, 3, S, S) image to a (B, 256, 64, 64) embedding that the prompt encoder and mask decoder
    consume. S (`encoder_image_size`, the encoder's `img_size`) is the 1024 input frame of prompts and masks
    (`image_size`), except for EfficientViT-SAM's L models, which encode the image resized to 512.
    """

    mask_threshold: float = 0.0
    image_format: str = "RGB"

    def __init__(
        self,
        image_encoder: nn.Module,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        pixel_mean: list[float] = [123.675, 116.28, 103.53],  # noqa: B006 (the official signature)
        pixel_std: list[float] = [58.395, 57.12, 57.375],  # noqa: B006
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def image_size(self) -> int:
        """Side of the square input frame that prompts and masks refer to (1024)."""
        return self.prompt_encoder.input_image_size[0]

    @property
    def encoder_image_size(self) -> int:
        """Side of the square image the image encoder takes: its `img_size` (`image_size` unless it says)."""
        return int(getattr(self.image_encoder, "img_size", self.image_size))

    def input_frame_size(self, encoded_size: tuple[int, ...], original_size: tuple[int, ...]) -> tuple[int, int]:
        """(h, w) the image covers in the input frame: the encoded image's own size where the encoder takes
        the input frame (as the official SAM), else `original_size` resized to `image_size` (EfficientViT-SAM)."""
        if self.encoder_image_size == self.image_size:
            return int(encoded_size[0]), int(encoded_size[1])
        return ResizeLongestSide.get_preprocess_shape(int(original_size[0]), int(original_size[1]), self.image_size)

    @torch.no_grad()
    def forward(self, batched_input: list[dict[str, Any]], multimask_output: bool) -> list[dict[str, torch.Tensor]]:
        """Predict masks end to end for a batch of images (the official `Sam.forward` interface).

        Each input dict holds `image` (3, H, W) already resized to the encoder's frame (longest side
        `encoder_image_size`), `original_size` (H, W), and optionally `point_coords` (B, N, 2), `point_labels`
        (B, N), `boxes` (B, 4) and `mask_inputs` (B, 1, 256, 256), all in the input frame. Each output dict holds
        `masks` (B, C, H, W) bool, `iou_predictions` (B, C) and `low_res_logits` (B, C, 256, 256).
        """
        images = torch.stack([self.preprocess(record["image"]) for record in batched_input])
        embeddings = self.image_encoder(images)
        outputs = []
        for record, embedding in zip(batched_input, embeddings):
            points = None
            if "point_coords" in record:
                points = (record["point_coords"], record["point_labels"])
            sparse, dense = self.prompt_encoder(points, record.get("boxes"), record.get("mask_inputs"))
            low_res, iou = self.mask_decoder(
                image_embeddings=embedding.unsqueeze(0),
                image_pe=self.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask_output,
            )
            input_size = self.input_frame_size(tuple(record["image"].shape[-2:]), record["original_size"])
            masks = self.postprocess_masks(low_res, input_size, record["original_size"])
            outputs.append({"masks": masks > self.mask_threshold, "iou_predictions": iou, "low_res_logits": low_res})
        return outputs

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: tuple[int, ...], original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """Low-res logits (B, C, 256, 256) -> logits (B, C, H, W) at the original image size.

        Upsamples bilinearly to the square input frame, removes the padding (keeps `input_size`), then
        upsamples bilinearly to `original_size`. Only the low-res rows and columns that reach the kept
        region are upsampled (the same values as upsampling everything and cropping).
        """
        return upsample_low_res(masks, self.image_size // masks.shape[-1], input_size, original_size)

    def low_res_extent(self, input_size: tuple[int, ...], low_res_size: int) -> tuple[int, int]:
        """`low_res_extent` for this model's input frame."""
        return low_res_extent(input_size, self.image_size, low_res_size)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise pixel values and zero-pad bottom-right to the encoder's square input: (3, h, w) -> (3, S, S)."""
        x = (x - self.pixel_mean) / self.pixel_std
        height, width = x.shape[-2:]
        size = self.encoder_image_size
        return F.pad(x, (0, size - width, 0, size - height))


def low_res_extent(input_size: tuple[int, ...], image_size: int, low_res_size: int) -> tuple[int, int]:
    """The low-res rows and columns (of a square low_res_size grid over the image_size input frame) that
    upsampling by scale = image_size / low_res_size reads to cover `input_size` (h, w): output pixel i
    reads low-res pixels floor((i + 0.5) / scale - 0.5) and the next one. Upsampling just those gives the
    values of upsampling all (no kept output reaches the clamped border)."""
    scale = image_size // low_res_size
    rows, cols = (min(low_res_size, -(-side // scale) + 1) for side in input_size[:2])
    return rows, cols


def upsample_low_res(
    logits: torch.Tensor, scale: int, input_size: tuple[int, ...], original_size: tuple[int, ...]
) -> torch.Tensor:
    """`Sam.postprocess_masks` of low-res logits (B, K, h, w) on a grid of `scale` input-frame pixels per sample:
    logits (B, K, H, W) at `original_size`.

    The logits may be just the top-left part of the low-res grid, as long as it holds the `low_res_extent` of
    `input_size` (the part that upsampling reads; more is ignored).
    """
    rows, cols = (-(-side // scale) + 1 for side in input_size[:2])
    # One plane per image: torch's single-threaded bilinear kernel is several times slower over channels.
    batch, channels = logits.shape[:2]
    planes = logits[..., :rows, :cols].flatten(0, 1).unsqueeze(1)
    planes = F.interpolate(planes, scale_factor=scale, mode="bilinear", align_corners=False)
    planes = planes[..., : input_size[0], : input_size[1]]
    planes = F.interpolate(planes, tuple(original_size), mode="bilinear", align_corners=False)
    return planes.view(batch, channels, *planes.shape[-2:])
