"""Interactive prediction: encode an image once, then decode masks for any number of prompts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .modeling import MaskDecoder, Sam
from .modeling.transformer import ImageTokens
from .utils.mask_resize import MaskResize, threshold_into
from .utils.transforms import ResizeLongestSide

# Point labels the prompt encoder knows: padding (not a point), background, foreground.
POINT_LABELS = (-1, 0, 1)


class ImageNotSetError(RuntimeError):
    """`predict` was called before `set_image`."""


class SamPredictor:
    """Computes the image embedding once (`set_image`) and predicts masks from prompts (`predict`).

    Prompts are passed to the model as given, exactly as by the official `SamPredictor`: points may lie
    outside the image, label -1 marks a padding point, box corners may come in any order and lie outside
    the image. Only prompts that would crash the official code or make it return garbage (NaN or infinite
    values, wrong shapes, unknown labels, predicting before `set_image`) raise, with a clear message.
    Checking and clipping user clicks is the job of `samkit.prompts.Prompts`.
    """

    def __init__(self, sam_model: Sam) -> None:
        self.model = sam_model
        self.transform = ResizeLongestSide(sam_model.image_size)
        self.reset_image()

    # -- image -------------------------------------------------------------------------------------------
    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Encode an (H, W, 3) uint8 image in RGB or BGR order.

        Convert other inputs (PIL images, grayscale, RGBA, 16-bit, float) with `mobile_sam.utils.rgb.to_rgb_uint8`.
        """
        _check_image(image)
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        if image_format != self.model.image_format:
            image = image[..., ::-1]
        # Prompts and masks live in the input frame (`transform`); the image is resized to the encoder's frame,
        # the same one except for EfficientViT-SAM's L models (512).
        encoder_transform = ResizeLongestSide(self.model.encoder_image_size)
        input_image = encoder_transform.apply_image(np.ascontiguousarray(image))
        input_tensor = torch.as_tensor(input_image, device=self.device).permute(2, 0, 1).contiguous()[None]
        self.set_torch_image(input_tensor, image.shape[:2])

    @torch.no_grad()
    def set_torch_image(self, transformed_image: torch.Tensor, original_image_size: tuple[int, ...]) -> None:
        """Encode an image already resized to the encoder's frame: (1, 3, h, w) with max(h, w) =
        `model.encoder_image_size` (1024; 512 for EfficientViT-SAM's L models)."""
        size = self.model.encoder_image_size
        if (
            transformed_image.ndim != 4
            or transformed_image.shape[:2] != (1, 3)
            or max(transformed_image.shape[2:]) != size
        ):
            raise ValueError(
                f"set_torch_image expects a (1, 3, h, w) tensor with longest side {size}, "
                f"got shape {tuple(transformed_image.shape)}; use set_image for raw images"
            )
        self.reset_image()
        self.original_size = tuple(int(v) for v in original_image_size)
        self.input_size = self.model.input_frame_size(tuple(transformed_image.shape[-2:]), self.original_size)
        input_image = self.model.preprocess(transformed_image.to(self.device, torch.float32))
        self.features = self.model.image_encoder(input_image)
        self.dense_pe = self.model.prompt_encoder.get_dense_pe()
        self.is_image_set = True
        self._prepared_image()  # here, not on the first prompt

    def get_image_embedding(self) -> torch.Tensor:
        """The current image embedding, (1, 256, 64, 64)."""
        self._require_image()
        return self.features

    def reset_image(self) -> None:
        """Forget the current image and its embedding."""
        self.is_image_set = False
        self.features: torch.Tensor | None = None
        self.dense_pe: torch.Tensor | None = None
        self._prepared: _PreparedImage | None = None
        self._resize: MaskResize | None = None
        self.original_size: tuple[int, int] | None = None
        self.input_size: tuple[int, int] | None = None

    @property
    def device(self) -> torch.device:
        return self.model.device

    # -- prompts -----------------------------------------------------------------------------------------
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict masks for one prompt set on the current image.

        Args:
            point_coords: (N, 2) XY pixel coordinates in the original image.
            point_labels: (N,) 1 for foreground, 0 for background, -1 for a padding point (ignored).
            box: (4,) XYXY in the original image.
            mask_input: (1, 256, 256) low-res logits from a previous prediction, to refine it.
            multimask_output: return three candidate masks (best for a single ambiguous point).
            return_logits: return mask logits instead of boolean masks.
        Returns:
            masks (C, H, W) bool (float logits with return_logits), scores (C,) predicted IoU, and
            low-res logits (C, 256, 256); C = 3 with multimask_output, else 1.
        """
        self._require_image()
        points = None
        if point_coords is not None or point_labels is not None:
            coords, labels = _check_points(point_coords, point_labels)
            coords = self.transform.apply_coords(coords, self.original_size)
            points = (
                torch.as_tensor(coords, dtype=torch.float, device=self.device)[None],
                torch.as_tensor(labels, dtype=torch.int, device=self.device)[None],
            )
        box_torch = None
        if box is not None:
            box = self.transform.apply_boxes(_check_box(box), self.original_size)
            box_torch = torch.as_tensor(box, dtype=torch.float, device=self.device)
        mask_torch = None
        if mask_input is not None:
            mask_input = _check_mask_input(mask_input, self.model.prompt_encoder.mask_input_size)
            mask_torch = torch.as_tensor(mask_input, dtype=torch.float, device=self.device)[None]

        masks, scores, low_res = self.predict_torch(
            points[0] if points else None,
            points[1] if points else None,
            box_torch,
            mask_torch,
            multimask_output=multimask_output,
            return_logits=return_logits,
        )
        return masks[0].cpu().numpy(), scores[0].float().cpu().numpy(), low_res[0].float().cpu().numpy()

    @torch.no_grad()
    def predict_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predict masks for a batch of B prompt sets, coordinates already in the input frame.

        Args:
            point_coords: (B, N, 2) XY (`transform.apply_coords_torch`); point_labels: (B, N) in {1, 0, -1},
                -1 marking padding points.
            boxes: (B, 4) XYXY (`transform.apply_boxes_torch`); (B, 1, 4) is accepted too.
            mask_input: (B, 1, 256, 256) low-res logits.
        Returns:
            masks (B, C, H, W) at the original size, bool unless return_logits; scores (B, C);
            low-res logits (B, C, 256, 256).
        """
        self._require_image()
        batch = _check_torch_prompts(
            point_coords, point_labels, boxes, mask_input, self.model.prompt_encoder.mask_input_size
        )
        points = (point_coords.to(self.device), point_labels.to(self.device)) if point_coords is not None else None
        sparse, dense = self.model.prompt_encoder(
            points=points,
            boxes=boxes.to(self.device) if boxes is not None else None,
            masks=mask_input.to(self.device) if mask_input is not None else None,
        )
        if sparse.shape[0] != batch:
            raise ValueError("prompt batch sizes disagree")
        prepared = self._prepared_image() if mask_input is None else None
        if prepared is None:
            low_res, scores = self.model.mask_decoder(
                image_embeddings=self.features,
                image_pe=self.dense_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask_output,
            )
        else:
            decoder = self.model.mask_decoder
            scores, hyper_in, image_tokens = decoder.decode_prepared(prepared, sparse, multimask_output)
            low_res = decoder.upscale_masks(hyper_in, image_tokens)
        resize = self._mask_resize(low_res)
        if return_logits:
            if resize is None:
                return self.model.postprocess_masks(low_res, self.input_size, self.original_size), scores, low_res
            return resize.logits(low_res), scores, low_res
        masks = torch.empty((*low_res.shape[:2], *self.original_size), dtype=torch.bool, device=low_res.device)
        if resize is None:
            threshold_into(
                self.model.postprocess_masks(low_res, self.input_size, self.original_size),
                self.model.mask_threshold,
                masks,
            )
        else:
            resize.masks_into(low_res, self.model.mask_threshold, masks)
        return masks, scores, low_res

    def _prepared_image(self) -> ImageTokens | None:
        """The mask decoder's image side for prompts without a mask input (`MaskDecoder.prepare_image`), computed
        once per embedding and reused by every later prompt; None where the decoder must run as a module (a
        subclass that overrides `forward`, or hooks on it).

        The cache is checked against the embedding and positional encoding in use (callers may assign
        `features` themselves) and the weights it was computed from (in-place updates bump their versions).
        Readers in several threads at once at worst compute it twice.
        """
        decoder = self.model.mask_decoder
        if (
            type(decoder).forward is not MaskDecoder.forward
            or decoder._forward_hooks
            or decoder._forward_pre_hooks
            or self.features.shape[0] != 1
        ):
            return None
        weights = (
            *decoder.transformer.parameters(),
            *decoder.output_upscaling.parameters(),
            *self.model.prompt_encoder.no_mask_embed.parameters(),
        )
        versions = (self.features._version, self.dense_pe._version, *(w._version for w in weights))
        cached = self._prepared
        if (
            cached
            and cached.features is self.features
            and cached.dense_pe is self.dense_pe
            and cached.versions == versions
        ):
            return cached.image
        _, dense = self.model.prompt_encoder(points=None, boxes=None, masks=None)
        image = decoder.prepare_image(self.features, self.dense_pe, dense)
        self._prepared = _PreparedImage(self.features, self.dense_pe, versions, image)
        return image

    def _mask_resize(self, low_res: torch.Tensor) -> MaskResize | None:
        """`Sam.postprocess_masks` for the current image as a `MaskResize` (built once per image size); None where
        the model overrides `postprocess_masks`."""
        if type(self.model).postprocess_masks is not Sam.postprocess_masks:
            return None
        low_res_size = low_res.shape[-1]
        scale = self.model.image_size // low_res_size
        key = MaskResize.key_of(low_res_size, scale, self.input_size, self.original_size, low_res.device)
        if self._resize is None or self._resize.key != key:
            self._resize = MaskResize(low_res_size, scale, self.input_size, self.original_size, low_res.device)
        return self._resize

    def _require_image(self) -> None:
        if not self.is_image_set:
            raise ImageNotSetError("no image is set: call set_image(image) before predicting")


