"""Test helpers for the compare tests: a tiny SAM configuration and a model-free fake backend."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch import nn

from compare.backends import MaskResult
from compare.params import ParameterCounts
from mobile_sam.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from samkit.prompts import Prompts


def tiny_sam(seed: int | None = 0) -> Sam:
    """A SAM with the real code paths but small sizes, random weights: 256x256 input (16x16 embedding), ViT depth 2
    and width 32, 32-channel prompt encoder and mask decoder. `seed` None draws from torch's current RNG state."""
    if seed is not None:
        torch.manual_seed(seed)
    dim = 32
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=256,
            patch_size=16,
            embed_dim=32,
            depth=2,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=dim,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=8,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim, image_embedding_size=(16, 16), input_image_size=(256, 256), mask_in_chans=4
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=dim,
            transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2),
            num_multimask_outputs=3,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
    )
    return sam.eval()


class DiskBackend:
    """A fake backend: the mask is a disk of `radius` px around the first foreground point, or the filled box.

    Counts its `prepare` calls; its timings are tiny but positive.
    """

    def __init__(self, name: str, radius: float) -> None:
        self.name = name
        self.radius = radius
        self.device = torch.device("cpu")
        self.prepare_calls = 0
        self._size: tuple[int, int] | None = None

    def prepare(self, image: np.ndarray) -> dict[str, float]:
        self.prepare_calls += 1
        self._size = image.shape[:2]
        return {"encoder_ms": 1.0}

    def segment(self, prompt: Prompts) -> MaskResult:
        h, w = self._size
        mask = np.zeros((h, w), dtype=bool)
        if prompt.box is not None:
            x0, y0, x1, y1 = np.rint(prompt.box).astype(int)
            mask[y0 : y1 + 1, x0 : x1 + 1] = True
        else:
            x, y = prompt.point_coords[prompt.point_labels == 1][0]
            yy, xx = np.mgrid[0:h, 0:w]
            mask = (xx - x) ** 2 + (yy - y) ** 2 <= self.radius**2
        return MaskResult(mask=mask, score=0.5, timings={"decoder_ms": 0.1})

    def parameter_counts(self) -> ParameterCounts:
        return ParameterCounts(encoder=1, decoder=1, total=2)


def small_image(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """A small RGB uint8 image with a few flat rectangles on noise."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    image[10:50, 20:70] = (200, 40, 40)
    image[55:90, 80:120] = (40, 200, 60)
    return image
