"""`OnnxPredictor`: `SamPredictor`'s API over ONNX Runtime sessions, with numpy only (no torch).

The encoder and decoder are the files `python -m mobile_sam.onnx export` writes. Outputs match
`SamPredictor.predict` (same shapes, dtypes and prompt handling), within float rounding.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .files import DECODER_INPUTS, ENCODER_INPUT, INSTALL_ONNX, METADATA_KEY, EncoderMetadata

try:
    import onnxruntime as ort
except ImportError as error:  # an optional dependency: say how to get it
    raise ModuleNotFoundError(f"OnnxPredictor needs onnxruntime, which is not installed: {INSTALL_ONNX}") from error

from ..utils.transforms import ResizeLongestSide  # noqa: E402  (after the check above)

# Labels of the prompt tokens in the official decoder graph.
PADDING_LABEL, BOX_TOP_LEFT_LABEL, BOX_BOTTOM_RIGHT_LABEL = -1, 2, 3
POINT_LABELS = (1, 0, PADDING_LABEL)
NUM_MASK_OUTPUTS = 4  # the single-mask output, then the three multimask outputs


class OnnxPredictor:
    """Encode an image once (`set_image`), then predict masks from prompts (`predict`), like `SamPredictor`.

    Args:
        encoder_path: encoder.onnx, with the metadata the exporter stores (preprocessing constants).
        decoder_path: decoder.onnx exported with all four mask outputs (`return_single_mask=False`, the
            default of both exporters).
        providers: ONNX Runtime execution providers (default: CPU).
        session_options: ONNX Runtime session options (threads, graph optimisation level).
    """

    def __init__(
        self,
        encoder_path: str | Path,
        decoder_path: str | Path,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        session_options: ort.SessionOptions | None = None,
    ) -> None:
        self.encoder = ort.InferenceSession(str(encoder_path), session_options, providers=list(providers))
        self.decoder = ort.InferenceSession(str(decoder_path), session_options, providers=list(providers))
        self.metadata = _read_metadata(self.encoder, encoder_path)
        if self.metadata.weights.startswith("random"):
            warnings.warn(
                f"{encoder_path} holds RANDOM weights ({self.metadata.weights}): its masks are meaningless",
                stacklevel=2,
            )
        decoder_inputs = tuple(i.name for i in self.decoder.get_inputs())
        if decoder_inputs != DECODER_INPUTS:
            raise ValueError(
                f"{decoder_path} is not a SAM decoder export: inputs {decoder_inputs}, expected {DECODER_INPUTS}"
            )
        _check_decoder_outputs(self.decoder.get_outputs()[1].shape)
        self.transform = ResizeLongestSide(self.metadata.image_size)
        self.encoder_transform = ResizeLongestSide(self.metadata.encoder_size)
        self._mean = np.asarray(self.metadata.pixel_mean, dtype=np.float32)
        self._std = np.asarray(self.metadata.pixel_std, dtype=np.float32)
        self.reset_image()

    # -- image -------------------------------------------------------------------------------------------
    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Encode an (H, W, 3) uint8 image in RGB or BGR order."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            described = (
                f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            )
            raise ValueError(f"image must be an (H, W, 3) uint8 numpy array, got {described}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"image is empty: shape {image.shape}")
        if image_format not in ("RGB", "BGR"):
            raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        if image_format != self.metadata.image_format:
            image = image[..., ::-1]
        self.reset_image()
        resized = self.encoder_transform.apply_image(np.ascontiguousarray(image))
        self.features = self.encoder.run(None, {ENCODER_INPUT: self._preprocess(resized)})[0]
        self.original_size = (int(image.shape[0]), int(image.shape[1]))
        self.input_size = self.transform.get_preprocess_shape(*self.original_size, self.metadata.image_size)
        self.is_image_set = True

    def _preprocess(self, resized: np.ndarray) -> np.ndarray:
        """(h, w, 3) uint8 with max(h, w) = S, the encoder's size -> normalised, zero-padded (1, 3, S, S) float32."""
        size = self.metadata.encoder_size
        padded = np.zeros((1, 3, size, size), dtype=np.float32)
        height, width = resized.shape[:2]
        padded[0, :, :height, :width] = ((resized.astype(np.float32) - self._mean) / self._std).transpose(2, 0, 1)
        return padded

    def get_image_embedding(self) -> np.ndarray:
        """The current image embedding, (1, 256, 64, 64) float32."""
        self._require_image()
        return self.features

    def reset_image(self) -> None:
        """Forget the current image and its embedding."""
        self.is_image_set = False
        self.features: np.ndarray | None = None
        self.original_size: tuple[int, int] | None = None
        self.input_size: tuple[int, int] | None = None

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
        """Predict masks for one prompt set on the current image, as `SamPredictor.predict`.

        Args:
            point_coords: (N, 2) XY pixel coordinates in the original image; point_labels: (N,) 1 for
                foreground, 0 for background (-1 for padding points).
            box: (4,) XYXY in the original image.
            mask_input: (1, 256, 256) low-res logits from a previous prediction.
            multimask_output: return the three multimask candidates instead of the single-mask output.
            return_logits: return mask logits instead of boolean masks.
        Returns:
            masks (C, H, W) bool (float32 logits with return_logits), scores (C,) predicted IoU and low-res
            logits (C, 256, 256); C = 3 with multimask_output, else 1.
        """
        self._require_image()
        coords, labels = self._prompt_points(point_coords, point_labels, box)
        has_mask = mask_input is not None
        mask = _mask_input(mask_input) if has_mask else np.zeros((1, 1, 256, 256), dtype=np.float32)
        inputs = (
            self.features,
            coords[None],
            labels[None],
            mask,
            np.array([float(has_mask)], dtype=np.float32),
            np.array(self.original_size, dtype=np.float32),
        )
        masks, scores, low_res = self.decoder.run(None, dict(zip(DECODER_INPUTS, inputs)))
        _check_decoder_outputs(scores.shape)
        selected = slice(1, None) if multimask_output else slice(0, 1)
        masks = masks[0, selected]
        if not return_logits:
            masks = masks > self.metadata.mask_threshold
        return masks, scores[0, selected], low_res[0, selected]

    def _prompt_points(
        self, point_coords: np.ndarray | None, point_labels: np.ndarray | None, box: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points then box corners in the input frame, (N', 2) float32, with labels (N',) float32.

        As SAM's prompt encoder does, a padding point is appended when there is no box.
        """
        coords = np.zeros((0, 2), dtype=np.float32)
        labels = np.zeros(0, dtype=np.float32)
        if (point_coords is None) != (point_labels is None):
            raise ValueError("point_coords and point_labels must be given together")
        if point_coords is not None:
            points = _finite("point_coords", point_coords, (-1, 2))
            point_labels = _finite("point_labels", point_labels, (points.shape[0],))
            if not np.isin(point_labels, POINT_LABELS).all():
                # The decoder graph reads labels 2 and 3 as box corners, which SamPredictor does not.
                raise ValueError(f"point_labels must be 1, 0 or -1 (padding), got {np.unique(point_labels).tolist()}")
            coords = self.transform.apply_coords(points, self.original_size).astype(np.float32)
            labels = point_labels.astype(np.float32)
            if box is None:
                coords = np.concatenate([coords, np.zeros((1, 2), dtype=np.float32)])
                labels = np.append(labels, np.float32(PADDING_LABEL))
        if box is not None:
            corners = _finite("box", np.reshape(box, -1), (4,)).reshape(2, 2)
            coords = np.concatenate(
                [coords, self.transform.apply_coords(corners, self.original_size).astype(np.float32)]
            )
            labels = np.append(labels, np.array([BOX_TOP_LEFT_LABEL, BOX_BOTTOM_RIGHT_LABEL], dtype=np.float32))
        return coords, labels

    def _require_image(self) -> None:
        if not self.is_image_set:
            raise RuntimeError("no image is set: call set_image(image) before predicting")


def _read_metadata(session: ort.InferenceSession, path: str | Path) -> EncoderMetadata:
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if text is None:
        raise ValueError(
            f"{path} has no '{METADATA_KEY}' metadata (image size, normalisation): "
            "export it with `python -m mobile_sam.onnx export`"
        )
    return EncoderMetadata.from_json(text)


def _check_decoder_outputs(scores_shape: Sequence[int | str | None]) -> None:
    """The decoder's scores have shape (1, 4): all four outputs, not a single-mask export."""
    outputs = scores_shape[1] if len(scores_shape) == 2 else None
    if isinstance(outputs, int) and outputs != NUM_MASK_OUTPUTS:
        raise ValueError(
            f"the decoder returns {outputs} mask(s) per prompt, OnnxPredictor needs all {NUM_MASK_OUTPUTS}: "
            "export it without --return-single-mask"
        )


def _finite(name: str, values: object, shape: tuple[int, ...]) -> np.ndarray:
    """`values` as a float64 array of `shape` (-1: any length), or a ValueError naming `name`."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != len(shape) or any(s >= 0 and n != s for n, s in zip(array.shape, shape)):
        wanted = ", ".join("N" if s < 0 else str(s) for s in shape)
        raise ValueError(f"{name} must have shape ({wanted}), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _mask_input(mask_input: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask_input, dtype=np.float32)
    if mask.shape != (1, 256, 256):
        raise ValueError(
            f"mask_input must have shape (1, 256, 256) (low-res logits from a previous predict), got {mask.shape}"
        )
    if not np.isfinite(mask).all():
        raise ValueError("mask_input contains NaN or infinite values")
    return mask[None]
