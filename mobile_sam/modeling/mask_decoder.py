"""SAM's mask decoder: image embedding + prompt tokens -> low-res masks and predicted IoU."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d, layer_norm
from .factored_tokens import FactoredTokens
from .transformer import FactoredState, ImageTokens, TransformerState

# Low-res mask logits per image token along each side: output_upscaling's two stride-2 transposed convolutions.
UPSCALE_FACTOR = 4


class MaskDecoder(nn.Module):
    """Predicts masks with a two-way transformer and hypernetwork heads over upscaled image features.

    Decoding runs in two steps that callers may use separately: `decode_tokens` (the transformer and the
    IoU head, cheap per prompt) and `upscale_masks` (the convolutional upscaling, the expensive part), so a
    caller can drop candidates by predicted IoU before paying for their masks.

    Many prompt batches on one image go further: `prepare_image` once, then per batch `decode_iou` (the
    final attention for the IoU token only) and `decode_mask_tokens` for the prompts whose masks are
    wanted, whose outputs go to `upscale_masks`; or `decode_prepared` when every prompt's mask is wanted.
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
        # Prompts upscaled at once: bounds the (chunk, 64, 64, 4, 128) intermediate tensors to a few tens of MB,
        # which the allocator can reuse instead of mapping fresh pages for every batch.
        self.upscale_chunk_size = 4
        self.upscale_factor = UPSCALE_FACTOR

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        simple_type: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict masks for B prompts.

        Args:
            image_embeddings: (1 or B, C, 64, 64) from the image encoder; batch 1 is shared by all prompts,
                batch B gives each prompt its own embedding.
            image_pe: (1 or B, C, 64, 64) positional encoding of the embedding grid (the same for every prompt).
            sparse_prompt_embeddings: (B, N, C) point and box tokens.
            dense_prompt_embeddings: (1 or B, C, 64, 64) mask-prompt embedding.
            multimask_output: return the three multimask candidates instead of the single-mask output.
            simple_type: MobileSAMv2's flag for `predict_masks_simple`, which its Inference.py sets. Both ways
                give the same values here (see `predict_masks_simple`).
        Returns:
            low-res mask logits (B, 3 or 1, 256, 256) and predicted IoU (B, 3 or 1).
        """
        selected = slice(1, None) if multimask_output else slice(0, 1)
        iou_predictions, hyper_in, image_tokens = self.decode_tokens(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
        )
        masks = self.upscale_masks(hyper_in[:, selected], image_tokens)
        return masks, iou_predictions[:, selected]

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every output of B prompts (the official name; `forward` upscales only the selected outputs).

        Returns:
            low-res mask logits (B, 4, 256, 256) and predicted IoU (B, 4): the single-mask output first,
            then the three multimask outputs.
        """
        iou_predictions, hyper_in, image_tokens = self.decode_tokens(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings
        )
        return self.upscale_masks(hyper_in, image_tokens), iou_predictions

    def predict_masks_simple(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MobileSAMv2's variant of `predict_masks` (its `simple_type=True`): every output of B prompts.

        The official variant takes the image embedding and positional encoding already repeated per prompt
        ((B, C, 64, 64), MobileSAMv2's Inference.py passes them so) where `predict_masks` repeats a (1, C, 64, 64)
        one itself; the values are the same. Here both accept batch 1 or B (`forward`), so this is
        `predict_masks` under MobileSAMv2's name.
        """
        return self.predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings)

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
        tokens = self._prompt_tokens(sparse_prompt_embeddings)
        src = _shared_batch(image_embeddings) + _shared_batch(dense_prompt_embeddings)
        height, width = src.shape[-2:]
        hs, image_tokens = self.transformer(src, image_pe[:1], tokens)
        hyper_in = self._hyper_in(hs[:, 1 : 1 + self.num_mask_tokens], range(self.num_mask_tokens))
        image_tokens = image_tokens.transpose(1, 2).unflatten(2, (height, width))
        return self.iou_prediction_head(hs[:, 0]), hyper_in, image_tokens

    def prepare_image(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, dense_prompt_embeddings: torch.Tensor
    ) -> ImageTokens:
        """The image side of the transformer, computed once for any number of `decode_iou` batches.

        Args:
            image_embeddings: (1, C, 64, 64) from the image encoder.
            image_pe: (1, C, 64, 64) positional encoding of the embedding grid.
            dense_prompt_embeddings: (1, C, 64, 64), the same for every prompt to come (no mask prompt).
        """
        src = image_embeddings + _shared_batch(dense_prompt_embeddings)
        image = self.transformer.prepare_image(src, image_pe[:1], project=True)
        # The final tokens' own term through the first upscaling convolution, once per image.
        conv = self.output_upscaling[0]
        projection = F.linear(image.factored.final_own, _pixel_weight(conv))
        return replace(image, factored=replace(image.factored, final_projection=projection))

    def decode_iou(
        self, image: ImageTokens, sparse_prompt_embeddings: torch.Tensor
    ) -> tuple[torch.Tensor, TransformerState | FactoredState]:
        """Predicted IoU (B, 4) of B prompts (B, N, C) on a prepared image, as in `decode_tokens`.

        Only the IoU token goes through the final attention; the returned state gives the mask tokens of
        chosen prompts with `decode_mask_tokens`.
        """
        state = self.transformer.run_blocks(image, self._prompt_tokens(sparse_prompt_embeddings))
        iou_token = self.transformer.final_tokens(state, tokens=slice(0, 1))
        return self.iou_prediction_head(iou_token[:, 0]), state

    def decode_mask_tokens(
        self, state: TransformerState | FactoredState, prompts: torch.Tensor | slice, multimask_output: bool
    ) -> tuple[torch.Tensor, FactoredTokens]:
        """`upscale_masks` inputs for prompt indices (S,) of a `decode_iou` state (a slice selects without copying).

        Returns:
            hyper_in (S, 3 or 1, C / 8): the multimask outputs or the single-mask output.
            image_tokens: the S prompts' image features after the transformer (`FactoredTokens`).
        """
        outputs = self._outputs(multimask_output)
        state = state.materialized(prompts)
        mask_tokens = self.transformer.final_tokens(state, tokens=slice(1 + outputs[0], 1 + outputs[-1] + 1))
        return self._hyper_in(mask_tokens, outputs), state.output_tokens()

    def decode_prepared(
        self, image: ImageTokens, sparse_prompt_embeddings: torch.Tensor, multimask_output: bool
    ) -> tuple[torch.Tensor, torch.Tensor, FactoredTokens]:
        """`decode_iou` and `decode_mask_tokens` for every prompt at once, when none is dropped by its IoU:
        the final attention runs once for the IoU token and the wanted mask tokens.

        Returns:
            iou_predictions (B, 3 or 1) of the selected outputs, then `upscale_masks`' inputs: hyper_in
            (B, 3 or 1, C / 8) and the image tokens (`FactoredTokens`).
        """
        return self._decode_outputs(image, sparse_prompt_embeddings, self._outputs(multimask_output))

    def predict_masks_prepared(
        self, image: ImageTokens, sparse_prompt_embeddings: torch.Tensor, token_extent: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`predict_masks` on a prepared image (no mask prompt): low-res mask logits (B, 4, 256, 256) and predicted
        IoU (B, 4) of every output, the single-mask output first.

        token_extent: (rows, cols) of image tokens (ints or 0-d tensors) whose logits are wanted; the logits of the
        others are left at 0 (upscaling is local: the wanted ones are those of the full computation).
        """
        iou_predictions, hyper_in, tokens = self._decode_outputs(
            image, sparse_prompt_embeddings, range(self.num_mask_tokens)
        )
        if token_extent is None:
            return self.upscale_masks(hyper_in, tokens), iou_predictions
        masks = self.upscale_masks(hyper_in, tokens.crop(*token_extent))
        height, width = (side * self.upscale_factor for side in image.size)
        return _zero_padded(masks, height, width), iou_predictions

    def _decode_outputs(
        self, image: ImageTokens, sparse_prompt_embeddings: torch.Tensor, outputs: range
    ) -> tuple[torch.Tensor, torch.Tensor, FactoredTokens]:
        """Predicted IoU (B, K), hyper_in (B, K, C / 8) and the image tokens of mask outputs (K,)."""
        state = self.transformer.run_blocks(image, self._prompt_tokens(sparse_prompt_embeddings))
        final = self.transformer.final_tokens(state, tokens=slice(0, 1 + outputs[-1] + 1))
        iou_predictions = self.iou_prediction_head(final[:, 0])[:, outputs[0] : outputs[-1] + 1]
        return iou_predictions, self._hyper_in(final[:, 1 + outputs[0] :], outputs), state.output_tokens()

    def _outputs(self, multimask_output: bool) -> range:
        """The mask outputs selected: the three multimask outputs, or the single-mask output."""
        return range(1, self.num_mask_tokens) if multimask_output else range(1)

    def _prompt_tokens(self, sparse_prompt_embeddings: torch.Tensor) -> torch.Tensor:
        """The IoU token, the mask tokens, then the prompt's tokens: (B, 1 + masks + N, C)."""
        batch = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        return torch.cat([output_tokens.unsqueeze(0).expand(batch, -1, -1), sparse_prompt_embeddings], dim=1)

    def _hyper_in(self, mask_tokens: torch.Tensor, outputs: range) -> torch.Tensor:
        """Hypernetwork weights (B, K, C / 8) of processed mask tokens (B, K, C) for mask outputs (K,)."""
        mlps = self.output_hypernetworks_mlps
        return torch.stack([mlps[output](mask_tokens[:, i]) for i, output in enumerate(outputs)], dim=1)

    def upscale_masks(self, hyper_in: torch.Tensor, image_tokens: torch.Tensor | FactoredTokens) -> torch.Tensor:
        """Mask logits from `decode_tokens` outputs: hyper_in (B, K, C/8), image_tokens (B, C, h, w) or
        `FactoredTokens` of B prompts (of their kept extent h x w after `FactoredTokens.crop`) -> (B, K, 4h, 4w).

        `output_upscaling` runs on token-major features (see `_upscale`); the image tokens that the decoder
        makes are token-major already, so a tensor `image_tokens` is usually a permuted view of them.
        """
        if isinstance(image_tokens, torch.Tensor):
            image_tokens = FactoredTokens(image_tokens.permute(0, 2, 3, 1).flatten(1, 2), image_tokens.shape[2:])
        step = self.upscale_chunk_size
        batch = hyper_in.shape[0]
        if batch <= step:
            return self._upscale(hyper_in, image_tokens)
        chunks = [
            self._upscale(hyper_in[start : start + step], image_tokens.select(slice(start, start + step)))
            for start in range(0, batch, step)
        ]
        return torch.cat(chunks)

    def _upscale(self, hyper_in: torch.Tensor, tokens: FactoredTokens) -> torch.Tensor:
        """`output_upscaling`, then the hypernetwork product: hyper_in (B, K, C/8), tokens of B prompts (h x w) ->
        masks (B, K, 4h, 4w).

        A transposed convolution with kernel 2 and stride 2 maps each input pixel to its own 2x2 output pixels, so
        it is a linear layer on token-major features with the four output pixels side by side
        (`FactoredTokens.project`); the channel LayerNorm and activations act on the last dimension there. Every
        GEMM is large, nothing is transposed until the (B, K, 4h, 4w) masks, and the values are the convolutions'
        up to float rounding.
        """
        conv1, norm, act1, conv2, act2 = self.output_upscaling
        x = tokens.project(_pixel_weight(conv1), conv1.bias.repeat(4))  # (B, h, w, 2x2 * C/4)
        batch, height, width = x.shape[:3]
        x = act1(layer_norm(x.unflatten(-1, (4, -1)), norm.normalized_shape, norm.weight, norm.bias, norm.eps))
        x = _linear_activation(x, _pixel_weight(conv2), conv2.bias.repeat(4), act2)  # (B, h, w, 2x2, 2x2 * C/8)
        masks = hyper_in @ x.reshape(batch, -1, hyper_in.shape[-1]).transpose(1, 2)  # (B, K, h * w * 16)
        # Pixel (4i + 2a + c, 4j + 2b + d) of a mask sits at token (i, j), first-level pixel (a, b), second (c, d).
        masks = masks.view(batch, -1, height, width, 2, 2, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7)
        return masks.reshape(batch, -1, 4 * height, 4 * width)


def _zero_padded(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """masks (B, K, h, w) at the top left of zeros (B, K, height, width); h, w may be traced sizes."""
    batch, count, rows, cols = masks.shape
    right = torch.zeros(batch, count, rows, width - cols, dtype=masks.dtype)
    below = torch.zeros(batch, count, height - rows, width, dtype=masks.dtype)
    return torch.cat([torch.cat([masks, right], dim=3), below], dim=2)


def _linear_activation(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, activation: nn.Module
) -> torch.Tensor:
    """activation(F.linear(x, weight, bias)): x (..., C_in), weight (C_out, C_in), bias (C_out,) -> (..., C_out).

    With an exact GELU on a CPU, outside autograd, tracing, compiling and exporting, one oneDNN product applies the
    bias and the GELU as it writes its output (the values of the two steps; the upscaling's largest tensor is then
    written once, not three times); otherwise the two steps.
    """
    fusable = (
        _ONEDNN_LINEAR
        and type(activation) is nn.GELU
        and activation.approximate == "none"
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == bias.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()  # torch.compile and torch.export (their graphs need the plain ops)
    )
    if fusable:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
    return activation(F.linear(x, weight, bias))


# oneDNN's matrix product with a fused output operation (what torch.compile uses on CPUs), where torch has it.
_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _pixel_weight(conv: nn.ConvTranspose2d) -> torch.Tensor:
    """A kernel-2 stride-2 transposed convolution's weight (C_in, C_out, 2, 2) as a linear layer's (4 * C_out, C_in),
    output features ordered (kernel row, kernel column, channel)."""
    return conv.weight.permute(2, 3, 1, 0).flatten(0, 2)


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
