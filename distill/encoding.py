"""Teacher embeddings of images: the predictor's preprocessing and one encoder batch (shared by both engines)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mobile_sam.modeling import Sam
from mobile_sam.utils.transforms import ResizeLongestSide
from samkit.images import ImageLoadError, load_image


def model_input(model: Sam, image: np.ndarray) -> torch.Tensor:
    """The predictor's preprocessing of an (H, W, 3) uint8 RGB image: longest side to the encoder's input size,
    normalise, zero-pad bottom-right -> (3, S, S) float32 (S = 1024 for the real models, 512 for EfficientViT-SAM's
    L models)."""
    resized = ResizeLongestSide(model.encoder_image_size).apply_image(image)
    tensor = torch.as_tensor(resized, device=model.device).permute(2, 0, 1).float()
    return model.preprocess(tensor)


@torch.no_grad()
def encode_images(model: Sam, images: list[np.ndarray]) -> np.ndarray:
    """Image embeddings (B, C, h, w) float32 for a list of RGB uint8 images (one encoder batch)."""
    batch = torch.stack([model_input(model, image) for image in images])
    return model.image_encoder(batch).float().cpu().numpy()


def load_or_reason(path: Path) -> tuple[np.ndarray | None, str | None]:
    """(image, None) for a readable image, (None, reason) for one that is not."""
    try:
        return load_image(path), None
    except ImageLoadError as err:
        return None, str(err)
