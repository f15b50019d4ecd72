"""Image tokens after the two-way blocks kept factored: an own term per image, a few rows per prompt.

After the first block every image token is x_i = LN(e_i + R^T a_i): the image's own token e_i, the same for every
prompt, plus a mix a_i of the h * K rows R (K prompt tokens, h heads) that the prompt's image-to-token attention
made. A LayerNorm is affine per token and every later use of the tokens is linear up to the upscaling's own
LayerNorm (attention logits and values, the next block's update, the first transposed convolution), so the tokens
are kept as

    x_i = scale_i * own_i + rows^T coeffs_i + offset

with own_i prepared once per image together with its products through every later projection, and rows (J, C),
coeffs (J, HW) per prompt (J = h * K rows per block, plus one row per LayerNorm bias passed). A product of a few
prompt vectors with the tokens then costs d (per head, over the prepared own products) + J multiply-adds per token
instead of C, and a LayerNorm's statistics come from prepared norms, the rows' products with the own term (through
the output projections that made them, prepared) and the rows' Gram matrix. Everything is computed on centred
vectors (a LayerNorm's mean removed), so a variance is a sum of non-cancelling squares.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .common import in_place_ok


@dataclass(frozen=True)
class OwnProducts:
    """The own term of one level's tokens through an attention's projections (weights only, no bias), per head
    (heads, HW, d): keys and values of a token-to-image attention, queries of an image-to-token attention (None for
    the final attention)."""

    keys: torch.Tensor
    values: torch.Tensor
    queries: torch.Tensor | None


@dataclass(frozen=True)
class UpdateCross:
    """Products of a block's image update rows with a level's centred own term g, through the update's output
    projection: heads (heads, HW, d) = W_o^T g per head, bias (HW,) = b_o . g / heads (each row carries the bias
    over heads, `Attention._mix_few_values`)."""

    heads: torch.Tensor
    bias: torch.Tensor


@dataclass(frozen=True)
class FactoredImage:
    """What the factored tokens need of one image, prepared once (batch 1, HW tokens, C channels, depth D blocks).

    Level l's tokens are block l's input (level D: the final attention's). For each level l < D:
    own_norms[l] (HW,) the squared norm of the centred own term P g_l; cross[l][k] the `UpdateCross` of block k's
    update (k <= l) with the own term carried back through the LayerNorms between (P Gamma_k ... P g_l); and
    offset_cross[l][k] (HW,), k < l, the product of LayerNorm k's bias with it. products[l - 1] for levels
    1..D: the own term's `OwnProducts`. final_own (HW, C): the own term of level D (None in an exported prompts'
    graph, which only projects the final tokens); final_projection (HW, F): it through the linear layer the caller
    applies to the final tokens (the mask decoder's first upscaling convolution), or None.
    """

    own_norms: tuple[torch.Tensor, ...]
    cross: tuple[tuple[UpdateCross, ...], ...]
    offset_cross: tuple[tuple[torch.Tensor, ...], ...]
    products: tuple[OwnProducts, ...]
    final_own: torch.Tensor
    final_projection: torch.Tensor | None = None

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The tensors a prompts' graph needs (all but final_own; final_projection last), flat, in the order
        `from_tensors` reads."""
        flat = [*self.own_norms]
        for level in self.cross:
            for cross in level:
                flat += [cross.heads, cross.bias]
        for level in self.offset_cross:
            flat += [*level]
        for products in self.products:
            flat += [products.keys, products.values] + ([] if products.queries is None else [products.queries])
        return (*flat, self.final_projection)

    @classmethod
    def from_tensors(cls, depth: int, tensors: tuple[torch.Tensor, ...]) -> FactoredImage:
        """The inverse of `tensors()` for a transformer of `depth` blocks (final_own None)."""
        it = iter(tensors)
        own_norms = tuple(next(it) for _ in range(depth))
        cross = tuple(tuple(UpdateCross(next(it), next(it)) for _ in range(level + 1)) for level in range(depth))
        offset_cross = tuple(tuple(next(it) for _ in range(level)) for level in range(depth))
        products = tuple(
            OwnProducts(next(it), next(it), next(it) if level < depth else None) for level in range(1, depth + 1)
        )
        return cls(own_norms, cross, offset_cross, products, None, next(it))


@dataclass(frozen=True)
class Factors:
    """B prompts' image tokens (B, HW, C) of one level, less the own term: scale (B, HW) times the own term, plus
    rows (B, J, C)^T coeffs (B, J, HW) (None: no rows), plus offset (C,) (None: 0)."""

    scale: torch.Tensor
    coeffs: torch.Tensor | None
    rows: torch.Tensor | None
    offset: torch.Tensor | None

    def select(self, prompts: torch.Tensor | slice) -> Factors:
        """The factors of some prompts (S,)."""
        if isinstance(prompts, slice) and prompts == slice(None):
            return self

        def pick(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x[prompts]

        return Factors(self.scale[prompts], pick(self.coeffs), pick(self.rows), self.offset)


@dataclass(frozen=True)
class FactoredTokens:
    """B prompts' image tokens (B, HW, C) on a grid of `size` (h, w): own (1 or B, HW, C) alone (factors None), or
    factors.scale * own + the factors' rows and offset (own (1, HW, C), shared).

    own_projection (1, HW, F): own through `project`'s layer, when prepared (own may then be None: the tokens can
    only go through that layer). extent: the top-left rows x cols tokens kept by `crop` (ints, or 0-d tensors that an
    ONNX trace keeps as graph values); None: all.
    """

    own: torch.Tensor | None
    size: tuple[int, int]
    factors: Factors | None = None
    own_projection: torch.Tensor | None = None
    extent: tuple[int | torch.Tensor, int | torch.Tensor] | None = None

    def select(self, prompts: torch.Tensor | slice) -> FactoredTokens:
        """The tokens of some prompts (S,)."""
        if isinstance(prompts, slice) and prompts == slice(None):
            return self
        if self.factors is None:
            return replace(self, own=self.own[prompts])
        return replace(self, factors=self.factors.select(prompts))

    def crop(self, rows: torch.Tensor | int, cols: torch.Tensor | int) -> FactoredTokens:
        """The top-left rows x cols tokens (ints or 0-d tensors: an ONNX trace keeps them as graph values)."""
        return replace(self, extent=(rows, cols))

    def project(self, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The tokens through a linear layer weight (F, C), bias (F,): (B, rows, cols, F) token-major (the kept
        tokens after `crop`, else the grid).

        Only kept tokens are computed (`_kept`).
        """
        out = self.own_projection if self.own_projection is not None else F.linear(self.own, weight)
        out = self._kept(out.unflatten(1, self.size))  # (1 or B, rows, cols, F)
        factors = self.factors
        if factors is None:
            return out if bias is None else out + bias
        constant = bias
        if factors.offset is not None:
            shift = weight @ factors.offset
            constant = shift if constant is None else constant + shift
        scale = self._kept(factors.scale.unflatten(1, self.size))[..., None]
        out = scale * out if constant is None else torch.addcmul(constant, scale, out)  # one pass: scaled, shifted
        if factors.rows is not None:
            coeffs = self._kept_coeffs(factors.coeffs)  # (B, rows * cols, J)
            product = factors.rows @ weight.T
            flat = out.view(out.shape[0], -1, out.shape[-1])
            out = accumulated(flat, coeffs, product).view(out.shape)  # in place: no copy of the largest tensor
        return out

    def _kept(self, grid: torch.Tensor) -> torch.Tensor:
        """The kept tokens of a token-major grid (B, h, w, ...): a view for an int extent, gathered for a traced one
        (index_select of whole rows: slicing would make the extent a constant of the trace)."""
        if self.extent is None:
            return grid
        rows, cols = self.extent
        if self._traced_extent():
            kept_rows = torch.arange(rows, device=grid.device)
            return grid.index_select(1, kept_rows).index_select(2, torch.arange(cols, device=grid.device))
        return grid[:, :rows, :cols]

    def _kept_coeffs(self, coeffs: torch.Tensor) -> torch.Tensor:
        """The kept tokens' coefficients (B, J, HW) -> (B, kept, J): sliced where they lie (token-minor) for an int
        extent; made token-major first for a traced one, so that its gathers read whole rows."""
        if self.extent is None or self._traced_extent():
            return self._kept(coeffs.transpose(1, 2).unflatten(1, self.size)).flatten(1, 2)
        rows, cols = self.extent
        return coeffs.unflatten(2, self.size)[..., :rows, :cols].flatten(2, 3).transpose(1, 2)

    def _traced_extent(self) -> bool:
        return self.extent is not None and any(isinstance(side, torch.Tensor) for side in self.extent)

    def dense(self) -> torch.Tensor:
        """The tokens formed, (B, rows, cols, C) token-major."""
        eye = torch.eye(self.own.shape[-1], dtype=self.own.dtype, device=self.own.device)
        return replace(self, own_projection=None).project(eye, None)


def centred(x: torch.Tensor) -> torch.Tensor:
    """x (..., C) less its mean over the last dimension."""
    return x - x.mean(-1, keepdim=True)


def prepare(layers: nn.ModuleList, final_attention: nn.Module, tokens: torch.Tensor, num_heads: int) -> FactoredImage:
    """`FactoredImage` of image tokens (1, HW, C) for two-way blocks `layers` and the final attention."""
    depth = len(layers)
    own = tokens[0]  # g_0: the image tokens
    own_norms, cross, offset_cross, products = [], [], [], []
    for level in range(depth):
        carried = centred(own)  # P g_l, then carried back through the LayerNorms before it
        own_norms.append(carried.square().sum(-1))
        level_cross, level_offsets = [], []
        for block in range(level, -1, -1):
            if block < level:
                level_offsets.append(carried @ layers[block].norm4.bias)
                carried = centred(carried * layers[block].norm4.weight)
            out_proj = layers[block].cross_attn_image_to_token.out_proj
            heads = _per_head(carried @ out_proj.weight, num_heads)
            level_cross.append(UpdateCross(heads, carried @ out_proj.bias / num_heads))
        cross.append(tuple(reversed(level_cross)))
        offset_cross.append(tuple(reversed(level_offsets)))
        own = centred(own) * layers[level].norm4.weight  # g_{l+1} = Gamma_l P g_l
        if level + 1 < depth:
            t2i, i2t = layers[level + 1].cross_attn_token_to_image, layers[level + 1].cross_attn_image_to_token
            products.append(
                OwnProducts(
                    _per_head(own @ t2i.k_proj.weight.T, num_heads),
                    _per_head(own @ t2i.v_proj.weight.T, num_heads),
                    _per_head(own @ i2t.q_proj.weight.T, num_heads),
                )
            )
    products.append(
        OwnProducts(
            _per_head(own @ final_attention.k_proj.weight.T, num_heads),
            _per_head(own @ final_attention.v_proj.weight.T, num_heads),
            None,
        )
    )
    return FactoredImage(tuple(own_norms), tuple(cross), tuple(offset_cross), tuple(products), own)


def normalized(
    factors: Factors | None,
    values: tuple[torch.Tensor, ...],
    weights: torch.Tensor,
    rows: torch.Tensor,
    image: FactoredImage,
    level: int,
    norm: nn.LayerNorm,
) -> Factors:
    """norm(tokens + rows^T weights) of level `level`, factored: the next level's `Factors`.

    factors: level `level`'s (None at level 0: the image tokens themselves), whose rows are those of blocks
    0..level-1's updates each followed by a LayerNorm bias row (the last bias is the offset); values: those updates'
    values per head (B, h, K, d), then block `level`'s; weights (B, h * K, HW) and rows (B, h * K, C): block
    `level`'s update.
    """
    batch, channels = rows.shape[0], rows.shape[2]
    parts_rows, parts_coeffs = [rows], [weights]
    if factors is not None and factors.offset is not None:
        parts_rows.insert(0, factors.offset.expand(batch, 1, -1))
        parts_coeffs.insert(0, torch.ones_like(weights[:, :1]))
    if factors is not None and factors.rows is not None:
        parts_rows.insert(0, factors.rows)
        parts_coeffs.insert(0, factors.coeffs)
    basis = centred(torch.cat(parts_rows, dim=1))  # (B, J, C)
    coeffs = torch.cat(parts_coeffs, dim=1)  # (B, J, HW)
    parts_cross = []  # each basis row . the centred own term, (B, J, HW) once concatenated
    for block in range(level + 1):
        crossed = image.cross[level][block]
        parts_cross.append((per_head_products(values[block], crossed.heads) + crossed.bias).flatten(1, 2))
        if block < level:
            parts_cross.append(image.offset_cross[level][block].expand(batch, 1, -1))
    doubled = 2 if factors is None else 2 * factors.scale[:, None]  # (B, 1, HW)
    gram = basis @ basis.transpose(1, 2)
    # |P y|^2 = s^2 |P own|^2 + coeffs . (2 s cross + gram @ coeffs)
    cross = torch.cat(parts_cross, dim=1)  # a fresh (B, J, HW) tensor: updated in place where that is allowed
    in_place = in_place_ok()
    terms = accumulated(cross.mul_(doubled) if in_place else cross * doubled, gram, coeffs)
    own_norms = image.own_norms[level]  # (HW,)
    # The sum over J as a product with ones: a reduction over a middle axis is slow in ONNX Runtime.
    ones = (coeffs[:1, :, :1] * 0 + 1).transpose(1, 2)  # (1, 1, J); not ones_like: a trace would fix J
    squares = (ones @ (terms.mul_(coeffs) if in_place else terms * coeffs))[:, 0]  # (B, HW)
    squares = squares + (own_norms if factors is None else factors.scale.square() * own_norms)
    inv_std = torch.rsqrt(squares / channels + norm.eps)  # (B, HW)
    scale = inv_std if factors is None else factors.scale * inv_std
    coeffs = coeffs.mul_(inv_std[:, None]) if in_place else coeffs * inv_std[:, None]  # coeffs: from torch.cat
    return Factors(scale, coeffs, basis * norm.weight, norm.bias)


def accumulated(fresh: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """fresh + a @ b for a tensor `fresh` (B, M, N) made by the caller and used nowhere else: updated in place where
    that is allowed (`in_place_ok`: no copy of it), else a new tensor."""
    return fresh.baddbmm_(a, b) if in_place_ok() else torch.baddbmm(fresh, a, b)


def _per_head(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(N, heads * d) -> (heads, N, d)."""
    return x.unflatten(-1, (num_heads, -1)).transpose(0, 1).contiguous()


def own_logits(rows: torch.Tensor, own: torch.Tensor, pe: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Per-head logits of rows (B, h, M, d) over factored image tokens: scale (B, HW) times their products with the
    own term's projections own (h, HW, d), plus those with the positional encoding's pe (h, HW, d): (B, h * M, HW)."""
    with_pe, with_own = per_head_products(rows, pe), per_head_products(rows, own)
    differentiable = torch.is_grad_enabled() and any(t.requires_grad for t in (rows, own, pe, scale))
    if differentiable or torch.onnx.is_in_onnx_export():  # no out= in autograd or in an export
        return torch.addcmul(with_pe, with_own, scale[:, None, None]).flatten(1, 2)
    out = torch.empty(*rows.shape[:3], own.shape[1], dtype=rows.dtype, device=rows.device)  # (B, h, M, HW)
    return torch.addcmul(with_pe, with_own, scale[:, None, None], out=out).flatten(1, 2)


def per_head_products(rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """rows (B, h, M, d) against shared columns (h, N, d), head by head: (B, h, M, N), a view of one
    (h, B * M, N) product (one (B * M, d) @ (d, N) product per head, so the B prompts share each head's columns).
    """
    out = rows.transpose(0, 1).flatten(1, 2) @ columns.transpose(1, 2)  # (h, B * M, N)
    if rows.shape[0] == 1:  # the same layout: no transpose (an exported graph would copy for one)
        return out.unsqueeze(0)
    return out.unflatten(1, (rows.shape[0], -1)).transpose(0, 1)