@dataclass(frozen=True)
class _PreparedImage:
    """`SamPredictor._prepared_image`'s cache: the tensors and weight versions it was computed from, and the result."""

    features: torch.Tensor
    dense_pe: torch.Tensor
    versions: tuple[int, ...]
    image: ImageTokens


def _check_image(image: object) -> None:
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"image must be a numpy array (H, W, 3) uint8, got {type(image).__name__}; "
            "convert it with mobile_sam.utils.rgb.to_rgb_uint8"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must have shape (H, W, 3), got {image.shape}; "
            "convert grayscale/RGBA images with mobile_sam.utils.rgb.to_rgb_uint8"
        )
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {image.dtype}; convert it with mobile_sam.utils.rgb.to_rgb_uint8")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")


def _check_points(point_coords: np.ndarray | None, point_labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if point_coords is None or point_labels is None:
        raise ValueError("point_coords and point_labels must be given together")
    coords = np.asarray(point_coords, dtype=float)
    labels = np.asarray(point_labels)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"point_coords must have shape (N, 2), got {coords.shape}")
    if labels.shape != (coords.shape[0],):
        raise ValueError(f"point_labels must have shape ({coords.shape[0]},) to match point_coords, got {labels.shape}")
    _check_labels(labels)
    if not np.isfinite(coords).all():
        raise ValueError("point_coords contain NaN or infinite values")
    return coords, labels.astype(np.int64)


