"""Box sources for object-aware segment everything: detectors that turn an RGB image into box prompts.

A box source has `detect(image) -> Detections`: (N, 4) float64 XYXY boxes in original-image pixels and
their (N,) confidences, highest first. `load_box_source` builds one from a registry name ("fastsam-s",
"fastsam-x": FastSAM, YOLOv8-seg trained on SA-1B; "objectaware": MobileSAMv2's ObjectAwareModel.pt) or
an explicit file, and runs it through ultralytics with MobileSAMv2's published settings (imgsz 1024,
conf 0.4, NMS IoU 0.9, at most 300 boxes). Only boxes are computed: no instance masks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from samkit.checkpoints import load_ultralytics_checkpoint
from samkit.devices import resolve_device
from samkit.images import to_rgb_uint8
from samkit.loading import load_model
from samkit.models import DETECTORS

# MobileSAMv2's published detector settings (its Inference.py and the ultralytics default max_det).
DETECTOR_IMAGE_SIZE = 1024
DETECTOR_CONFIDENCE = 0.4
DETECTOR_IOU = 0.9
MAX_DETECTIONS = 300


@dataclass(frozen=True)
class Detections:
    """Boxes (N, 4) float64 XYXY in original-image pixels and their confidences (N,) float64."""

    boxes: np.ndarray
    scores: np.ndarray


class BoxSource(Protocol):
    """Anything that detects boxes in an (H, W, 3) uint8 RGB image."""

    def detect(self, image: np.ndarray) -> Detections: ...


class UltralyticsBoxSource:
    """An ultralytics YOLOv8 network (detection or segmentation) used as a box detector.

    Runs ultralytics' detection predictor (letterbox to `image_size`, NMS at `confidence` / `iou`, at most
    `max_detections`, boxes scaled back to the original image and clipped to it). Calls are serialised by
    a lock (the ultralytics predictor keeps per-call state). ultralytics changes torch's thread count when
    it sets up a model; the count current before is restored.
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        device: str | torch.device = "auto",
        image_size: int = DETECTOR_IMAGE_SIZE,
        confidence: float = DETECTOR_CONFIDENCE,
        iou: float = DETECTOR_IOU,
        max_detections: int = MAX_DETECTIONS,
    ) -> None:
        from ultralytics.models.yolo.detect import DetectionPredictor
        from ultralytics.nn.tasks import SegmentationModel

        if image_size < 32 or max_detections < 1 or not (0.0 <= confidence <= 1.0) or not (0.0 <= iou <= 1.0):
            raise ValueError("image_size >= 32, max_detections >= 1 and confidence, iou in [0, 1] are required")
        self.device = resolve_device(device)
        self.network = network.to(self.device).eval()
        overrides = {
            # "segment" makes NMS read the class scores only (not the mask coefficients) of YOLOv8-seg outputs.
            "task": "segment" if isinstance(network, SegmentationModel) else "detect",
            "mode": "predict",
            "imgsz": image_size,
            "conf": confidence,
            "iou": iou,
            "max_det": max_detections,
            "rect": True,
            "batch": 1,
            "device": f"cuda:{self.device.index or 0}" if self.device.type == "cuda" else self.device.type,
            "verbose": False,
            "save": False,
        }
        threads = torch.get_num_threads()
        try:
            predictor = DetectionPredictor(overrides=overrides)
            predictor.setup_model(self.network, verbose=False)
        finally:
            torch.set_num_threads(threads)
        if overrides["task"] == "segment":
            # YOLOv8-seg answers (detections, mask prototypes): only the detections go to NMS, as in
            # ultralytics' SegmentationPredictor; no masks are made.
            detect_postprocess = predictor.postprocess
            predictor.postprocess = lambda preds, img, orig_imgs, **kwargs: detect_postprocess(
                preds[0], img, orig_imgs, **kwargs
            )
        self._predictor = predictor
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> Detections:
        """Boxes of an (H, W, 3) uint8 RGB image (other layouts go through `to_rgb_uint8`)."""
        rgb = to_rgb_uint8(image)
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # ultralytics reads numpy images as OpenCV BGR
        threads = torch.get_num_threads()
        with self._lock, torch.no_grad():
            try:
                result = self._predictor(bgr)[0]
            finally:
                torch.set_num_threads(threads)
        boxes = result.boxes
        return Detections(
            boxes.xyxy.double().cpu().numpy().reshape(-1, 4), boxes.conf.double().cpu().numpy().reshape(-1)
        )


def load_box_source(
    name_or_path: str | Path,
    *,
    device: str | torch.device = "auto",
    checkpoint_dir: str | Path | None = None,
    download: bool = False,
    image_size: int = DETECTOR_IMAGE_SIZE,
    confidence: float = DETECTOR_CONFIDENCE,
    iou: float = DETECTOR_IOU,
    max_detections: int = MAX_DETECTIONS,
) -> UltralyticsBoxSource:
    """A detector by catalog name (`samkit.models.DETECTORS`) from the verified checkpoint cache, or from a file.

    Names are loaded by `samkit.loading.load_model` (`checkpoint_dir`, else the default cache; FastSAM is
    downloaded when `download`; ObjectAwareModel.pt has no direct link and must be put there by hand).
    Anything else is taken as the path of an ultralytics checkpoint you trust.
    Raises `samkit.checkpoints.CheckpointError` when the file is missing or unreadable.
    """
    key = str(name_or_path).strip().lower()
    if key in DETECTORS:
        network = load_model(key, checkpoint_dir=checkpoint_dir, download=download)
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ValueError(
                f"unknown detector {str(name_or_path)!r}: give one of {', '.join(DETECTORS)} or a checkpoint file"
            )
        network = load_ultralytics_checkpoint(path)
    return UltralyticsBoxSource(
        network,
        device=device,
        image_size=image_size,
        confidence=confidence,
        iou=iou,
        max_detections=max_detections,
    )
