"""Box sources for object-aware segment everything: detectors that turn an RGB image into box prompts.

A box source has `detect(image) -> Detections`: (N, 4) float64 XYXY boxes in original-image pixels and
their (N,) confidences, highest first. `load_box_source` builds one from a registry name ("fastsam-s",
"fastsam-x": FastSAM, YOLOv8-seg trained on SA-1B; "objectaware": MobileSAMv2's ObjectAwareModel.pt) or
an explicit file, and runs it through ultralytics with MobileSAMv2's published settings (imgsz 1024,
conf 0.4, NMS IoU 0.9, at most 300 boxes). Only boxes are computed: no instance masks.

`ObjectAwareBoxSource` runs MobileSAMv2's ObjectAwareModel.pt exactly as its `Inference.py` does (with the
ultralytics 8.0.120 bundled in that repository), quirks included; see its docstring.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from samkit.checkpoints import load_ultralytics_checkpoint
from samkit.devices import resolve_device
from samkit.extras import ULTRALYTICS_USE, require
from samkit.images import to_rgb_uint8
from samkit.loading import load_model
from samkit.models import DETECTORS

# MobileSAMv2's published detector settings (its Inference.py and the ultralytics default max_det).
DETECTOR_IMAGE_SIZE = 1024
DETECTOR_CONFIDENCE = 0.4
DETECTOR_IOU = 0.9
MAX_DETECTIONS = 300
# MobileSAMv2's border snap (its PromptModelPredictor): pixels of the detector's letterboxed input frame.
OBJECTAWARE_BORDER_SNAP = 20


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
    it sets up a model; the count current before is restored. The network is used in place, not copied: its
    Conv + BatchNorm pairs are fused (for inference only from then on).
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
        require("ultralytics", ULTRALYTICS_USE)
        from ultralytics.nn.tasks import SegmentationModel

        _check_settings(image_size, confidence, iou, max_detections)
        self.device = resolve_device(device)
        network = _with_prototypes(network).to(self.device).eval()
        # "segment" makes NMS read the class scores only (not the mask coefficients) of YOLOv8-seg outputs.
        task = "segment" if isinstance(network, SegmentationModel) else "detect"
        predictor = _detection_predictor(network, self.device, task, image_size, confidence, iou, max_detections)
        if task == "segment":
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


class ObjectAwareBoxSource:
    """MobileSAMv2's object-aware detector (ObjectAwareModel.pt, a YOLOv8 network), run exactly as its
    `Inference.py` runs it: `ObjectAwareModel(path)(image, retina_masks=True, imgsz=1024, conf=0.4, iou=0.9)`,
    whose `PromptModelPredictor` is a detection predictor of the ultralytics 8.0.120 bundled in the official
    repository. The network runs through the pinned ultralytics (letterbox, preprocessing, forward); what the
    official predictor does differently is reproduced here:

    - Conv + BatchNorm pairs are fused with ultralytics 8.0.120's formula (its predictor fuses them; the pinned
      ultralytics' formula rounds differently) and the network is kept in PyTorch's default memory format (the
      pinned ultralytics switches CPUs to channels-last, whose convolutions round differently too): either
      difference alone moves the boxes slightly;
    - NMS as in 8.0.120: candidates over `confidence` by their best class, sorted by confidence, class-aware
      torchvision NMS at `iou` (classes offset by 7680 px; `agnostic_nms` off, no class filter, `nc` the number
      of the model's class names), the first `max_detections` kept;
    - Official quirk, the border snap: box sides within `border_snap` (20) px of the border of the detector's
      letterboxed input (e.g. 1024 x 704 for a 3:2 photo, padding included) are moved onto it, before the boxes
      are scaled back to the image (so 20 px there is 20 / scale px of the original, about 35 px at 1800 px);
    - Official quirk, the pad: boxes are scaled back with 8.0.120's `scale_boxes`, whose padding is rounded as
      round(pad - 0.1) while the letterbox put round(pad - 0.1) of the *halved* odd padding on top: for
      1800 x 1200 (letterboxed to 1024 x 683 + 10 + 11 px) it removes 11 px where 10 were added, so boxes sit
      1.76 px higher than the detector saw them; then they are clipped to the image;
    - Official quirk, the colours: `Inference.py` hands the detector its RGB image, which ultralytics takes as
      OpenCV's BGR: the network sees the channels swapped. `swap_channels=True` (default) reproduces that;
      False gives the network the image the right way round (not the published behaviour);
    - MobileSAMv2's bundled ultralytics removed the Segment head's mask prototypes (its `Proto` module); the
      pinned ultralytics calls them, so a head without them gets a stand-in that computes nothing (only boxes
      are used; `UltralyticsBoxSource` does the same);
    - the official predictor returns nothing when nothing is detected (and `Inference.py` then fails); here
      `detect` returns empty `Detections`.

    Calls are serialised by a lock; torch's thread count is restored after ultralytics changes it. The network is
    used in place, not copied (fused as above: for inference only from then on).
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
        border_snap: float = OBJECTAWARE_BORDER_SNAP,
        swap_channels: bool = True,
    ) -> None:
        _check_settings(image_size, confidence, iou, max_detections)
        if border_snap < 0:
            raise ValueError(f"border_snap must be >= 0, got {border_snap}")
        self.device = resolve_device(device)
        network = _with_prototypes(fuse_conv_bn_as_ultralytics_8_0(network)).to(self.device).eval()
        self.confidence, self.iou, self.max_detections = confidence, iou, max_detections
        self.border_snap = float(border_snap)
        self.swap_channels = swap_channels
        self.names = network.names
        # ultralytics 8.0.120 kept the network in PyTorch's default memory format.
        self._predictor = _detection_predictor(
            network, self.device, "detect", image_size, confidence, iou, max_detections, channels_last=False
        )
        self._predictor.postprocess = self._postprocess
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> Detections:
        """Boxes of an (H, W, 3) uint8 RGB image (other layouts go through `to_rgb_uint8`), highest confidence first."""
        rgb = to_rgb_uint8(image)
        # ultralytics reads numpy images as OpenCV BGR; Inference.py passes RGB (see swap_channels).
        array = rgb if self.swap_channels else np.ascontiguousarray(rgb[..., ::-1])
        threads = torch.get_num_threads()
        with self._lock, torch.no_grad():
            try:
                result = self._predictor(array)[0]
            finally:
                torch.set_num_threads(threads)
        boxes = result.boxes
        return Detections(
            boxes.xyxy.double().cpu().numpy().reshape(-1, 4), boxes.conf.double().cpu().numpy().reshape(-1)
        )

    def _postprocess(self, preds, img: torch.Tensor, orig_imgs: list[np.ndarray], **kwargs) -> list:
        """The official PromptModelPredictor.postprocess, for one image: NMS, snap, scale back."""
        from ultralytics.engine.results import Results

        prediction = preds[0][0] if isinstance(preds[0], (tuple, list)) else preds[0]  # (1, 4 + nc + nm, anchors)
        found = official_nms(prediction[0], self.confidence, self.iou, self.max_detections, len(self.names))
        boxes = found[:, :4]
        if self.border_snap > 0:
            snap_to_border(boxes, tuple(img.shape[2:]), self.border_snap)
        orig_img = orig_imgs[0]
        found[:, :4] = official_scale_boxes(tuple(img.shape[2:]), boxes, orig_img.shape[:2])
        return [Results(orig_img, path="", names=self.names, boxes=found[:, :6])]


