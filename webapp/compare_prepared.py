"""
Comparing models on one image for an interactive server: backends prepared once per image and
kept in a bounded cache, then `run_comparison` on the user's prompts with progress and cancellation.

The slow step of a comparison is `prepare` (each model's image encoder). `PreparedBackends` keeps
the prepared backends of the last few (image, model) pairs, so a second comparison on the same
image, with other prompts, runs no encoder.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compare.backends import Backend, FastSamBackend, MaskResult
from compare.fastsam_rules import DEFAULT_FASTSAM_RULES, check_rules
from compare.models import architecture_parameter_counts
from compare.params import ParameterCounts
from compare.runner import ProtocolSpec, run_comparison
from mobile_sam.utils.cancel import CancelFlag, raise_if_cancelled
from samkit.metrics import mean_iou
from samkit.prompts import Prompts

from .embedding_cache import EmbeddingCache, image_key

IMAGE_NAME = "image"
# Called as prepare(model name, variant, image) -> (backend with the image prepared, encoder ms).
Prepare = Callable[[str, Hashable, np.ndarray], tuple[Backend, float]]


@dataclass(frozen=True)
class ModelRow:
    """One model's line of an image comparison; the numbers are None when the model could not run."""

    model: str
    role: str  # "reference" or "compared"
    miou: float | None  # mean IoU with the reference's masks (None for the reference itself)
    encoder_ms: float | None  # the first (cached) encoding of this image
    decoder_ms: float | None  # mean per prompt
    total_ms: float | None  # encoder + every prompt
    status: str  # "ok" or why the model did not run


@dataclass(frozen=True)
class ImageComparison:
    """Rows (the reference first) and, per model that ran, one HxW bool mask per prompt."""

    rows: list[ModelRow]
    masks: dict[str, list[np.ndarray]]


class PreparedBackends:
    """The last max_items prepared backends by (image content, model name, variant)."""

    def __init__(self, prepare: Prepare, max_items: int = 4) -> None:
        self._prepare = prepare
        self._cache: EmbeddingCache[tuple[Backend, float]] = EmbeddingCache(max_items)

    def get(self, name: str, variant: Hashable, image: np.ndarray) -> tuple[Backend, float]:
        """The backend for name with image prepared, and the encoder ms of its first preparation."""
        key = (image_key(image), name, variant)
        return self._cache.get_or_compute(key, lambda: self._prepare(name, variant, image))[0]


class _Prepared:
    """A Backend view of an already prepared backend: `prepare` reports the cached encoder time; FastSAM answers
    under `fastsam_rules`."""

    def __init__(self, backend: Backend, encoder_ms: float, fastsam_rules: str = DEFAULT_FASTSAM_RULES) -> None:
        if isinstance(backend, FastSamBackend):
            backend = backend.with_rules(fastsam_rules)
        self.name, self.device = backend.name, backend.device
        self._backend, self._encoder_ms = backend, encoder_ms

    def prepare(self, image: np.ndarray) -> dict[str, float]:
        return {"encoder_ms": self._encoder_ms}

    def segment(self, prompt: Prompts) -> MaskResult:
        return self._backend.segment(prompt)

    def parameter_counts(self) -> ParameterCounts:
        return _parameter_counts(self.name)


@functools.cache
def _parameter_counts(name: str) -> ParameterCounts:
    return architecture_parameter_counts(name)


def compare_on_image(
    image: np.ndarray,
    prompts: Sequence[Prompts],
    reference: str,
    models: Sequence[str],
    prepared: PreparedBackends,
    variant: Hashable = None,
    *,
    cancel: CancelFlag | None = None,
    progress: Callable[[float, str], None] | None = None,
    unavailable: tuple[type[BaseException], ...] = (),
    fastsam_rules: str = DEFAULT_FASTSAM_RULES,
) -> ImageComparison:
    """
    Run prompts (one mask each) on an HxWx3 uint8 image with the reference and every model.

    Models are prepared one by one (cancel is checked between them); a compared model whose
    preparation raises one of `unavailable` (missing weights, say) gets a row saying why.
    FastSAM's masks follow `fastsam_rules` (`compare.fastsam_rules.FASTSAM_RULES`).

    Raises:
      ValueError: no prompts, or unknown FastSAM rules.
      Cancelled: cancel was set.
    """
    check_rules(fastsam_rules)
    if not prompts:
        raise ValueError("Add at least one point or box first.")
    names = [reference] + [name for name in dict.fromkeys(models) if name != reference]
    ready: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for index, name in enumerate(names):
        if progress is not None:
            progress(index / (len(names) + 1), f"{name}: encoding the image (cached after the first time)")
        raise_if_cancelled(cancel, "the comparison")
        try:
            ready[name] = _Prepared(*prepared.get(name, variant, image), fastsam_rules)
        except unavailable as error:
            if index == 0:
                raise
            failed[name] = str(error)
    masks: dict[str, list[np.ndarray]] = {name: [] for name in ready}
    if progress is not None:
        progress(len(names) / (len(names) + 1), "decoding the prompts")
    run = run_comparison(
        [(IMAGE_NAME, image)],
        ready[reference],
        [ready[n] for n in names[1:] if n in ready],
        ProtocolSpec("user", user_prompts={IMAGE_NAME: list(prompts)}),
        warmup=0,
        cancel=cancel,
        on_mask=lambda model, _image, _case, mask: masks[model].append(mask),
    )
    result = run.result
    rows = []
    for name in names:
        role = "reference" if name == reference else "compared"
        if name in failed:
            rows.append(ModelRow(name, role, None, None, None, None, failed[name]))
            continue
        cases = [case for case in result.cases if case.model == name]
        encoder_ms = result.encoder_runs[[run.model for run in result.encoder_runs].index(name)].encoder_ms
        decoder_ms = float(np.mean([case.decoder_ms for case in cases]))
        miou = None if name == reference else mean_iou(case.iou for case in cases)
        rows.append(ModelRow(name, role, miou, encoder_ms, decoder_ms, encoder_ms + decoder_ms * len(cases), "ok"))
    if progress is not None:
        progress(1.0, "done")
    return ImageComparison(rows, masks)


__all__ = ["ImageComparison", "ModelRow", "PreparedBackends", "compare_on_image"]
