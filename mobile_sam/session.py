"""
Interactive segmentation with an image embedding computed once and reused for every prompt.

`embed_image` runs the image encoder; `segment` runs only the prompt encoder and mask decoder
on a stored embedding, through a fresh `SamPredictor`, so one embedding can serve any number
of threads at once (embeddings and models are only read).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .modeling import Sam
from .predictor import SamPredictor
from .prompts import Prompts


@dataclass(frozen=True)
class ImageEmbedding:
    """The image encoder's output for one image, with the sizes needed to decode masks for it."""

    features: torch.Tensor  # 1x256x64x64, on the model's device
    original_size: tuple[int, int]  # (H, W) of the image
    input_size: tuple[int, int]  # (H, W) after resizing the longest side to the encoder size
    encode_seconds: float


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
    return ImageEmbedding(
        features=predictor.features,
        original_size=tuple(predictor.original_size),
        input_size=tuple(predictor.input_size),
        encode_seconds=seconds,
    )


def segment(model: Sam, embedding: ImageEmbedding, prompts: Prompts, multimask_output: bool = True) -> Segmentation:
    """
    Decode masks for prompts on an encoded image.

    With at most one box, all prompts form one request: multimask_output=True gives the three
    candidate masks, False the single best one. With several boxes each box gives one mask
    (together with the points inside it), and multimask_output is ignored.

    Raises:
      ValueError: the prompts are empty or invalid for the image (see Prompts.validate).
    """
    prompts.validate(embedding.original_size)
    groups, unused = prompts.groups()
    predictor = predictor_for(model, embedding)
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
        masks=np.concatenate([masks for masks, _, _ in results]).astype(bool),
        scores=np.concatenate([scores for _, scores, _ in results]).astype(np.float32),
        low_res_logits=np.concatenate([logits for _, _, logits in results]).astype(np.float32),
        candidates=single and multimask_output,
        unused_points=unused,
        decode_seconds=seconds,
    )


def predictor_for(model: Sam, embedding: ImageEmbedding) -> SamPredictor:
    """A new predictor whose image is already set to a stored embedding (no encoder run)."""
    predictor = SamPredictor(model)
    predictor.features = embedding.features
    predictor.original_size = embedding.original_size
    predictor.input_size = embedding.input_size
    predictor.is_image_set = True
    return predictor
