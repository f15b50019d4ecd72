"""SAM's two-way transformer: prompt tokens and image tokens attend to each other."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm, MLPBlock, softmax
from .factored_tokens import (
    FactoredImage,
    FactoredTokens,
    Factors,
    OwnProducts,
    accumulated,
    normalized,
    own_logits,
    per_head_products,
    prepare,
)


@dataclass(frozen=True)
class ProjectedImage:
    """A block's image-side projections, per head (1, heads, HW, d): the keys and values of its
    token-to-image attention and the queries of its image-to-token attention."""

    keys: torch.Tensor
    values: torch.Tensor
    queries: torch.Tensor


@dataclass(frozen=True)
class ProjectedPe:
    """The image positional encoding through the weights (no bias) of the projections that add it, per head
    (heads, HW, d): a token-to-image attention's keys and an image-to-token attention's queries (None for the
    final attention, which has none)."""

    keys: torch.Tensor
    queries: torch.Tensor | None


@dataclass(frozen=True)
class ImageTokens:
    """The image side of the transformer, prepared once and shared by any number of prompt batches.

    tokens (1 or B, HW, C) and their positional encoding pe (1, HW, C) on a grid of `size` (H, W);
    first_block: the first block's projections of the tokens, or None to fold them into the prompt tokens;
    pe_projections: for the later blocks and then the final attention, `ProjectedPe`s, so that few prompt tokens
    over prompt-specific image tokens take their products with the positional encoding per head (d wide) instead
    of through the folded projections (C wide); empty when not prepared.
    factored: what the later blocks need to keep the image tokens factored (`FactoredImage`), or None. With it,
    tokens may be None (an exported prompts' graph takes only the prepared tensors).
    """

    tokens: torch.Tensor | None
    pe: torch.Tensor
    size: tuple[int, int]
    first_block: ProjectedImage | None
    pe_projections: tuple[ProjectedPe, ...] = ()
    factored: FactoredImage | None = None

    def projected_pe(self, block: int) -> ProjectedPe | None:
        """The `ProjectedPe` of block `block` (the transformer's depth: its final attention), if prepared."""
        return self.pe_projections[block - 1] if 0 < block <= len(self.pe_projections) else None


@dataclass(frozen=True)
class ImageUpdate:
    """What an image-to-token attention adds to the image tokens, (B, HW, C).

    Over few tokens it is kept factored: the weights (B, h * K, HW) of every image token over h * K value rows
    (B, h * K, C) (values (B, h, K, d) through the output projection), and the update is weights^T @ rows.
    Otherwise `weights` and `values` are None and `rows` is the update itself.
    """

    weights: torch.Tensor | None
    rows: torch.Tensor
    values: torch.Tensor | None = None

    def added_to(self, residual: torch.Tensor | None) -> torch.Tensor:
        """residual (1 or B, HW, C) + the update (the update alone if residual is None): (B, HW, C)."""
        if self.weights is None:
            return self.rows if residual is None else residual + self.rows
        if residual is None:
            return self.weights.transpose(1, 2) @ self.rows
        if residual.shape[0] != self.weights.shape[0]:
            residual = residual.expand(self.weights.shape[0], -1, -1)
        return torch.baddbmm(residual, self.weights.transpose(1, 2), self.rows)


@dataclass(frozen=True)
class TransformerState:
    """B prompts after the two-way blocks, before the final token-to-image attention.

    queries (B, N, C): prompt tokens; point_embedding (B, N, C): their initial values, used as their
    positional encoding; image: the `ImageTokens` they started from; keys (1 or B, HW, C): the image tokens
    (batch 1 while shared by all prompts).
    """

    queries: torch.Tensor
    point_embedding: torch.Tensor
    keys: torch.Tensor
    image: ImageTokens

    def image_tokens(self, prompts: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """The image tokens after the blocks of some prompts (S,): (S, HW, C)."""
        if self.keys.shape[0] == 1:
            return self.keys.expand(self.queries[prompts].shape[0], -1, -1)
        return self.keys[prompts]

    def materialized(self, prompts: torch.Tensor | slice = slice(None)) -> TransformerState:
        """The state of some prompts (S,)."""
        return TransformerState(
            self.queries[prompts], self.point_embedding[prompts], self.image_tokens(prompts), self.image
        )

    def output_tokens(self) -> FactoredTokens:
        """The image tokens after the blocks (of a materialized state)."""
        return FactoredTokens(self.keys, self.image.size)


@dataclass(frozen=True)
class FactoredState:
    """B prompts after the two-way blocks on an image prepared with `FactoredImage`, before the final attention.

    queries (B, N, C): prompt tokens; point_embedding (B, N, C): their initial values; image: the `ImageTokens`
    they started from; factors: their image tokens after the blocks, less the image's own term.
    """

    queries: torch.Tensor
    point_embedding: torch.Tensor
    image: ImageTokens
    factors: Factors

    @staticmethod
    def concatenated(states: list[FactoredState]) -> FactoredState:
        """The states of consecutive prompt batches on one image as one."""
        factors = [state.factors for state in states]
        rows = None if factors[0].rows is None else torch.cat([f.rows for f in factors])
        coeffs = None if factors[0].coeffs is None else torch.cat([f.coeffs for f in factors])
        return FactoredState(
            torch.cat([state.queries for state in states]),
            torch.cat([state.point_embedding for state in states]),
            states[0].image,
            Factors(torch.cat([f.scale for f in factors]), coeffs, rows, factors[0].offset),
        )

    def materialized(self, prompts: torch.Tensor | slice = slice(None)) -> FactoredState:
        """The state of some prompts (S,)."""
        return FactoredState(
            self.queries[prompts], self.point_embedding[prompts], self.image, self.factors.select(prompts)
        )

    def output_tokens(self) -> FactoredTokens:
        """The image tokens after the blocks."""
        factored = self.image.factored
        own = None if factored.final_own is None else factored.final_own[None]
        projection = None if factored.final_projection is None else factored.final_projection[None]
        return FactoredTokens(own, self.image.size, self.factors, projection)


class TwoWayTransformer(nn.Module):
    """A stack of `TwoWayAttentionBlock`s followed by a final token-to-image attention.

    The image side may have batch size 1 while the prompt side has batch size B: the image tokens are then
    shared across the prompts until the first image-to-token attention makes them prompt-specific. The
    steps are public so that callers can prepare an image once (`prepare_image`), run the blocks for
    batches of prompts (`run_blocks`) and the final attention for only the tokens they need
    (`final_tokens`); `forward` chains the three.
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
        self.norm_final_attn = LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, point_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the transformer.

        Args:
            image_embedding: (1 or B, C, H, W).
            image_pe: positional encoding of the image grid, (1, C, H, W).
            point_embedding: prompt tokens (B, N, C).
        Returns:
            processed prompt tokens (B, N, C) and image tokens (B, H*W, C).
        """
        batch, tokens = point_embedding.shape[:2]
        shared = image_embedding.shape[0] == 1
        project = shared and not self.layers[0].cross_attn_token_to_image.folds_projections(batch * tokens)
        # One call's image side: the first block's projections pay for themselves here, the factored products not.
        state = self.run_blocks(self.prepare_image(image_embedding, image_pe, project, factored=False), point_embedding)
        return self.final_tokens(state), state.keys.expand(batch, -1, -1)

    def prepare_image(
        self, image_embedding: torch.Tensor, image_pe: torch.Tensor, project: bool, factored: bool = True
    ) -> ImageTokens:
        """Image tokens from image_embedding (1 or B, C, H, W) and image_pe (1, C, H, W).

        project: compute the first block's image projections now (needs batch 1). That pays when many
        prompt tokens share the image (see `Attention.folds_projections`), all the more when several
        batches of prompts reuse the result. factored: with project, also prepare the `FactoredImage` (its
        products cost a few first-block projections more: for images that many prompts reuse).
        """
        if project and image_embedding.shape[0] != 1:
            raise ValueError(
                f"only a batch-1 image embedding can be projected once, got batch {image_embedding.shape[0]}"
            )
        # Contiguous token-major copies: every later elementwise op over (B, HW, C) runs on dense rows.
        tokens = image_embedding.flatten(2).transpose(1, 2).contiguous()
        pe = image_pe.flatten(2).transpose(1, 2).contiguous()
        size = (image_embedding.shape[2], image_embedding.shape[3])
        if not project:
            return ImageTokens(tokens, pe, size, None)
        first_block = self.layers[0].project_image(tokens, pe)
        if not factored:
            return ImageTokens(tokens, pe, size, first_block, self.pe_projections(pe))
        prepared = prepare(self.layers, self.final_attn_token_to_image, tokens, self.num_heads)
        return ImageTokens(tokens, pe, size, first_block, self.pe_projections(pe), prepared)

    def pe_projections(self, pe: torch.Tensor) -> tuple[ProjectedPe, ...]:
        """`ImageTokens.pe_projections` of a positional encoding pe (1, HW, C): the later blocks', then the final
        attention's."""
        final = self.final_attn_token_to_image
        return tuple(
            ProjectedPe(
                layer.cross_attn_token_to_image.project_pe(pe, "k"), layer.cross_attn_image_to_token.project_pe(pe, "q")
            )
            for layer in self.layers[1:]
        ) + (ProjectedPe(final.project_pe(pe, "k"), None),)

    def run_blocks(self, image: ImageTokens, point_embedding: torch.Tensor) -> TransformerState | FactoredState:
        """The two-way blocks for prompt tokens (B, N, C) on a prepared image (on an image prepared with
        `FactoredImage` the image tokens are kept factored: `FactoredState`)."""
        if image.factored is not None:
            return self._run_factored(image, point_embedding)
        queries, keys = point_embedding, image.tokens
        for i, layer in enumerate(self.layers):
            projected = image.first_block if i == 0 else None
            queries, keys = layer(queries, keys, point_embedding, image.pe, projected, image.projected_pe(i))
        return TransformerState(queries, point_embedding, keys, image)

    def _run_factored(self, image: ImageTokens, point_embedding: torch.Tensor) -> FactoredState:
        """`run_blocks` on an image prepared with `FactoredImage`: the image tokens stay factored. Prompts go
        FACTORED_CHUNK at a time: the (chunk, J, HW) coefficient passes then stay in the cache."""
        batch = point_embedding.shape[0]
        if batch > FACTORED_CHUNK:
            chunks = [
                self._run_factored(image, point_embedding[start : start + FACTORED_CHUNK])
                for start in range(0, batch, FACTORED_CHUNK)
            ]
            return FactoredState.concatenated(chunks)
        factored = image.factored
        queries, update = self.layers[0].attend(
            point_embedding, image.tokens, point_embedding, image.pe, image.first_block
        )
        values, factors = (
            (update.values,),
            normalized(None, (update.values,), update.weights, update.rows, factored, 0, self.layers[0].norm4),
        )
        for level, layer in enumerate(self.layers[1:], start=1):
            pe, own = image.projected_pe(level), factored.products[level - 1]
            queries, update = layer.attend_factored(queries, factors, point_embedding, own, pe)
            values += (update.values,)
            factors = normalized(factors, values, update.weights, update.rows, factored, level, layer.norm4)
        return FactoredState(queries, point_embedding, image, factors)

    def final_tokens(
        self,
        state: TransformerState | FactoredState,
        prompts: torch.Tensor | slice = slice(None),
        tokens: slice = slice(None),
    ) -> torch.Tensor:
        """The final token-to-image attention for some prompts (S,) and tokens (T,): (S, T, C).

        Prompt tokens do not interact in this attention, so any subset gives the values of the full run.
        """
        queries = state.queries[prompts, tokens]
        q = queries + state.point_embedding[prompts, tokens]
        attention = self.final_attn_token_to_image
        pe = state.image.projected_pe(self.depth)
        pe_keys = None if pe is None else pe.keys
        if isinstance(state, FactoredState):
            own, factors = state.image.factored.products[-1], state.factors.select(prompts)
            if q.shape[0] <= FACTORED_CHUNK:
                attn_out = attention.attend_factored_keys(q, factors, own, pe_keys)
            else:
                attn_out = torch.cat(
                    [
                        attention.attend_factored_keys(
                            q[start : start + FACTORED_CHUNK],
                            factors.select(slice(start, start + FACTORED_CHUNK)),
                            own,
                            pe_keys,
                        )
                        for start in range(0, q.shape[0], FACTORED_CHUNK)
                    ]
                )
        else:
            keys = state.image_tokens(prompts)
            attn_out = attention(q=q, k=keys, v=keys, key_pe=state.image.pe, pe_keys=pe_keys)
        return self.norm_final_attn(queries + attn_out)


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
        self.norm1 = LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.norm2 = LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, activation)
        self.norm3 = LayerNorm(embedding_dim)
        self.norm4 = LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(embedding_dim, num_heads, downsample_rate=attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
        projected: ProjectedImage | None = None,
        pe: ProjectedPe | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, N, C), keys (1 or B, HW, C) -> queries (B, N, C), keys (B, HW, C).

        projected: `project_image(keys, key_pe)` of batch-1 keys, computed beforehand.
        pe: this block's `ProjectedPe` of key_pe, computed beforehand (or None).
        """
        queries, update = self.attend(queries, keys, query_pe, key_pe, projected, pe)
        return queries, self.norm4(update.added_to(keys))

    def attend(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
        projected: ProjectedImage | None = None,
        pe: ProjectedPe | None = None,
    ) -> tuple[torch.Tensor, ImageUpdate]:
        """`forward` up to the image tokens' update: queries (B, N, C) and the update that `forward` adds to keys
        before `norm4`."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q=q, k=q, v=queries)
        queries = self.norm1(queries)

        t2i, i2t = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        if projected is None:
            pe_keys, pe_queries = (None, None) if pe is None else (pe.keys, pe.queries)
            queries = self.norm2(queries + t2i(q=queries + query_pe, k=keys, v=keys, key_pe=key_pe, pe_keys=pe_keys))
            queries = self.norm3(queries + self.mlp(queries))
            return queries, i2t.image_update(keys, queries + query_pe, queries, key_pe, pe_queries)
        queries = self.norm2(queries + t2i.attend_projected_keys(queries + query_pe, projected.keys, projected.values))
        queries = self.norm3(queries + self.mlp(queries))
        return queries, i2t.attend_projected_queries(projected.queries, queries + query_pe, queries)

    def attend_factored(
        self, queries: torch.Tensor, factors: Factors, query_pe: torch.Tensor, own: OwnProducts, pe: ProjectedPe
    ) -> tuple[torch.Tensor, ImageUpdate]:
        """`attend` over factored image tokens (`Factors` of own's level): queries (B, N, C) and the update."""
        q = queries + query_pe
        queries = self.norm1(queries + self.self_attn(q=q, k=q, v=queries))
        t2i, i2t = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        queries = self.norm2(queries + t2i.attend_factored_keys(queries + query_pe, factors, own, pe.keys))
        queries = self.norm3(queries + self.mlp(queries))
        return queries, i2t.factored_image_update(factors, own.queries, queries + query_pe, queries, pe.queries)

    def project_image(self, keys: torch.Tensor, key_pe: torch.Tensor) -> ProjectedImage:
        """The image-side projections of this block's attentions for image tokens keys (1, HW, C), key_pe (1, HW, C)."""
        with_pe = keys + key_pe
        t2i, i2t = self.cross_attn_token_to_image, self.cross_attn_image_to_token
        return ProjectedImage(
            keys=t2i.separate_heads(t2i.k_proj(with_pe)),
            values=t2i.separate_heads(t2i.v_proj(keys)),
            queries=i2t.separate_heads(i2t.q_proj(with_pe)),
        )


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
            raise ValueError(
                f"num_heads ({num_heads}) must divide embedding_dim / downsample_rate ({self.internal_dim})"
            )
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        residual: torch.Tensor | None = None,
        key_pe: torch.Tensor | None = None,
        pe_keys: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """q (Bq, Nq, C), k and v (Bk, Nk, C) -> (max(Bq, Bk), Nq, C), plus residual (1 or B, Nq, C) if given.

        key_pe (1 or Bk, Nk, C): added to the keys (not the values). Few queries over many keys take it apart,
        q.(k + pe) = q.k + q.pe, so that k + pe is never formed (q.pe is one product over a shared pe, or per
        head over pe_keys = `project_pe(key_pe, "k")` when given).
        """
        if self.folds_projections(k.shape[1]) and q.shape[1] >= _MANY_TOKENS:
            return self._few_keys(q, k if key_pe is None else k + key_pe, v).added_to(residual)
        if self.folds_projections(q.shape[1]) and k.shape[1] >= _MANY_TOKENS:
            out = self._few_queries(q, k, v, key_pe, pe_keys)
        else:
            out = self._plain(q, k if key_pe is None else k + key_pe, v)
        return out if residual is None else residual + out

    def image_update(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        query_pe: torch.Tensor | None = None,
        pe_queries: torch.Tensor | None = None,
    ) -> ImageUpdate:
        """`forward(q + query_pe, k, v)` as an `ImageUpdate`: factored when q has many tokens and k few, and
        then q + query_pe is never formed if pe_queries = `project_pe(query_pe, "q")` is given."""
        if self.folds_projections(k.shape[1]) and q.shape[1] >= _MANY_TOKENS:
            if pe_queries is not None:
                return self._few_keys(q, k, v, pe_queries)
            return self._few_keys(q if query_pe is None else q + query_pe, k, v)
        return ImageUpdate(None, self(q if query_pe is None else q + query_pe, k, v))

    def project_pe(self, pe: torch.Tensor, projection: str) -> torch.Tensor:
        """A positional encoding pe (1, N, C) through the weight (no bias) of the "q" or "k" projection, per head:
        (heads, N, d). The products with it take the other side's projection scaled by 1/sqrt(d)."""
        proj = {"q": self.q_proj, "k": self.k_proj}[projection]
        return self.separate_heads(F.linear(pe, proj.weight))[0].contiguous()

    def folds_projections(self, tokens: int) -> bool:
        """Whether folding the other side's projections into this many tokens costs less than applying them."""
        return tokens * self.num_heads < self.internal_dim

    def separate_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, heads * d) -> (B, heads, N, d)."""
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def attend_projected_keys(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Queries q (B, N, C) over keys and values already projected, (1, heads, HW, d) each -> (B, N, C).

        The B prompts' queries are rows of one fused attention over the shared keys (the logits are never formed).
        """
        batch, tokens = q.shape[:2]
        q = self._project_scaled(q, self.q_proj).transpose(0, 1).flatten(1, 2)  # (heads, B * N, d)
        out = F.scaled_dot_product_attention(q[None], keys, values, scale=1.0)[0]
        return self.out_proj(_merge_heads(out.unflatten(1, (batch, tokens)).transpose(0, 1)))

    def attend_projected_queries(self, queries: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> ImageUpdate:
        """Projected queries (1, heads, HW, d) over few keys k, v (B, N, C): the (B, HW, C) output, factored."""
        k = self._project_scaled(k, self.k_proj)
        logits = per_head_products(k, queries[0]).flatten(1, 2)  # (B, heads * N, HW)
        return self._mix_few_values(logits, v)

    def attend_factored_keys(
        self, q: torch.Tensor, factors: Factors, own: OwnProducts, pe_keys: torch.Tensor
    ) -> torch.Tensor:
        """Few queries q (B, Nq, C) over factored image tokens x (keys x + pe, values x): (B, Nq, C).

        own: the own term's key and value products of the tokens' level; pe_keys: `project_pe(pe, "k")`. A
        query's logits are its per-head products with the own keys times the tokens' scale, plus its products
        with the rows through the coefficients (its product with the offset is the same for every token: the
        softmax drops it); its output mixes the own values per head and the rows through the value projection.
        """
        heads = self.num_heads
        q = self._project_scaled(q, self.q_proj)  # (B, h, Nq, d)
        batch, _, count = q.shape[:3]
        logits = own_logits(q, own.keys, pe_keys, factors.scale)  # (B, h * Nq, HW)
        if factors.rows is not None:
            logits = accumulated(logits, self._fold_keys(q) @ factors.rows.transpose(1, 2), factors.coeffs)
        attn = logits.softmax(dim=-1)  # (B, h * Nq, HW)
        # Head-major (h, B * Nq, HW) for one product per head with the own values.
        scaled = (attn.unflatten(1, (heads, -1)).transpose(0, 1) * factors.scale[:, None, :]).reshape(
            heads, -1, attn.shape[-1]
        )
        own_out = (scaled @ own.values).unflatten(1, (batch, -1)).transpose(0, 1)  # (B, h, Nq, d)
        mixed = None
        if factors.rows is not None:
            mixed = (attn @ factors.coeffs.transpose(1, 2)) @ factors.rows  # (B, h * Nq, C)
        if factors.offset is not None:
            mixed = factors.offset if mixed is None else mixed + factors.offset
        return self._output(mixed, own_out)

    def factored_image_update(
        self,
        factors: Factors,
        own_queries: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        pe_queries: torch.Tensor,
    ) -> ImageUpdate:
        """Factored image tokens x as queries (x + pe) over few keys k, v (B, N, C): the (B, HW, C) output,
        factored (`ImageUpdate`).

        own_queries: the own term's query products of the tokens' level; pe_queries: `project_pe(pe, "q")`.
        """
        k, key_matrix, key_bias = self._fold_queries(k)
        if factors.offset is not None:
            key_bias = key_bias + key_matrix @ factors.offset
        logits = own_logits(k, own_queries, pe_queries, factors.scale) + key_bias[:, :, None]  # (B, h * Nk, HW)
        if factors.rows is not None:
            logits = accumulated(logits, key_matrix @ factors.rows.transpose(1, 2), factors.coeffs)
        return self._mix_few_values(logits, v)

    def _project_scaled(self, x: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
        """(B, N, C) -> projected by proj per head and divided by sqrt(d), (B, heads, N, d)."""
        x = self.separate_heads(proj(x))
        return x / math.sqrt(x.shape[-1])

    def _plain(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = self._project_scaled(q, self.q_proj)
        k = self.separate_heads(self.k_proj(k))
        v = self.separate_heads(self.v_proj(v))
        attn = q @ k.transpose(-2, -1)
        return self.out_proj(_merge_heads(attn.softmax(dim=-1) @ v))

    def _few_queries(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        key_pe: torch.Tensor | None = None,
        pe_keys: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Few queries over many keys (k + key_pe): fold the key and value projections into the queries.

        logits = (W_k^T q') . (k + key_pe)  (the bias term q'.b_k is the same for every key, so softmax drops it);
        output = W_v (softmax @ v) + b_v, since each softmax row sums to one.
        """
        q = self._project_scaled(q, self.q_proj)  # (Bq, h, Nq, d)
        query_matrix = self._fold_keys(q)  # (Bq, h * Nq, C)
        logits = _batched_matmul(query_matrix, k.transpose(1, 2))  # (B, h * Nq, Nk)
        if key_pe is not None or pe_keys is not None:
            logits = logits + self._pe_logits(q, query_matrix, key_pe, pe_keys)
        return self._output(_batched_matmul(logits.softmax(dim=-1), v))

    def _fold_keys(self, q: torch.Tensor) -> torch.Tensor:
        """Projected queries (B, h, Nq, d) with the key projection folded in: (B, h * Nq, C), rows (head, query)."""
        weight_k = self.k_proj.weight.unflatten(0, (self.num_heads, -1))  # (h, d, C)
        return torch.einsum("bhnd,hdc->bhnc", q, weight_k).flatten(1, 2)

    def _pe_logits(
        self, q: torch.Tensor, query_matrix: torch.Tensor, key_pe: torch.Tensor | None, pe_keys: torch.Tensor | None
    ) -> torch.Tensor:
        """The logits' positional part q'.(W_k key_pe) of projected queries q (B, h, Nq, d): (B, h * Nq, Nk).

        Per head over pe_keys (h, Nk, d) when given; else the folded query_matrix (B, h * Nq, C) over
        key_pe (1, Nk, C).
        """
        if pe_keys is None:
            return _batched_matmul(query_matrix, key_pe.transpose(1, 2))
        return per_head_products(q, pe_keys).flatten(1, 2)

    def _output(self, mixed: torch.Tensor | None, projected: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax-weighted sums of the values' inputs (B, h * Nq, C), plus sums already through the value projection
        (B, h, Nq, d) where given -> the attention output (B, Nq, C)."""
        heads = self.num_heads
        out = self.v_proj.bias.view(heads, 1, -1)
        if mixed is not None:
            weight_v = self.v_proj.weight.unflatten(0, (heads, -1))  # (h, d, C)
            mixed = mixed.expand(*projected.shape[:3], -1) if mixed.dim() == 1 else mixed.unflatten(1, (heads, -1))
            out = out + torch.einsum("bhnc,hdc->bhnd", mixed, weight_v)
        if projected is not None:
            out = out + projected
        return self.out_proj(_merge_heads(out))

    def _few_keys(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pe_queries: torch.Tensor | None = None
    ) -> ImageUpdate:
        """Many queries over few keys: fold the query projection into the keys.

        logits = q . (W_q^T k') + b_q . k', plus k' . pe_queries per head when given (queries q + pe).
        """
        k, key_matrix, key_bias = self._fold_queries(k)
        logits = _batched_matmul(key_matrix, q.transpose(1, 2)).add_(key_bias.unsqueeze(2))  # (B, h * Nk, Nq)
        if pe_queries is not None:
            logits = logits + per_head_products(k, pe_queries).flatten(1, 2)
        return self._mix_few_values(logits, v)

    def _fold_queries(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Few keys k (B, Nk, C) with the query projection folded in: the projected keys per head divided by
        sqrt(d) (B, h, Nk, d), the key matrix (B, h * Nk, C) = W_q^T k' and the key bias (B, h * Nk) = b_q . k'."""
        heads = self.num_heads
        k = self._project_scaled(k, self.k_proj)
        weight_q = self.q_proj.weight.unflatten(0, (heads, -1))  # (h, d, C)
        key_matrix = torch.einsum("bhnd,hdc->bhnc", k, weight_q).flatten(1, 2)
        key_bias = torch.einsum("bhnd,hd->bhn", k, self.q_proj.bias.view(heads, -1)).flatten(1)
        return k, key_matrix, key_bias

    def _mix_few_values(self, logits: torch.Tensor, v: torch.Tensor) -> ImageUpdate:
        """Softmax over the few keys of logits (B, h * Nk, Nq) applied to v (B, Nk, C): the (B, Nq, C) output,
        factored.

        The output projection is applied to the h * Nk value rows first, so the (B, Nq, h * d) per-head
        outputs are never formed; its bias is spread over the rows (each head's weights sum to one).
        """
        heads = self.num_heads
        attn = softmax(logits.unflatten(1, (heads, -1)), dim=2).flatten(1, 2)  # (B, h * Nk, Nq)
        weight_o = self.out_proj.weight.unflatten(1, (heads, -1))  # (C, h, d)
        v = self.separate_heads(self.v_proj(v))  # (B, h, Nk, d)
        projected = torch.einsum("bhnd,chd->bhnc", v, weight_o).flatten(1, 2) + self.out_proj.bias / heads
        return ImageUpdate(attn, projected, v)


# Below this many tokens on the long side, folding projections saves too little to matter.
_MANY_TOKENS = 256
# Prompts whose factored image tokens are computed at once (`TwoWayTransformer._run_factored`).
FACTORED_CHUNK = 8


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    return x.transpose(1, 2).flatten(2)


def _batched_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (Ba, M, K) @ b (Bb, K, N) with Ba, Bb in {1, B}; a shared operand is used once, never copied."""
    if a.shape[0] == b.shape[0]:
        return a @ b
    if b.shape[0] == 1:  # one (Ba * M, K) @ (K, N) product
        return (a.reshape(-1, a.shape[2]) @ b[0]).unflatten(0, a.shape[:2])
    batch, (_, m, k), n = b.shape[0], a.shape, b.shape[2]
    # a is shared: one (M, K) @ (K, B * N) product, viewed back as (B, M, N).
    out = a[0] @ b.permute(1, 0, 2).reshape(k, batch * n)
    return out.view(m, batch, n).transpose(0, 1)