class _NoPrototypes(nn.Module):
    """Stands in for the mask prototypes that MobileSAMv2's Segment head lacks; the pinned ultralytics calls them."""

    def forward(self, x: torch.Tensor) -> None:
        return None


def _with_prototypes(network: nn.Module) -> nn.Module:
    """`network`, its Segment head given a `_NoPrototypes` if it has no mask prototypes (MobileSAMv2's bundled
    ultralytics removed them), in place."""
    layers = getattr(network, "model", None)
    head = layers[-1] if isinstance(layers, nn.Sequential) and len(layers) > 0 else None
    if head is not None and hasattr(head, "nm") and not hasattr(head, "proto"):
        head.proto = _NoPrototypes()
    return network


def official_nms(prediction: torch.Tensor, confidence: float, iou: float, max_det: int, nc: int) -> torch.Tensor:
    """ultralytics 8.0.120's `non_max_suppression` for one image, as MobileSAMv2's predictor calls it.

    prediction (4 + nc + nm, A): centre-size boxes, class scores, mask coefficients per anchor ->
    (K, 6 + nm) rows XYXY, confidence, class, coefficients, by confidence, K <= max_det.
    """
    from torchvision.ops import nms

    rows = prediction.transpose(0, 1)
    rows = rows[rows[:, 4 : 4 + nc].amax(1) > confidence]
    box, scores, extra = rows.split((4, nc, rows.shape[1] - 4 - nc), 1)
    centre, half = box[:, :2], box[:, 2:] / 2
    box = torch.cat((centre - half, centre + half), 1)
    best, cls = scores.max(1, keepdim=True)
    rows = torch.cat((box, best, cls.float(), extra), 1)[best.view(-1) > confidence]
    rows = rows[rows[:, 4].argsort(descending=True)[:30000]]
    offsets = rows[:, 5:6] * 7680  # class-aware NMS: each class far from the others
    keep = nms(rows[:, :4] + offsets, rows[:, 4], iou)[:max_det]
    return rows[keep]


