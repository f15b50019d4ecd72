"""SAM's mask decoder: image embedding + prompt tokens -> low-res masks and predicted IoU."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d


class MaskDecoder(nn.Module):
    """Predicts masks with a two-way transformer and hypernetwork heads over upscaled image features.

    Decoding runs in two steps that callers may use separately: `decode_tokens` (the transformer and the
    IoU head, cheap per prompt) and `upscale_masks` (the convolutional upscaling, the expensive part), so a
    caller can drop candidates by predicted IoU before paying for their masks.
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int = 3,
        activation: type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            activation(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)
        # Prompts upscaled at once: bounds the (chunk, 32, 256, 256) intermediate tensors to a few tens of MB,
        # which the allocator can reuse instead of mapping fresh pages for every batch.
        self.upscale_chunk_size = 4

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict masks for B prompts.

        Args:
            image_embeddings: (1 or B, C, 64, 64) from the image encoder; batch 1 is shared by all prompts.
            image_pe: (1, C, 64, 64) positional encoding of the embedding grid.
            sparse_prompt_embeddings: (B, N, C) point and box tokens.
            dense_prompt_embeddings: (1 or B, C, 64, 64) mask-prompt embedding.
            multimask_output: return the three multimask candidates instead of the single-mask output.
        Returns:
            low-res mask logits (B, 3 or 1, 256, 256) and predicted IoU (B, 3 or 1).
        """
        selected = slice(1, None) if multimask_output else slice(0, 1)
        iou_predictions, hyper_in, image_tokens = self.decode_tokens(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
        )
        masks = self.upscale_masks(hyper_in[:, selected], image_tokens)
        return masks, iou_predictions[:, selected]

    def decode_tokens(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the transformer for B prompts.

        Returns:
            iou_predictions (B, 4): predicted IoU of the single-mask output then the three multimask outputs.
            hyper_in (B, 4, C / 8): per-output weights for `upscale_masks`.
            image_tokens (B, C, 64, 64): image features after the transformer.
        """
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], dim=1)

        src = _shared_batch(image_embeddings) + _shared_batch(dense_prompt_embeddings)
        height, width = src.shape[-2:]
        hs, image_tokens = self.transformer(src, image_pe[:1], tokens)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens, :]

        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        image_tokens = image_tokens.transpose(1, 2).reshape(batch, -1, height, width)
        return self.iou_prediction_head(iou_token_out), hyper_in, image_tokens

    def upscale_masks(self, hyper_in: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        """Mask logits from `decode_tokens` outputs: hyper_in (B, K, C/8), image_tokens (B, C, h, w) -> (B, K, 4h, 4w)."""
        chunks = []
        for start in range(0, max(image_tokens.shape[0], 1), self.upscale_chunk_size):
            stop = start + self.upscale_chunk_size
            upscaled = self.output_upscaling(image_tokens[start:stop])
            batch, channels, height, width = upscaled.shape
            masks = hyper_in[start:stop] @ upscaled.reshape(batch, channels, height * width)
            chunks.append(masks.reshape(batch, -1, height, width))
        return torch.cat(chunks) if len(chunks) > 1 else chunks[0]


def _shared_batch(x: torch.Tensor) -> torch.Tensor:
    """A batch that is one tensor broadcast over the batch dimension (stride 0) as batch 1; else x itself."""
    if x.shape[0] > 1 and x.stride(0) == 0:
        return x[:1]
    return x


class MLP(nn.Module):
    """Fully connected network with ReLU between layers, optionally a sigmoid on the output."""

    def __init__(
        self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int, sigmoid_output: bool = False
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip(dims, dims[1:] + [output_dim]))
        self.sigmoid_output = sigmoid_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., input_dim) -> (..., output_dim)."""
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return torch.sigmoid(x) if self.sigmoid_output else x
