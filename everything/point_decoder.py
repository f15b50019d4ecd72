"""`PointBatchDecoder`: SAM's mask decoder for many single-point prompts on one image, with cheaper algebra.

Segment-everything decodes ~1000 one-point prompts against the same image. The two-way transformer's cost
is dominated by linear projections of the 4096 image tokens for every prompt. Here those projections are
reassociated so that each prompt multiplies its image tokens only by small per-prompt matrices:

* token-to-image attention: scores = (W_k^T q) . x (the key bias is constant along the softmax and drops
  out) and values = W_v (P x) + b_v, so the image tokens are multiplied by (256 x 7*heads) matrices instead
  of being projected to keys and values;
* image-to-token attention: scores = x . (W_q^T k) + b_q . k and output = P (V W_o^T) + b_o, so the
  per-head outputs are never materialised;
* the first block's image-side projections (before any prompt has touched the image tokens) are computed
  once per image.

* the final attention runs for the IoU token of every prompt, and for the mask tokens only of the prompts
  whose masks are wanted.

The result is the same function as `MaskDecoder` with multimask output (the order of floating-point
operations differs, so values agree to float32 rounding, ~1e-6 relative). The weights are read from the
model's `MaskDecoder` and `TwoWayTransformer`; upscaling stays `MaskDecoder.upscale_masks`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class PointDecoding:
    """The transformer's state for B prompts: tokens (B, N, C), image tokens (B, HW, C), IoU (B, 4)."""

    queries: torch.Tensor
    point_embedding: torch.Tensor
    keys: torch.Tensor
    keys_with_pe: torch.Tensor
    iou_predictions: torch.Tensor