def snap_to_border(boxes: torch.Tensor, frame: tuple[int, int], threshold: float) -> None:
    """Move box sides (N, 4) XYXY within `threshold` of the border of a (height, width) frame onto it, in place."""
    height, width = frame
    boxes[:, 0] = torch.where(boxes[:, 0] < threshold, 0.0, boxes[:, 0])
    boxes[:, 1] = torch.where(boxes[:, 1] < threshold, 0.0, boxes[:, 1])
    boxes[:, 2] = torch.where(boxes[:, 2] > width - threshold, float(width), boxes[:, 2])
    boxes[:, 3] = torch.where(boxes[:, 3] > height - threshold, float(height), boxes[:, 3])


def official_scale_boxes(letterboxed: tuple[int, int], boxes: torch.Tensor, original: tuple[int, int]) -> torch.Tensor:
    """ultralytics 8.0.120's `scale_boxes`: boxes (N, 4) XYXY in a letterboxed (h, w) frame -> the original
    (H, W) image, clipped to it. Its padding is round(pad / 2 - 0.1) on both axes (see ObjectAwareBoxSource)."""
    gain = min(letterboxed[0] / original[0], letterboxed[1] / original[1])
    pad_x = round((letterboxed[1] - original[1] * gain) / 2 - 0.1)
    pad_y = round((letterboxed[0] - original[0] * gain) / 2 - 0.1)
    boxes = boxes.clone()
    boxes[:, [0, 2]] -= pad_x
    boxes[:, [1, 3]] -= pad_y
    boxes /= gain
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, original[1])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, original[0])
    return boxes


def fuse_conv_bn_as_ultralytics_8_0(network: nn.Module) -> nn.Module:
    """Fold each ultralytics Conv's BatchNorm into its convolution, in place, with ultralytics 8.0.120's arithmetic
    (weight x gamma / sqrt(var + eps); bias beta - gamma x mean / sqrt(var + eps)), as its predictor does."""
    for module in network.modules():
        conv, norm = getattr(module, "conv", None), getattr(module, "bn", None)
        if not (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and hasattr(module, "forward_fuse")):
            continue
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            kernel_size=conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=True,
        ).requires_grad_(False)
        with torch.no_grad():
            scale = norm.weight.div(torch.sqrt(norm.eps + norm.running_var))
            fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            bias = norm.bias - norm.weight.mul(norm.running_mean).div(torch.sqrt(norm.running_var + norm.eps))
            fused.bias.copy_(bias if conv.bias is None else scale * conv.bias + bias)
        module.conv = fused
        del module.bn
        module.forward = module.forward_fuse
    return network


def _check_settings(image_size: int, confidence: float, iou: float, max_detections: int) -> None:
    if image_size < 32 or max_detections < 1 or not (0.0 <= confidence <= 1.0) or not (0.0 <= iou <= 1.0):
        raise ValueError("image_size >= 32, max_detections >= 1 and confidence, iou in [0, 1] are required")


