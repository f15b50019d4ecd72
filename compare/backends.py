"""One interface over original SAM, MobileSAM, EfficientViT-SAM and FastSAM: encode an image once, then answer prompts.

Every backend has `name`, `device`, `prepare(image)` (timed as the "encoder"), `segment(prompt)` (timed as the
"decoder") and `parameter_counts()`. A backend is built from an explicit checkpoint path, from the checkpoint
cache (`samkit.loading.load_model`), with random weights (tests, timing), or around a model
that is already built.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from mobile_sam import SamPredictor
from mobile_sam.modeling import Sam
from samkit.devices import resolve_device
from samkit.extras import ULTRALYTICS_USE, require
from samkit.images import to_rgb_uint8
from samkit.loading import load_model
from samkit.models import MOBILE_SAM, PAPER_REFERENCE, SAM_MODELS
from samkit.prompts import Prompts

from .fastsam_rules import DEFAULT_FASTSAM_RULES, check_rules, select_by_box, select_by_points
from .params import ParameterCounts, fastsam_parameter_counts, sam_parameter_counts
from .timing import keep_num_threads, stopwatch

# FastSAM's published inference settings (its README and the ultralytics docs).
FASTSAM_IMAGE_SIZE = 1024
FASTSAM_CONFIDENCE = 0.4
FASTSAM_IOU = 0.9


@dataclass(frozen=True)
class MaskResult:
    """One mask for one prompt: `mask` HxW bool at the original image size, the model's `score` for it, and
    `timings` in milliseconds ({"decoder_ms": ...})."""

    mask: np.ndarray
    score: float
    timings: dict[str, float] = field(default_factory=dict)


class Backend(Protocol):
    """What the comparison needs from a model."""

    name: str
    device: torch.device

    def prepare(self, image: np.ndarray) -> dict[str, float]:
        """Process an HxWx3 uint8 RGB image for the prompts that follow; returns {"encoder_ms": ...}."""
        ...

    def segment(self, prompt: Prompts) -> MaskResult:
        """The mask for one prompt on the prepared image."""
        ...

    def parameter_counts(self) -> ParameterCounts:
        """Encoder / decoder / total parameters."""
        ...


def _check_source(checkpoint: str | Path | None, random_weights: bool, model: nn.Module | None) -> None:
    given = [checkpoint is not None, random_weights, model is not None]
    if sum(given) > 1:
        raise ValueError("give at most one of: checkpoint, random_weights=True, model")


class SamBackend:
    """A SAM-family model (original SAM ViT-B/L/H, EfficientViT-SAM: `samkit.models.SAM_MODELS`) through
    `mobile_sam.SamPredictor`.

    Prompt rule: a single point (no box) asks for three masks (`multimask_output=True`) and keeps the one with
    the highest predicted IoU, as SAM recommends for ambiguous prompts; several points or a box ask for one mask.
    Encoder time covers resizing, normalisation and the image encoder; decoder time covers prompt encoding,
    the mask decoder and upscaling the mask to the original size. Built around a `predictor` whose image is
    already set, it answers prompts on that image without `prepare` (the predictor is then only read).
    """

    model_types: tuple[str, ...] = SAM_MODELS

    def __init__(
        self,
        model_type: str = PAPER_REFERENCE,
        checkpoint: str | Path | None = None,
        *,
        checkpoint_dir: str | Path | None = None,
        download: bool = False,
        random_weights: bool = False,
        model: Sam | None = None,
        device: str | torch.device = "auto",
        name: str | None = None,
        predictor: SamPredictor | None = None,
    ) -> None:
        if predictor is not None:  # an image is already set on it: prepare() is only needed for another image
            model = predictor.model
        if model_type not in self.model_types:
            raise ValueError(f"{type(self).__name__} model_type must be one of {self.model_types}, got {model_type!r}")
        _check_source(checkpoint, random_weights, model)
        if model is not None and not isinstance(model, Sam):
            raise TypeError(f"model must be a mobile_sam.modeling.Sam, got {type(model).__name__}")
        if model is None:
            model = load_model(
                model_type,
                checkpoint=checkpoint,
                checkpoint_dir=checkpoint_dir,
                download=download,
                random_weights=random_weights,
            )
        self.model_type = model_type
        self.name = name or model_type
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.predictor = predictor if predictor is not None else SamPredictor(self.model)

    def prepare(self, image: np.ndarray) -> dict[str, float]:
        """Encode an HxWx3 RGB image (other layouts are converted first, outside the timed region)."""
        rgb = to_rgb_uint8(image)
        with stopwatch(self.device) as elapsed:
            self.predictor.set_image(rgb)
        return {"encoder_ms": elapsed.ms}

    def segment(self, prompt: Prompts) -> MaskResult:
        """The mask for `prompt` (see the class doc for the one-point rule)."""
        if not self.predictor.is_image_set:
            raise RuntimeError("call prepare(image) before segment(prompt)")
        multimask = prompt.box is None and prompt.num_points == 1
        with torch.no_grad(), stopwatch(self.device) as elapsed:
            masks, scores, _ = self.predictor.predict(
                point_coords=prompt.point_coords,
                point_labels=prompt.point_labels,
                box=prompt.box,
                multimask_output=multimask,
            )
        best = int(np.argmax(scores))
        return MaskResult(mask=masks[best], score=float(scores[best]), timings={"decoder_ms": elapsed.ms})

    def parameter_counts(self) -> ParameterCounts:
        """Image encoder / prompt encoder + mask decoder / total."""
        return sam_parameter_counts(self.model)


class MobileSamBackend(SamBackend):
    """MobileSAM: SAM's prompt encoder and mask decoder with the TinyViT image encoder (`samkit.models.MOBILE_SAM`)."""

    model_types = (MOBILE_SAM,)

    def __init__(self, checkpoint: str | Path | None = None, **kwargs) -> None:
        kwargs.setdefault("name", MOBILE_SAM)
        super().__init__(MOBILE_SAM, checkpoint, **kwargs)


