"""
Segment-everything jobs for a server: checked settings, a cost estimate checked against a budget
before any work, cancellation, reuse of a cached image embedding, and a bounded result cache.

The cost model counts what the generator does (`everything_work`): one image-encoder pass per
crop and one prompt decode per grid point per crop, with mask post-processing that grows with
the crop's pixel count. `EverythingBudget` turns that into estimated seconds on the server with
per-unit costs measured on a 2-core CPU (`benchmarks/bench_app_load.py` prints them again).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torchvision.ops  # noqa: F401  (the jobs' NMS: imported with the app, seconds, not in a visitor's first job)

from everything.box_sources import MAX_DETECTIONS, BoxSource
from everything.objects import ObjectAwareMaskGenerator
from everything.pipelines import BOXES_PIPELINE, GRID_PIPELINE, MOBILESAMV2_PIPELINE, PIPELINES, mobilesamv2_generator
from everything.settings import DEFAULTS, GRID, OBJECTS, rule
from mobile_sam.automatic_mask_generator import SamAutomaticMaskGenerator
from mobile_sam.modeling import Sam
from mobile_sam.predictor import SamPredictor
from mobile_sam.utils.amg import generate_crop_boxes
from mobile_sam.utils.cancel import CancelFlag
from samkit.drawing import overlay_records
from samkit.images import limit_image_side
from samkit.knobs import KnobError, Rule
from samkit.rescaling import rescale_records
from samkit.writers import ImageMasks, coco_dict

from .embedding_cache import EmbeddingCache, image_key
from .image_session import ImageEmbedding

# This server's inclusive range of every setting a user may choose (the UI sliders and the API share them): a policy
# inside the knobs' own rules (`everything.settings.KNOBS`), which every value is checked against first.
LIMITS: dict[str, tuple[float, float]] = {
    "points_per_side": (1, 64),
    "pred_iou_thresh": (0.0, 1.0),
    "stability_score_thresh": (0.0, 1.0),
    "box_nms_thresh": (0.05, 1.0),
    "crop_n_layers": (0, 3),
    "min_mask_region_area": (0, 100_000),
    "input_size": (64, 2048),
}
# The one setting that is not a generator knob: the longest side the image is downscaled to.
INPUT_SIZE = Rule(integer=True, low=1)
POINTS_PER_BATCH = 16  # small batches: cancellation and interactive requests wait at most one batch


class BudgetExceeded(ValueError):
    """A job's estimated cost is over the server's budget (the message says what to lower)."""


@dataclass(frozen=True)
class EverythingSettings:
    """The generator settings a user chooses; build with `checked` to apply the knobs' rules and LIMITS."""

    points_per_side: int = DEFAULTS[GRID]["points_per_side"]
    pred_iou_thresh: float = DEFAULTS[GRID]["pred_iou_thresh"]
    stability_score_thresh: float = DEFAULTS[GRID]["stability_score_thresh"]
    box_nms_thresh: float = DEFAULTS[GRID]["box_nms_thresh"]
    crop_n_layers: int = DEFAULTS[GRID]["crop_n_layers"]
    min_mask_region_area: int = DEFAULTS[GRID]["min_mask_region_area"]
    input_size: int = 1024

    @classmethod
    def checked(cls, **values: Any) -> EverythingSettings:
        """Settings from user values (None keeps the default), each checked by its rule (`everything.settings.rule`)
        and then against this server's LIMITS.

        Raises:
          KnobError (a ValueError): a value of the wrong type, not finite, or out of its range (the message
            names the setting and the range).
        """
        defaults = cls()
        chosen = {}
        for item in fields(cls):
            value = values.get(item.name)
            if value is None:
                value = getattr(defaults, item.name)
            value = (INPUT_SIZE if item.name == "input_size" else rule(GRID, item.name)).check(item.name, value)
            low, high = LIMITS[item.name]
            if not low <= value <= high:
                raise KnobError(f"{item.name} must be in [{low:g}, {high:g}] on this server, got {value!r}")
            chosen[item.name] = value
        return cls(**chosen)

    def generator_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for SamAutomaticMaskGenerator (input_size is applied to the image instead)."""
        kwargs = asdict(self)
        kwargs.pop("input_size")
        return kwargs


@dataclass(frozen=True)
class EverythingWork:
    """What a job will compute: crops encoded, prompts decoded, and decoded-mask megapixels."""

    crops: int
    prompts: int
    mask_megapixels: float  # sum over crops of prompts x crop pixels / 1e6


def everything_work(image_size: tuple[int, int], settings: EverythingSettings, mode: str = GRID) -> EverythingWork:
    """The work of `settings` on an image of (H, W) pixels (after input_size is applied). In OBJECTS mode:
    one encoding and at most MAX_DETECTIONS box prompts (the detector's own pass is counted as one crop)."""
    if mode == OBJECTS:
        return EverythingWork(
            crops=2, prompts=MAX_DETECTIONS, mask_megapixels=MAX_DETECTIONS * image_size[0] * image_size[1] / 1e6
        )
    if mode != GRID:
        raise ValueError(f"Unknown segment-everything mode {mode!r}; expected {GRID!r} or {OBJECTS!r}.")
    crop_boxes, layers = generate_crop_boxes(
        tuple(image_size), settings.crop_n_layers, DEFAULTS[GRID]["crop_overlap_ratio"]
    )
    per_crop = settings.points_per_side**2  # crop_n_points_downscale_factor keeps its default, 1
    megapixels = sum(per_crop * (x1 - x0) * (y1 - y0) / 1e6 for x0, y0, x1, y1 in crop_boxes)
    return EverythingWork(crops=len(crop_boxes), prompts=per_crop * len(crop_boxes), mask_megapixels=megapixels)


@dataclass(frozen=True)
class EverythingBudget:
    """The most work one job may do, as estimated seconds, with per-unit costs of the server's CPU.

    The default unit costs are MobileSAM's on a 2-core CPU: 64 points per side with one crop layer
    (5 crops, 20,480 prompts) on a 451x300 photo took 763 s (37 ms per prompt, mask filtering
    included); max_seconds is what one job may take there.
    """

    max_seconds: float
    encode_seconds: float = 1.0  # one 1024x1024 TinyViT pass
    decode_seconds: float = 0.035  # one prompt through the prompt encoder and mask decoder
    megapixel_seconds: float = 0.015  # upsampling and filtering one decoded megapixel of mask

    def estimate(self, work: EverythingWork) -> float:
        """Estimated seconds for work."""
        return (
            work.crops * self.encode_seconds
            + work.prompts * self.decode_seconds
            + work.mask_megapixels * self.megapixel_seconds
        )

    def check(self, image_size: tuple[int, int], settings: EverythingSettings, *modes: str) -> float:
        """The estimate for settings on an (H, W) image, summed over the jobs of `modes` (default one grid job,
        e.g. GRID, OBJECTS for a comparison of two pipelines); raises BudgetExceeded above max_seconds."""
        works = [everything_work(image_size, settings, mode) for mode in modes or (GRID,)]
        seconds = sum(self.estimate(work) for work in works)
        if seconds > self.max_seconds:
            prompts, crops = sum(work.prompts for work in works), sum(work.crops for work in works)
            jobs = f" in {len(works)} jobs" if len(works) > 1 else ""
            raise BudgetExceeded(
                f"This job is too large for this server: {prompts:,} prompts on {crops} crop(s){jobs} of a "
                f"{image_size[1]}x{image_size[0]} image, estimated {seconds:.0f} s, over the limit of "
                f"{self.max_seconds:.0f} s. Lower the points per side, the crop layers or the input size."
            )
        return seconds


@dataclass(frozen=True)
class EverythingResult:
    """One finished job: COCO-RLE records (shareable, small), the overlay, how long it took and the pipeline that
    made it (`everything.pipelines`)."""

    records: list[dict[str, Any]]  # segmentation as COCO RLE with str counts
    overlay: np.ndarray  # hxwx3 uint8 at working_size, seeded colours and contours (a preview)
    image_size: tuple[int, int]  # (H, W) the masks refer to: the output_size asked for, else working_size
    seconds: float
    estimated_seconds: float
    working_size: tuple[int, int]  # (h, w) of the image the generator segmented
    pipeline: str = GRID_PIPELINE

    def coco(self, file_name: str) -> dict[str, Any]:
        """The COCO dataset dict of the records (samkit.writers.coco_dict), its "info" naming the pipeline."""
        height, width = self.image_size
        return coco_dict([ImageMasks(file_name, height, width, self.records)], {"pipeline": self.pipeline})


class EmbeddingPredictor(SamPredictor):
    """A SamPredictor that takes an already computed embedding when asked to encode the same image."""

    def __init__(self, model: Sam, embedding: ImageEmbedding, key: str) -> None:
        super().__init__(model)
        self._embedding, self._key = embedding, key

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        if image_format == "RGB" and image_key(image) == self._key:
            image_state = vars(self._embedding.predictor)
            self.__dict__.update({k: v for k, v in image_state.items() if k not in ("model", "transform")})
            return
        super().set_image(image, image_format)


def prepare_image(image: np.ndarray, settings: EverythingSettings) -> np.ndarray:
    """The HxWx3 uint8 image the generator sees: longest side limited to settings.input_size."""
    return limit_image_side(image, settings.input_size)[0]


def job_generator(
    model: Sam, settings: EverythingSettings, pipeline: str, box_source: BoxSource | None = None
) -> SamAutomaticMaskGenerator | ObjectAwareMaskGenerator:
    """A job's generator, COCO-RLE output, in small batches: the grid's with `settings`; "mobilesamv2" at its
    published settings; "mobilesam-boxes" (of the settings only min_mask_region_area applies)."""
    if pipeline not in PIPELINES:
        raise ValueError(f"Unknown pipeline {pipeline!r}; expected one of {', '.join(PIPELINES)}.")
    if pipeline == MOBILESAMV2_PIPELINE:  # batches change progress steps and memory, not masks
        return mobilesamv2_generator(model, box_source, boxes_per_batch=POINTS_PER_BATCH, output_mode="coco_rle")
    if pipeline == BOXES_PIPELINE:
        return ObjectAwareMaskGenerator(
            model,
            box_source,
            boxes_per_batch=POINTS_PER_BATCH,
            output_mode="coco_rle",
            min_mask_region_area=settings.min_mask_region_area,
        )
    return SamAutomaticMaskGenerator(
        model, points_per_batch=POINTS_PER_BATCH, output_mode="coco_rle", **settings.generator_kwargs()
    )


def run_everything(
    model: Sam,
    image: np.ndarray,
    settings: EverythingSettings,
    *,
    budget: EverythingBudget | None = None,
    embedding: ImageEmbedding | None = None,
    box_source: BoxSource | None = None,
    pipeline: str | None = None,
    cancel: CancelFlag | None = None,
    progress: Callable[[float], None] | None = None,
    output_size: tuple[int, int] | None = None,
) -> EverythingResult:
    """
    Segment everything in an hxwx3 uint8 image (already limited with prepare_image): with the
    official point grid, or, given a box_source, with the object-aware generator (one box prompt per
    detection): `pipeline` "mobilesamv2" (a MobileSAMv2 model and detector, its published settings) or
    "mobilesam-boxes" (the default; of the settings only min_mask_region_area applies). With output_size
    (H, W), the masks are given in the pixels of that copy of the image, e.g. the uploaded one
    (`samkit.rescaling.rescale_records`: nearest neighbour at pixel centres); the overlay stays at (h, w).

    The budget is checked before any work. An embedding of exactly this image (from the
    interactive tab's cache) skips the grid generator's image encoder.

    Raises:
      BudgetExceeded: over budget.
      Cancelled: cancel was set.
    """
    budget = budget or EverythingBudget(max_seconds=math.inf)
    estimated = budget.check(image.shape[:2], settings, GRID if box_source is None else OBJECTS)
    pipeline = GRID_PIPELINE if box_source is None else pipeline or BOXES_PIPELINE
    generator = job_generator(model, settings, pipeline, box_source)
    if box_source is None and embedding is not None and tuple(embedding.original_size) == tuple(image.shape[:2]):
        generator.predictor = EmbeddingPredictor(model, embedding, image_key(image))
    start = time.perf_counter()
    records = generator.generate(image, progress=progress, cancel=cancel)
    overlay = overlay_records(image, records, seed=0)
    working_size = tuple(image.shape[:2])
    image_size = working_size if output_size is None else tuple(int(v) for v in output_size)
    if image_size != working_size:
        records = rescale_records(records, working_size, image_size, cancel=cancel)
    seconds = time.perf_counter() - start
    return EverythingResult(records, overlay, image_size, seconds, estimated, working_size, pipeline)


class ResultCache:
    """Finished jobs by (image content, settings, model key): at most max_items, least recently used out."""

    def __init__(self, max_items: int = 4) -> None:
        self._cache: EmbeddingCache[EverythingResult] = EmbeddingCache(max_items)

    @staticmethod
    def key(image: np.ndarray, settings: EverythingSettings, model_key: Any) -> tuple:
        return (image_key(image), settings, model_key)

    def get(self, key: tuple) -> EverythingResult | None:
        return self._cache.get(key)

    def get_or_run(self, key: tuple, run: Callable[[], EverythingResult]) -> tuple[EverythingResult, bool]:
        """The cached result for key, or run() stored under it; (result, came from the cache)."""
        return self._cache.get_or_compute(key, run)

    def __len__(self) -> int:
        return len(self._cache)