def _check_labels(labels: np.ndarray) -> None:
    if not np.isin(labels, POINT_LABELS).all():
        raise ValueError(
            f"point labels must be 1 (foreground), 0 (background) or -1 (padding), got {np.unique(labels).tolist()}"
        )


def _check_box(box: np.ndarray) -> np.ndarray:
    box = np.asarray(box, dtype=float)
    if box.shape not in ((4,), (1, 4)):
        raise ValueError(
            f"box must have shape (4,) as (x0, y0, x1, y1), got {box.shape}; use predict_torch for many boxes"
        )
    if not np.isfinite(box).all():
        raise ValueError("box contains NaN or infinite values")
    return box.reshape(4)


def _check_mask_input(mask_input: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask_input, dtype=np.float32)
    if mask.shape != (1, *size):
        raise ValueError(
            f"mask_input must have shape (1, {size[0]}, {size[1]}) (low-res logits from a previous predict), "
            f"got {mask.shape}"
        )
    if not np.isfinite(mask).all():
        raise ValueError("mask_input contains NaN or infinite values")
    return mask


def _check_torch_prompts(
    point_coords: torch.Tensor | None,
    point_labels: torch.Tensor | None,
    boxes: torch.Tensor | None,
    mask_input: torch.Tensor | None,
    mask_size: tuple[int, int],
) -> int:
    """Validate batched prompts; return the batch size B (1 when there is no prompt at all)."""
    sizes = []
    if (point_coords is None) != (point_labels is None):
        raise ValueError("point_coords and point_labels must be given together")
    if point_coords is not None:
        if point_coords.ndim != 3 or point_coords.shape[-1] != 2:
            raise ValueError(f"point_coords must have shape (B, N, 2), got {tuple(point_coords.shape)}")
        if tuple(point_labels.shape) != tuple(point_coords.shape[:2]):
            raise ValueError(
                f"point_labels must have shape {tuple(point_coords.shape[:2])}, got {tuple(point_labels.shape)}"
            )
        if not torch.isfinite(point_coords).all():
            raise ValueError("point_coords contain NaN or infinite values")
        _check_labels(point_labels.cpu().numpy())
        sizes.append(point_coords.shape[0])
    if boxes is not None:
        if not (boxes.ndim == 2 or (boxes.ndim == 3 and boxes.shape[1] == 1)) or boxes.shape[-1] != 4:
            raise ValueError(f"boxes must have shape (B, 4) or (B, 1, 4), got {tuple(boxes.shape)}")
        if not torch.isfinite(boxes).all():
            raise ValueError("boxes contain NaN or infinite values")
        sizes.append(boxes.shape[0])
    if mask_input is not None:
        if mask_input.ndim != 4 or tuple(mask_input.shape[1:]) != (1, *mask_size):
            raise ValueError(
                f"mask_input must have shape (B, 1, {mask_size[0]}, {mask_size[1]}), got {tuple(mask_input.shape)}"
            )
        if not torch.isfinite(mask_input).all():
            raise ValueError("mask_input contains NaN or infinite values")
        sizes.append(mask_input.shape[0])
    if len(set(sizes)) > 1:
        raise ValueError(f"prompt batch sizes disagree: {sizes}")
    return sizes[0] if sizes else 1