def _ultralytics_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index or 0}"
    return device.type


class FastSamBackend:
    """FastSAM (ultralytics YOLOv8-seg): segment everything once, then pick instances per prompt.

    `prepare` is its "encoder": one network pass, NMS and the instance masks at the original image size
    (`retina_masks=True`, `imgsz=1024`, `conf=0.4`, `iou=0.9` as published). `segment` is its "decoder": the
    `rules` ("original" or "ultralytics") of `compare.fastsam_rules` (no network). ultralytics changes torch's
    thread count when it sets up a model; this backend restores the count that was current when it was created
    (or `num_threads`).
    """

    variants = ("s", "x")

    def __init__(
        self,
        variant: str = "x",
        checkpoint: str | Path | None = None,
        *,
        checkpoint_dir: str | Path | None = None,
        download: bool = False,
        random_weights: bool = False,
        model: nn.Module | None = None,
        device: str | torch.device = "auto",
        name: str | None = None,
        image_size: int = FASTSAM_IMAGE_SIZE,
        confidence: float = FASTSAM_CONFIDENCE,
        iou: float = FASTSAM_IOU,
        num_threads: int | None = None,
        rules: str = DEFAULT_FASTSAM_RULES,
    ) -> None:
        self.rules = check_rules(rules)
        if variant not in self.variants:
            raise ValueError(f"FastSAM variant must be one of {self.variants}, got {variant!r}")
        _check_source(checkpoint, random_weights, model)
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(
                f"model must be a torch.nn.Module (an ultralytics SegmentationModel), got {type(model).__name__}"
            )
        self.variant = variant
        self.name = name or f"fastsam-{variant}"
        self.device = resolve_device(device)
        self.num_threads = torch.get_num_threads() if num_threads is None else int(num_threads)
        with keep_num_threads(self.num_threads):
            if model is None:
                model = load_model(
                    f"fastsam-{variant}",
                    checkpoint=checkpoint,
                    checkpoint_dir=checkpoint_dir,
                    download=download,
                    random_weights=random_weights,
                )
            self.model = model.eval()
            self._predictor = self._make_predictor(image_size, confidence, iou)
        self._instances: np.ndarray | None = None
        self._confidences: np.ndarray | None = None

    def _make_predictor(self, image_size: int, confidence: float, iou: float):
        require("ultralytics", ULTRALYTICS_USE)
        from ultralytics.models.fastsam import FastSAMPredictor

        overrides = {
            "task": "segment",
            "mode": "predict",
            "imgsz": image_size,
            "conf": confidence,
            "iou": iou,
            "retina_masks": True,
            "rect": True,
            "batch": 1,
            "device": _ultralytics_device(self.device),
            "verbose": False,
            "save": False,
        }
        predictor = FastSAMPredictor(overrides=overrides)
        predictor.setup_model(self.model, verbose=False)
        return predictor

    def with_rules(self, rules: str) -> FastSamBackend:
        """This backend (its network, predictor and prepared instances shared) answering prompts under `rules`."""
        view = copy.copy(self)
        view.rules = check_rules(rules)
        return view

    @property
    def instances(self) -> np.ndarray:
        """The KxHxW boolean instance masks of the prepared image (K may be 0)."""
        if self._instances is None:
            raise RuntimeError("call prepare(image) before using the instances")
        return self._instances

    def prepare(self, image: np.ndarray) -> dict[str, float]:
        """Segment everything in an HxWx3 RGB image; keeps the instance masks for `segment`."""
        rgb = to_rgb_uint8(image)
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # ultralytics reads numpy images as OpenCV BGR
        h, w = rgb.shape[:2]
        with keep_num_threads(self.num_threads), torch.no_grad(), stopwatch(self.device) as elapsed:
            result = self._predictor(bgr)[0]
            if result.masks is None:
                instances = np.zeros((0, h, w), dtype=bool)
                confidences = np.zeros(0, dtype=np.float64)
            else:
                instances = result.masks.data.bool().cpu().numpy()
                confidences = result.boxes.conf.double().cpu().numpy()
        if instances.shape[1:] != (h, w):
            raise RuntimeError(f"FastSAM returned masks of size {instances.shape[1:]} for a {h}x{w} image")
        self._instances, self._confidences = instances, confidences
        return {"encoder_ms": elapsed.ms}

    def segment(self, prompt: Prompts) -> MaskResult:
        """Select instances for `prompt` (points and box together: the union of both selections).

        The score is the highest detection confidence among the instances the mask overlaps (0.0 when empty).
        """
        instances = self.instances
        with stopwatch(torch.device("cpu")) as elapsed:
            mask = np.zeros(instances.shape[1:], dtype=bool)
            if prompt.point_coords is not None:
                mask |= select_by_points(instances, prompt.point_coords, prompt.point_labels, self.rules)
            if prompt.box is not None:
                mask |= select_by_box(instances, prompt.box, self.rules)
        overlapping = instances[:, mask].any(axis=1) if instances.shape[0] else np.zeros(0, dtype=bool)
        score = float(self._confidences[overlapping].max()) if overlapping.any() else 0.0
        return MaskResult(mask=mask, score=score, timings={"decoder_ms": elapsed.ms})

    def parameter_counts(self) -> ParameterCounts:
        """The whole network as "encoder"; prompt selection has no parameters."""
        return fastsam_parameter_counts(self.model)
