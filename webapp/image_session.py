"""
Interactive segmentation with an image embedding computed once and reused for every prompt.

`embed_image` runs the image encoder once and keeps the prepared `SamPredictor`; `segment` runs
only the prompt encoder and mask decoder through it. `SamPredictor.predict` only reads the
predictor's state, so one prepared predictor serves any number of threads at once, as long as
nobody calls `set_image` or `reset_image` on it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from mobile_sam.modeling import Sam
from mobile_sam.predictor import SamPredictor
from samkit.prompts import Prompts


@dataclass(frozen=True)
class ImageEmbedding:
    """One encoded image: a predictor with the image set (read-only from now on) and the encoder time."""

    predictor: SamPredictor
    encode_seconds: float

    @property
    def features(self) -> torch.Tensor:
        """The image embedding, 1x256x64x64 on the model's device."""
        return self.predictor.features

    @property
    def original_size(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return tuple(self.predictor.original_size)

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) after resizing the longest side to the encoder size."""
        return tuple(self.predictor.input_size)


@dataclass(frozen=True)
class Segmentation:
    """Masks for one set of prompts."""

    masks: np.ndarray  # KxHxW bool
    scores: np.ndarray  # K float32, predicted IoU
    low_res_logits: np.ndarray  # Kx256x256 float32
    candidates: bool  # True: K alternative masks for one prompt group; False: one mask per group
    unused_points: np.ndarray  # indices of points that fell outside every box (several boxes only)
    decode_seconds: float


def embed_image(model: Sam, image: np.ndarray) -> ImageEmbedding:
    """Encode an HxWx3 uint8 RGB image with model's image encoder (the slow step)."""
    predictor = SamPredictor(model)
    start = time.perf_counter()
    predictor.set_image(image)
    seconds = time.perf_counter() - start
    return ImageEmbedding(predictor=predictor, encode_seconds=seconds)


def segment(embedding: ImageEmbedding, prompts: Prompts, multimask_output: bool = True) -> Segmentation:
    """
    Decode masks for prompts on an encoded image.

    With at most one box, all prompts form one request: multimask_output=True gives the three
    candidate masks, False the single best one. With several boxes each box gives one mask
    (together with the points inside it), and multimask_output is ignored.

    Raises:
      ValueError: the prompts are empty or invalid for the image (see Prompts.validate).
    """
    groups, unused = prompts.checked(embedding.original_size).groups()
    predictor = embedding.predictor
    single = len(groups) == 1
    start = time.perf_counter()
    results = [
        predictor.predict(
            point_coords=group.points if len(group.points) else None,
            point_labels=group.labels if len(group.points) else None,
            box=group.box,
            multimask_output=multimask_output and single,
        )
        for group in groups
    ]
    seconds = time.perf_counter() - start
    return Segmentation(
        masks=np.concatenate([masks for masks, _, _ in results]).astype(bool, copy=False),
        scores=np.concatenate([scores for _, scores, _ in results]).astype(np.float32, copy=False),
        low_res_logits=np.concatenate([logits for _, _, logits in results]).astype(np.float32, copy=False),
        candidates=single and multimask_output,
        unused_points=unused,
        decode_seconds=seconds,
    )
