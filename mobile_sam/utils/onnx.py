"""`SamOnnxModel`: SAM's prompt encoder, mask decoder and mask postprocessing as one traceable module.

The official export wrapper's interface: every prompt arrives as a tensor (no optional arguments, no
Python control flow on values), so one exported graph serves points, boxes and mask prompts:

    image_embeddings (1, 256, 64, 64)    from the image encoder
    point_coords     (1, N, 2) float     XY in the 1024 input frame (`ResizeLongestSide.apply_coords`)
    point_labels     (1, N) float        1 foreground, 0 background, 2 / 3 box top-left / bottom-right,
                                         -1 padding (add one (0, 0) point labelled -1 when there is no box)
    mask_input       (1, 1, 256, 256)    low-res logits of a previous prediction (any values if unused)
    has_mask_input   (1,) float          1 to use mask_input, 0 to ignore it
    orig_im_size     (2,) float          (H, W) of the original image

and returns upscaled mask logits (1, K, H, W), scores (1, K) and low-res logits (1, K, 256, 256), with
K = 4 (the single-mask output then the three multimask outputs) or 1 with `return_single_mask`.

`SamLowResOnnxModel` is the same graph cut at the low-res logits, for callers that draw the masks
themselves (the web page's decoder): no mask prompt, no upscaling. It comes in two graphs: `SamImageSideOnnxModel`
runs once per image (the mask decoder's image side, `MaskDecoder.prepare_image`) and `SamLowResOnnxModel` once per
prompt on its outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling import Sam
from ..modeling.factored_tokens import FactoredImage
from ..modeling.transformer import ImageTokens, ProjectedImage

# `return_single_mask` picks the single-mask output from this many points on (padding point included),
# the best-scoring multimask output below it: the official rule.
SINGLE_MASK_MIN_POINTS = 3


class SamOnnxModel(nn.Module):
    """Prompt encoding, mask decoding and postprocessing of `model` for ONNX export (not for direct use).

    Args:
        model: the SAM whose prompt encoder and mask decoder are exported.
        return_single_mask: return only one mask per prompt set: the single-mask output for 3 or more
            points (padding included), else the multimask output with the highest score.
        use_stability_score: score masks by their stability score (offset 1.0) instead of the predicted IoU.
        return_extra_metrics: also return the stability scores and areas of the upscaled masks:
            (masks, scores, stability_scores, areas, low_res_masks).
    """

    def __init__(
        self,
        model: Sam,
        return_single_mask: bool,
        use_stability_score: bool = False,
        return_extra_metrics: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.mask_decoder = model.mask_decoder
        self.img_size = model.image_size
        self.return_single_mask = return_single_mask
        self.use_stability_score = use_stability_score
        self.stability_score_offset = 1.0
        self.return_extra_metrics = return_extra_metrics

    @staticmethod
    def resize_longest_image_size(input_image_size: torch.Tensor, longest_side: int) -> torch.Tensor:
        """(H, W) of an image scaled so its longest side is `longest_side`, rounded half up: (2,) int64."""
        size = input_image_size.to(torch.float32)
        return torch.floor(size * (longest_side / size.max()) + 0.5).to(torch.int64)

    def _embed_points(self, point_coords: torch.Tensor, point_labels: torch.Tensor) -> torch.Tensor:
        """Coordinates (1, N, 2) and labels (1, N) in {-1, 0, 1, 2, 3} -> sparse embeddings (1, N, C)."""
        encoder = self.model.prompt_encoder
        embedding = encoder.pe_layer.forward_with_coords(point_coords + 0.5, encoder.input_image_size)
        labels = point_labels.unsqueeze(-1)
        embedding = torch.where(labels == -1, encoder.not_a_point_embed.weight, embedding)
        for label, offset in enumerate(encoder.point_embeddings):
            embedding = embedding + torch.where(labels == label, offset.weight, 0.0)
        return embedding

    def _embed_masks(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        """mask_input (1, 1, 256, 256) where has_mask_input is 1, else the "no mask" vector: (1, C, 64, 64)."""
        encoder = self.model.prompt_encoder
        no_mask = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return has_mask_input * encoder.mask_downscaling(mask_input) + (1 - has_mask_input) * no_mask

    def mask_postprocessing(self, masks: torch.Tensor, orig_im_size: torch.Tensor) -> torch.Tensor:
        """Low-res logits (1, K, 256, 256) -> (1, K, H, W) for orig_im_size (H, W), as `Sam.postprocess_masks`."""
        masks = F.interpolate(masks, (self.img_size, self.img_size), mode="bilinear", align_corners=False)
        input_size = self.resize_longest_image_size(orig_im_size, self.img_size)
        masks = masks[..., : input_size[0], : input_size[1]]
        original = orig_im_size.to(torch.int64)
        return F.interpolate(masks, size=(original[0], original[1]), mode="bilinear", align_corners=False)

    def select_masks(
        self, masks: torch.Tensor, iou_preds: torch.Tensor, num_points: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep one of the K outputs (1, K, h, w) per prompt set by its predicted IoU (1, K), by the official
        rule (see the class)."""
        best_multimask = iou_preds[:, 1:].argmax(dim=1, keepdim=True) + 1
        index = torch.where(num_points >= SINGLE_MASK_MIN_POINTS, torch.zeros_like(best_multimask), best_multimask)
        gather_masks = index[:, :, None, None].expand(-1, -1, masks.shape[2], masks.shape[3])
        return masks.gather(1, gather_masks), iou_preds.gather(1, index)

    def stability_score(self, masks: torch.Tensor) -> torch.Tensor:
        """`calculate_stability_score` of logits (1, K, H, W) at this model's threshold and offset: (1, K).

        Counted with torch ops only: `calculate_stability_score` counts CPU masks in numpy (faster), which a
        trace records as a constant (the exported graph returned the traced input's scores).
        """
        high = self.model.mask_threshold + self.stability_score_offset
        low = self.model.mask_threshold - self.stability_score_offset
        flat = masks.flatten(-2)
        intersections = (flat > high).to(torch.int32).sum(-1)
        unions = (flat > low).to(torch.int32).sum(-1)
        return intersections / unions

    @torch.no_grad()
    def forward(
        self,
        image_embeddings: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
        orig_im_size: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """See the module docstring for the inputs and outputs."""
        masks, scores = self.mask_decoder.predict_masks(
            image_embeddings=image_embeddings,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=self._embed_points(point_coords, point_labels),
            dense_prompt_embeddings=self._embed_masks(mask_input, has_mask_input),
        )
        threshold = self.model.mask_threshold
        if self.use_stability_score:
            scores = self.stability_score(masks)
        if self.return_single_mask:
            # Counted from the labels, not from a shape, so the exported graph keeps N dynamic.
            num_points = torch.ones_like(point_labels).sum(dim=1, keepdim=True)
            masks, scores = self.select_masks(masks, scores, num_points)
        upscaled_masks = self.mask_postprocessing(masks, orig_im_size)
        if self.return_extra_metrics:
            stability_scores = self.stability_score(upscaled_masks)
            areas = (upscaled_masks > threshold).sum(dim=(-2, -1))
            return upscaled_masks, scores, stability_scores, areas, masks
        return upscaled_masks, scores, masks


class SamImageSideOnnxModel(nn.Module):
    """The mask decoder's image side without a mask prompt, computed once per image (for ONNX export).

    image_embeddings (1, C, 64, 64) -> first_keys, first_values, first_queries (1, heads, 4096, d): the first
    block's image-side projections; then the `FactoredImage` tensors of the later blocks (`FactoredImage.tensors`,
    named in `mobile_sam.onnx.files.IMAGE_SIDE_OUTPUTS`) (`MaskDecoder.prepare_image`).
    """

    def __init__(self, model: Sam) -> None:
        super().__init__()
        self.model = model

    @torch.no_grad()
    def forward(self, image_embeddings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """See the class docstring for the input and outputs."""
        encoder = self.model.prompt_encoder
        dense = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        image = self.model.mask_decoder.prepare_image(image_embeddings, encoder.get_dense_pe(), dense)
        first = image.first_block
        return first.keys, first.values, first.queries, *image.factored.tensors()


class SamLowResOnnxModel(SamOnnxModel):
    """Prompt encoding and mask decoding of `model` on an image side from `SamImageSideOnnxModel`, cut at the low-res
    logits (for ONNX export).

    The image side's outputs as `SamImageSideOnnxModel` gives them, then point_coords (1, N, 2) in the input frame,
    point_labels (1, N) as for `SamOnnxModel`, and input_size (2,) float: the (h, w) of the image resized into the
    input frame -> iou_predictions (1, 4) and low_res_masks (1, 4, 256, 256): all four outputs (the single-mask
    output first), no mask prompt, no resize. Only the low-res logits that `Sam.postprocess_masks` reads for
    input_size are computed (`low_res_extent`, rounded up to whole image tokens); the others are 0.
    `Sam.postprocess_masks` of low_res_masks gives the masks `SamOnnxModel` returns. The positional encoding's
    projections are constants of the graph.
    """

    def __init__(self, model: Sam) -> None:
        super().__init__(model, return_single_mask=False)

    @torch.no_grad()
    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """See the class docstring for the inputs and outputs."""
        *prepared, point_coords, point_labels, input_size = inputs
        transformer = self.mask_decoder.transformer
        pe = self.model.prompt_encoder.get_dense_pe()
        size = (pe.shape[2], pe.shape[3])
        pe = pe.flatten(2).transpose(1, 2)
        first_block = ProjectedImage(*prepared[:3])
        factored = FactoredImage.from_tensors(transformer.depth, tuple(prepared[3:]))
        image = ImageTokens(None, pe, size, first_block, transformer.pe_projections(pe), factored)
        masks, scores = self.mask_decoder.predict_masks_prepared(
            image, self._embed_points(point_coords, point_labels), self._token_extent(input_size, size)
        )
        return scores, masks

    def _token_extent(self, input_size: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The image tokens (rows, cols) under the low-res logits that upsampling to input_size (h, w) reads, as 0-d
        int64 tensors (`mobile_sam.modeling.sam.low_res_extent`, in whole tokens of `upscale` low-res samples)."""
        low_res = self.mask_decoder.upscale_factor * size[0]
        scale = self.img_size // low_res
        samples = torch.clamp(torch.ceil(input_size / scale) + 1, max=low_res)
        tokens = torch.ceil(samples / self.mask_decoder.upscale_factor).to(torch.int64)
        return tokens[0], tokens[1]
