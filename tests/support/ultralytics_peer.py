"""Ultralytics' copy of SAM / MobileSAM driven exactly like the official `SamPredictor`.

Used as the in-project peer for equivalence tests and speed baselines: same weights, the official preprocessing
(written here again, independent of `mobile_sam`), the peer's own image encoder, prompt encoder and mask decoder,
and the official postprocessing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

INPUT_SIDE = 1024


def build_peer_model(model_type: str, state_dict: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """Ultralytics' SAM model of `model_type` ("vit_t" or "vit_b") with `state_dict` loaded strictly."""
    threads = torch.get_num_threads()
    from ultralytics.models.sam import build

    torch.set_num_threads(threads)  # ultralytics changes the thread count on import
    builder = {"vit_t": build.build_mobile_sam, "vit_b": build.build_sam_vit_b}[model_type]
    model = builder()
    model.load_state_dict(dict(state_dict), strict=True)
    return model.eval()


class PeerPredictor:
    """The official predictor's steps over ultralytics' modules (no validation, no extras)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.pixel_mean = torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1)
        self.pixel_std = torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1)

    @torch.no_grad()
    def set_image(self, image: np.ndarray) -> None:
        """Encode an (H, W, 3) uint8 RGB image."""
        height, width = _input_shape(image.shape[:2])
        resized = np.array(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
        resized = torch.as_tensor(resized).permute(2, 0, 1).float()
        self.original_size = image.shape[:2]
        self.input_size = tuple(resized.shape[-2:])
        x = (resized - self.pixel_mean) / self.pixel_std
        x = F.pad(x, (0, 1024 - x.shape[-1], 0, 1024 - x.shape[-2]))[None]
        self.features = self.model.image_encoder(x)

    @torch.no_grad()
    def predict_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs in the 1024 input frame; returns masks (B, C, H, W) bool, scores (B, C), low-res logits."""
        points = (point_coords, point_labels) if point_coords is not None else None
        sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
        low_res, scores = self.model.mask_decoder(
            image_embeddings=self.features,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
        )
        masks = F.interpolate(low_res, (1024, 1024), mode="bilinear", align_corners=False)
        masks = masks[..., : self.input_size[0], : self.input_size[1]]
        masks = F.interpolate(masks, self.original_size, mode="bilinear", align_corners=False)
        return masks > 0.0, scores, low_res

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Official `SamPredictor.predict` steps for one prompt set in original-image pixels."""
        coords = labels = boxes = None
        if point_coords is not None:
            coords = torch.as_tensor(self._to_input(np.asarray(point_coords, float))).float()[None]
            labels = torch.as_tensor(point_labels).int()[None]
        if box is not None:
            corners = self._to_input(np.asarray(box, float).reshape(-1, 2, 2)).reshape(-1, 4)
            boxes = torch.as_tensor(corners).float()
        masks, scores, low_res = self.predict_torch(coords, labels, boxes, multimask_output=multimask_output)
        return masks[0].numpy(), scores[0].numpy(), low_res[0].numpy()

    def _to_input(self, xy: np.ndarray) -> np.ndarray:
        """Original-image XY pixels (..., 2) -> the input frame (the official `apply_coords`)."""
        height, width = self.original_size
        new_h, new_w = _input_shape(self.original_size)
        return xy * np.array([new_w / width, new_h / height])


def _input_shape(size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) with the longest side scaled to INPUT_SIDE, rounded half up (the official `get_preprocess_shape`)."""
    scale = INPUT_SIDE / max(size)
    return int(size[0] * scale + 0.5), int(size[1] * scale + 0.5)