class PointBatchDecoder:
    """Decodes batches of point prompts on one image embedding.

    Arguments:
      model: a `mobile_sam` `Sam` model (its prompt encoder, mask decoder and transformer are used).
      image_embedding: (1, 256, 64, 64) from the image encoder.
    """

    def __init__(self, model: nn.Module, image_embedding: torch.Tensor) -> None:
        self.model = model
        decoder = model.mask_decoder
        self.transformer = decoder.transformer
        self.decoder = decoder
        dense = model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        self.src = (image_embedding + dense).flatten(2).transpose(1, 2)  # (1, HW, C)
        self.key_pe = model.prompt_encoder.get_dense_pe().flatten(2).transpose(1, 2)  # (1, HW, C)
        first = self.transformer.layers[0]
        keys_with_pe = self.src + self.key_pe
        t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        # Image-side projections of the first block, shared by every prompt: (1, heads, HW, head_dim).
        self.first_t2i_k = _heads(t2i.k_proj(keys_with_pe), t2i.num_heads)
        self.first_t2i_v = _heads(t2i.v_proj(self.src), t2i.num_heads)
        self.first_i2t_q = _heads(i2t.q_proj(keys_with_pe), i2t.num_heads)
        self.image_size = image_embedding.shape[-2:]
        self.upscale_factor = 4  # two stride-2 transposed convolutions

    @torch.inference_mode()
    def decode(self, points: torch.Tensor) -> "PointDecoding":
        """Run the transformer for points (B, 2) XY in the input frame, one positive point per prompt.

        Only the IoU token goes through the final attention here; the mask tokens of the prompts that
        survive the IoU filter follow in `multimask_logits`.
        """
        model, decoder = self.model, self.decoder
        labels = torch.ones(points.shape[0], 1, dtype=torch.int, device=points.device)
        sparse, _ = model.prompt_encoder(points=(points[:, None, :], labels), boxes=None, masks=None)
        batch = sparse.shape[0]
        output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
        point_embedding = torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse], dim=1)

        queries, keys = self._first_block(point_embedding)
        for layer in self.transformer.layers[1:]:
            queries, keys = self._block(layer, queries, keys, point_embedding)
        decoding = PointDecoding(queries, point_embedding, keys, keys + self.key_pe, torch.empty(0))
        iou_token = self._final_tokens(decoding, slice(None), slice(0, 1))
        decoding.iou_predictions = decoder.iou_prediction_head(iou_token[:, 0, :])
        return decoding

    @torch.inference_mode()
    def multimask_logits(
        self, decoding: "PointDecoding", prompts: torch.Tensor, extent: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Low-res logits (S, 3, h, w) of the three multimask outputs for prompt indices (S,).

        `extent` (h, w) asks for the top-left h x w of the (256, 256) logits only (rounded up to the
        upscaling factor); the upscaling is local, so only the image tokens under that region are upscaled
        and the values are those of the full logits.
        """
        decoder = self.decoder
        mask_tokens = self._final_tokens(decoding, prompts, slice(2, 1 + decoder.num_mask_tokens))
        hyper_in = torch.stack(
            [mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps[1:])], dim=1
        )
        image_tokens = decoding.keys[prompts].transpose(1, 2).unflatten(2, tuple(self.image_size))
        if extent is not None:
            factor = self.upscale_factor
            image_tokens = image_tokens[..., : -(-extent[0] // factor), : -(-extent[1] // factor)]
        return decoder.upscale_masks(hyper_in, image_tokens)

    def _final_tokens(self, decoding: "PointDecoding", prompts: torch.Tensor | slice, tokens: slice) -> torch.Tensor:
        """The final token-to-image attention for some prompts and output tokens: (S, T, C).

        Queries do not interact in this attention, so any subset of tokens gives the same values.
        """
        queries = decoding.queries[prompts, tokens]
        attended = _token_to_image(
            self.transformer.final_attn_token_to_image,
            queries + decoding.point_embedding[prompts, tokens],
            decoding.keys_with_pe[prompts],
            decoding.keys[prompts],
        )
        return self.transformer.norm_final_attn(queries + attended)

    def _first_block(self, point_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first two-way block (no positional encoding in its self-attention), image side shared."""
        layer = self.transformer.layers[0]
        queries = layer.norm1(layer.self_attn(q=point_embedding, k=point_embedding, v=point_embedding))

        t2i = layer.cross_attn_token_to_image
        q = _heads(t2i.q_proj(queries + point_embedding), t2i.num_heads) / math.sqrt(self.first_t2i_k.shape[-1])
        attn = torch.softmax(torch.einsum("bhnd,hpd->bhnp", q, self.first_t2i_k[0]), dim=-1)
        queries = layer.norm2(queries + t2i.out_proj(_merge_heads(torch.einsum("bhnp,hpd->bhnd", attn, self.first_t2i_v[0]))))
        queries = layer.norm3(queries + layer.mlp(queries))

        i2t = layer.cross_attn_image_to_token
        k = _heads(i2t.k_proj(queries + point_embedding), i2t.num_heads) / math.sqrt(self.first_i2t_q.shape[-1])
        scores = torch.einsum("bhnd,hpd->bhnp", k, self.first_i2t_q[0]).flatten(1, 2)  # (B, heads * N, HW)
        return queries, layer.norm4(_image_to_token_residual(i2t, scores, queries, self.src))

    def _block(
        self, layer: nn.Module, queries: torch.Tensor, keys: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A later two-way block, every image-side product reassociated per prompt."""
        q = queries + point_embedding
        queries = layer.norm1(queries + layer.self_attn(q=q, k=q, v=queries))
        keys_with_pe = keys + self.key_pe
        t2i_out = _token_to_image(layer.cross_attn_token_to_image, queries + point_embedding, keys_with_pe, keys)
        queries = layer.norm2(queries + t2i_out)
        queries = layer.norm3(queries + layer.mlp(queries))

        i2t = layer.cross_attn_image_to_token
        heads = i2t.num_heads
        k = _heads(i2t.k_proj(queries + point_embedding), heads)  # (B, heads, N, d)
        k = k / math.sqrt(k.shape[-1])
        weight_q = i2t.q_proj.weight.reshape(heads, -1, i2t.q_proj.weight.shape[1])  # (heads, d, C)
        key_matrix = torch.einsum("bhnd,hdc->bhnc", k, weight_q).flatten(1, 2)  # (B, heads * N, C)
        key_bias = torch.einsum("bhnd,hd->bhn", k, i2t.q_proj.bias.reshape(heads, -1)).flatten(1)  # (B, heads * N)
        scores = torch.baddbmm(key_bias.unsqueeze(2), key_matrix, keys_with_pe.transpose(1, 2))  # (B, heads * N, HW)
        return queries, layer.norm4(_image_to_token_residual(i2t, scores, queries, keys))


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, N, heads * d) -> (B, heads, N, d)."""
    return x.unflatten(-1, (num_heads, -1)).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    return x.transpose(1, 2).flatten(2)


def _token_to_image(attention: nn.Module, q_in: torch.Tensor, keys_with_pe: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Attention of N tokens (B, N, C) to per-prompt image tokens (B, HW, C), without projecting the image.

    The key bias adds the same amount to every score of a query and cancels in the softmax; the value
    projection commutes with the attention average because the weights sum to one.
    """
    heads = attention.num_heads
    q = _heads(attention.q_proj(q_in), heads)  # (B, heads, N, d)
    q = q / math.sqrt(q.shape[-1])
    weight_k = attention.k_proj.weight.reshape(heads, -1, attention.k_proj.weight.shape[1])  # (heads, d, C)
    query_matrix = torch.einsum("bhnd,hdc->bhnc", q, weight_k).flatten(1, 2)  # (B, heads * N, C)
    scores = torch.bmm(query_matrix, keys_with_pe.transpose(1, 2))  # (B, heads * N, HW)
    averaged = torch.bmm(torch.softmax(scores, dim=-1), keys).unflatten(1, (heads, -1))  # (B, heads, N, C)
    weight_v = attention.v_proj.weight.reshape(heads, -1, attention.v_proj.weight.shape[1])  # (heads, d, C)
    values = torch.einsum("bhnc,hdc->bhnd", averaged, weight_v) + attention.v_proj.bias.reshape(heads, 1, -1)
    return attention.out_proj(_merge_heads(values))


def _image_to_token_residual(
    attention: nn.Module, scores: torch.Tensor, tokens: torch.Tensor, residual: torch.Tensor
) -> torch.Tensor:
    """residual + image-to-token attention output, (B, HW, C), from scaled scores (B, heads * N, HW).

    The output projection is applied to the (heads * N) value rows first, so the (B, HW, heads * d) per-head
    outputs are never formed; its bias is spread over the rows (each head's weights sum to one) and the
    residual is accumulated by the matrix product itself.
    """
    heads = attention.num_heads
    batch = tokens.shape[0]
    attn = torch.softmax(scores.unflatten(1, (heads, -1)), dim=2).flatten(1, 2)  # (B, heads * N, HW)
    v = _heads(attention.v_proj(tokens), heads)  # (B, heads, N, d)
    weight_o = attention.out_proj.weight.reshape(attention.out_proj.weight.shape[0], heads, -1)  # (C, heads, d)
    projected = torch.einsum("bhnd,chd->bhnc", v, weight_o).flatten(1, 2) + attention.out_proj.bias / heads
    return torch.baddbmm(residual.expand(batch, -1, -1), attn.transpose(1, 2), projected)