def _detection_predictor(
    network: nn.Module,
    device: torch.device,
    task: str,
    image_size: int,
    confidence: float,
    iou: float,
    max_detections: int,
    channels_last: bool | None = None,
) -> Callable:
    """ultralytics' DetectionPredictor set up on `network` (letterboxed to the smallest stride-32 rectangle around
    an `image_size` resize, as ultralytics' and MobileSAMv2's predictors do); torch's thread count is kept.

    channels_last: the network's memory format (None: ultralytics chooses, channels-last on x86 CPUs); the
    convolutions round differently in each."""
    require("ultralytics", ULTRALYTICS_USE)
    import torchvision  # noqa: F401  (ultralytics imports it in its first call: seconds, paid here with the model)
    from ultralytics.models.yolo.detect import DetectionPredictor
    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.utils.torch_utils import select_device

    overrides = {
        "task": task,
        "mode": "predict",
        "imgsz": image_size,
        "conf": confidence,
        "iou": iou,
        "max_det": max_detections,
        "rect": True,
        "batch": 1,
        "device": f"cuda:{device.index or 0}" if device.type == "cuda" else device.type,
        "verbose": False,
        "save": False,
        "channels_last": channels_last,
    }
    threads = torch.get_num_threads()
    try:
        predictor = DetectionPredictor(overrides=overrides)
        # What `predictor.setup_model(network)` does, but on `network` itself: setup_model runs on a deep copy,
        # which would hold a second copy of the weights (287 MB for a YOLOv8-x) for as long as the predictor lives.
        predictor.model = AutoBackend(
            model=network,
            device=select_device(predictor.args.device, verbose=False),
            dnn=predictor.args.dnn,
            data=predictor.args.data,
            fp16=predictor.args.quantize == 16,
            channels_last=channels_last,
            fuse=True,
            verbose=False,
            end2end=predictor.args.nms is False,
        ).eval()
        predictor.device = predictor.model.device
    finally:
        torch.set_num_threads(threads)
    return predictor


def load_box_source(
    name_or_path: str | Path,
    *,
    device: str | torch.device = "auto",
    checkpoint_dir: str | Path | None = None,
    download: bool = False,
    random_weights: bool = False,
    seed: int | None = None,
    image_size: int = DETECTOR_IMAGE_SIZE,
    confidence: float = DETECTOR_CONFIDENCE,
    iou: float = DETECTOR_IOU,
    max_detections: int = MAX_DETECTIONS,
) -> UltralyticsBoxSource | ObjectAwareBoxSource:
    """A detector by catalog name (`samkit.models.DETECTORS`) from the verified checkpoint cache, or from a file.

    Names are loaded by `samkit.loading.load_model` (`checkpoint_dir`, else the default cache; FastSAM is
    downloaded when `download`; ObjectAwareModel.pt has no direct link and must be put there by hand).
    "objectaware" gives an `ObjectAwareBoxSource` (MobileSAMv2's processing, its border snap included: decode
    its boxes with `border_snap=0`); the others and files an `UltralyticsBoxSource`.
    Anything else is taken as the path of an ultralytics checkpoint you trust. `random_weights`: a catalog name's
    network with random weights (drawn with `seed`; no file needed, its boxes are meaningless).
    Raises `samkit.checkpoints.CheckpointError` when the file is missing or unreadable.
    """
    key = str(name_or_path).strip().lower()
    if key in DETECTORS:
        network = load_model(
            key, checkpoint_dir=checkpoint_dir, download=download, random_weights=random_weights, seed=seed
        )
    elif random_weights:
        raise ValueError(f"random weights need a detector's catalog name ({', '.join(DETECTORS)}), not a file")
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ValueError(
                f"unknown detector {str(name_or_path)!r}: give one of {', '.join(DETECTORS)} or a checkpoint file"
            )
        network = load_ultralytics_checkpoint(path)
    source = ObjectAwareBoxSource if key == "objectaware" else UltralyticsBoxSource
    return source(
        network,
        device=device,
        image_size=image_size,
        confidence=confidence,
        iou=iou,
        max_detections=max_detections,
    )
