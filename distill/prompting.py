"""Random point prompts in the model's input frame, and decoding them from image embeddings with a prompt
encoder and mask decoder in one batched call (differentiable in the embeddings and the decoder), for
semi-coupled training and decoder fine-tuning."""

from __future__ import annotations

import torch

from mobile_sam.modeling import MaskDecoder, PromptEncoder


def random_points(sizes: list[tuple[int, int]], count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` uniform foreground points per image inside its resized (h, w) region: (B, count, 2) as (x, y)."""
    scale = torch.tensor([[(w - 1, h - 1)] for h, w in sizes], dtype=torch.float32)  # (B, 1, 2)
    return torch.rand((len(sizes), count, 2), generator=generator) * scale


def decode_points(
    prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder, embeddings: torch.Tensor, points: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The three multimask outputs of one-point prompts: embeddings (B, C, h, w), points (B, K, 2) in the input
    frame (foreground) -> low-res mask logits (B, K, 3, 4h, 4w) and predicted IoU (B, K, 3)."""
    batch, count = points.shape[:2]
    flat = points.reshape(batch * count, 1, 2)
    labels = torch.ones(batch * count, 1, dtype=torch.int64, device=points.device)
    sparse, dense = prompt_encoder((flat, labels), None, None)
    masks, iou_predictions = mask_decoder(
        image_embeddings=embeddings.repeat_interleave(count, dim=0),
        image_pe=prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=True,
    )
    return masks.reshape(batch, count, *masks.shape[1:]), iou_predictions.reshape(batch, count, -1)
