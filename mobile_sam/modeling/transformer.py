"""SAM's two-way transformer: prompt tokens and image tokens attend to each other."""
from __future__ import annotations

import math

import torch
from torch import nn

from .common import MLPBlock


class TwoWayTransformer(nn.Module):
    """A stack of `TwoWayAttentionBlock`s followed by a final token-to-image attention.

    The image side may have batch size 1 while the prompt side has batch size B: the image tokens are then
    shared across the prompts until the first image-to-token attention makes them prompt-specific, which
    saves B - 1 copies of the image projections of the first block.
    """

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim=embedding_dim,
                num_heads=num_heads,
                mlp_dim=mlp_dim,
                activation=activation,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the transformer.

        Args:
            image_embedding: (1 or B, C, H, W).
            image_pe: positional encoding of the image grid, (1 or B, C, H, W).
            point_embedding: prompt tokens (B, N, C).
        Returns:
            processed prompt tokens (B, N, C) and image tokens (B, H*W, C).
        """
        keys = image_embedding.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries=queries, keys=keys, query_pe=point_embedding, key_pe=key_pe)
        attn_out = self.final_attn_token_to_image(q=queries + point_embedding, k=keys + key_pe, v=keys)
        queries = self.norm_final_attn(queries + attn_out)
        return queries, keys.expand(queries.shape[0], -1, -1)


class TwoWayAttentionBlock(nn.Module):
    """Self-attention of tokens, token-to-image attention, token MLP, then image-to-token attention."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        activation: type[nn.Module] = nn.ReLU,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor, key_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, N, C), keys (1 or B, HW, C) -> queries (B, N, C), keys (B, HW, C)."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q=q, k=q, v=queries)
        queries = self.norm1(queries)

        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q=queries + query_pe, k=k, v=keys))
        queries = self.norm3(queries + self.mlp(queries))

        attn_out = self.cross_attn_image_to_token(q=k, k=queries + query_pe, v=queries)
        keys = self.norm4(keys + attn_out)
        return queries, keys


class Attention(nn.Module):
    """Multi-head attention whose projections may downscale the embedding (internal dim = dim / rate).

    q, k and v may differ in batch size as long as they broadcast (batch 1 against batch B).

    When one side has only a few tokens (the prompt tokens, against 4096 image tokens) the projections of
    the long side are folded into the short side instead of being applied to every long-side token: the
    same attention, computed with about heads * few / internal_dim of the multiply-adds. Mathematically
    identical to the plain computation; rounding differs at the 1e-6 level.
    """

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads != 0:
            raise ValueError(f"num_heads ({num_heads}) must divide embedding_dim / downsample_rate ({self.internal_dim})")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (Bq, Nq, C), k and v (Bk, Nk, C) -> (max(Bq, Bk), Nq, C)."""
        if self._is_few(q.shape[1]) and k.shape[1] >= _MANY_TOKENS:
            return self._few_queries(q, k, v)
        if self._is_few(k.shape[1]) and q.shape[1] >= _MANY_TOKENS:
            return self._few_keys(q, k, v)
        return self._plain(q, k, v)

    def _is_few(self, tokens: int) -> bool:
        return tokens * self.num_heads < self.internal_dim

    def _separate_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, heads * d) -> (B, heads, N, d)."""
        batch, tokens, channels = x.shape
        return x.reshape(batch, tokens, self.num_heads, channels // self.num_heads).transpose(1, 2)

    def _recombine_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, heads, N, d) -> (B, N, heads * d)."""
        batch, heads, tokens, head_dim = x.shape
        return x.transpose(1, 2).reshape(batch, tokens, heads * head_dim)

    def _plain(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = self._separate_heads(self.q_proj(q))
        k = self._separate_heads(self.k_proj(k))
        v = self._separate_heads(self.v_proj(v))
        attn = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        return self.out_proj(self._recombine_heads(attn.softmax(dim=-1) @ v))

    def _few_queries(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Few queries over many keys: fold the key and value projections into the queries.

        logits = (W_k^T q') . k  (the bias term q'.b_k is the same for every key, so softmax drops it);
        output = W_v (softmax @ v) + b_v, since each softmax row sums to one.
        """
        heads, head_dim = self.num_heads, self.internal_dim // self.num_heads
        q_heads = self._separate_heads(self.q_proj(q))  # (Bq, h, Nq, d)
        q_in = q_heads @ self.k_proj.weight.view(heads, head_dim, -1)  # (Bq, h, Nq, C)
        batch_q, _, num_q, channels = q_in.shape
        q_in = q_in.reshape(batch_q, heads * num_q, channels)
        logits = _batched_matmul(q_in, k.transpose(1, 2))  # (B, h * Nq, Nk)
        attn = (logits / math.sqrt(head_dim)).softmax(dim=-1)
        mixed = _batched_matmul(attn, v)  # (B, h * Nq, C)
        batch = mixed.shape[0]
        out = mixed.view(batch, heads, num_q, channels) @ self.v_proj.weight.view(heads, head_dim, -1).transpose(1, 2)
        out = out + self.v_proj.bias.view(heads, 1, head_dim)
        return self.out_proj(self._recombine_heads(out))

    def _few_keys(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Many queries over few keys: fold the query and output projections into the keys and values.

        logits = q . (W_q^T k') + b_q . k';  output = sum over heads and keys of attn * (W_o v') + b_o.
        """
        heads, head_dim = self.num_heads, self.internal_dim // self.num_heads
        k_heads = self._separate_heads(self.k_proj(k))  # (Bk, h, Nk, d)
        v_heads = self._separate_heads(self.v_proj(v))
        batch_k, _, num_k, _ = k_heads.shape
        k_in = (k_heads @ self.q_proj.weight.view(heads, head_dim, -1)).reshape(batch_k, heads * num_k, -1)
        key_bias = (k_heads * self.q_proj.bias.view(heads, 1, head_dim)).sum(-1).reshape(batch_k, 1, heads * num_k)
        logits = _batched_matmul(q, k_in.transpose(1, 2)) + key_bias  # (B, Nq, h * Nk)
        batch, num_q, _ = logits.shape
        attn = (logits / math.sqrt(head_dim)).view(batch, num_q, heads, num_k).softmax(dim=-1)
        out_weight = self.out_proj.weight.view(-1, heads, head_dim).permute(1, 2, 0)  # (h, d, C)
        v_out = (v_heads @ out_weight).reshape(batch_k, heads * num_k, -1)  # (Bk, h * Nk, C)
        return _batched_matmul(attn.view(batch, num_q, heads * num_k), v_out) + self.out_proj.bias


# Below this many tokens on the long side, folding projections saves too little to matter.
_MANY_TOKENS = 256


def _batched_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (Ba, M, K) @ b (Bb, K, N) with Ba, Bb in {1, B}; a shared operand is used once, never copied."""
    if a.shape[0] == b.shape[0]:
        return a @ b
    if b.shape[0] == 1:
        return a @ b[0]
    batch, (_, m, k), n = b.shape[0], a.shape, b.shape[2]
    # a is shared: one (M, K) @ (K, B * N) product, viewed back as (B, M, N).
    out = a[0] @ b.permute(1, 0, 2).reshape(k, batch * n)
    return out.view(m, batch, n).transpose(0, 1)
