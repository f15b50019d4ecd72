"""SAM's prompt encoder: points, boxes and mask prompts to sparse and dense embeddings."""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import LayerNorm2d


class PromptEncoder(nn.Module):
    """Encodes prompts for the mask decoder.

    Points and box corners become sparse tokens (B, N, embed_dim); a low-res mask prompt becomes a
    dense embedding (B, embed_dim, H, W) of the image-embedding size (a learned "no mask" vector otherwise).
    """

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = input_image_size
        self.image_embedding_size = image_embedding_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # Learned offsets for: negative point, positive point, box top-left, box bottom-right.
        self.num_point_embeddings: int = 4
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(self.num_point_embeddings))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            activation(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image-embedding grid: (1, embed_dim, H, W)."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """Points (B, N, 2) in input-frame pixels with labels (B, N) in {-1, 0, 1} -> (B, N[+1], embed_dim)."""
        points = points + 0.5  # pixel centres
        if pad:
            points = torch.cat([points, torch.zeros_like(points[:, :1])], dim=1)
            labels = torch.cat([labels, -torch.ones_like(labels[:, :1])], dim=1)
        embedding = self.pe_layer.forward_with_coords(points, self.input_image_size)
        labels = labels.unsqueeze(-1)
        embedding = torch.where(labels == -1, self.not_a_point_embed.weight, embedding)
        embedding = embedding + torch.where(labels == 0, self.point_embeddings[0].weight, 0.0)
        embedding = embedding + torch.where(labels == 1, self.point_embeddings[1].weight, 0.0)
        return embedding

    def _embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """Boxes (B, 4) XYXY in input-frame pixels -> corner tokens (B, 2, embed_dim)."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        embedding = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_offsets = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])
        return embedding + corner_offsets

    @staticmethod
    def _batch_size(
        points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None, masks: torch.Tensor | None
    ) -> int:
        if points is not None:
            return points[0].shape[0]
        if boxes is not None:
            return boxes.shape[0]
        if masks is not None:
            return masks.shape[0]
        return 1

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        boxes: torch.Tensor | None,
        masks: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed prompts.

        Args:
            points: coordinates (B, N, 2) XY in the 1024 input frame and labels (B, N), 1 = foreground.
            boxes: (B, 4) XYXY in the input frame.
            masks: (B, 1, 256, 256) low-res mask logits.
        Returns:
            sparse embeddings (B, N', embed_dim) and dense embeddings (B, embed_dim, 64, 64). Without a mask
            prompt the dense embedding is one learned vector broadcast over the batch and grid (an
            expanded view, not a copy).
        """
        batch = self._batch_size(points, boxes, masks)
        weight = self.point_embeddings[0].weight
        sparse = torch.empty((batch, 0, self.embed_dim), dtype=weight.dtype, device=weight.device)
        if points is not None:
            coords, labels = points
            sparse = torch.cat([sparse, self._embed_points(coords, labels, pad=boxes is None)], dim=1)
        if boxes is not None:
            sparse = torch.cat([sparse, self._embed_boxes(boxes)], dim=1)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            height, width = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, height, width)
        return sparse, dense


class PositionEmbeddingRandom(nn.Module):
    """Positional encoding with random spatial frequencies (Fourier features)."""

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None) -> None:
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def _pe_encoding(self, coords: torch.Tensor) -> torch.Tensor:
        """Coordinates (..., 2) normalised to [0, 1] -> (..., 2 * num_pos_feats)."""
        coords = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """Encoding of every cell centre of an (H, W) grid: (2 * num_pos_feats, H, W)."""
        height, width = size
        matrix = self.positional_encoding_gaussian_matrix
        y = (torch.arange(height, device=matrix.device, dtype=matrix.dtype) + 0.5) / height
        x = (torch.arange(width, device=matrix.device, dtype=matrix.dtype) + 0.5) / width
        grid = torch.stack([x[None, :].expand(height, width), y[:, None].expand(height, width)], dim=-1)
        return self._pe_encoding(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords_input: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Pixel coordinates (B, N, 2) XY in an image of size (H, W) -> (B, N, 2 * num_pos_feats)."""
        coords = torch.stack([coords_input[..., 0] / image_size[1], coords_input[..., 1] / image_size[0]], dim=-1)
        return self._pe_encoding(coords.to(torch.float))
